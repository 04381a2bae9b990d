// forkUsermodeBlob(): the kernel-shaped one-call entry point.

import type { UsermodeHelper } from "./helper.ts";
import { type BlobSource, type HelperOptions, spawnHelper } from "./spawn.ts";

/**
 * The userspace twin of the kernel's `fork_usermode_blob(data, len, info)`:
 * runs `blob` from a sealed memfd with stdin and stdout piped (the kernel's
 * `pipe_to_umh` and `pipe_from_umh`) and stderr inherited unless `options`
 * say otherwise.
 *
 * @param blob Bytes of an executable, or a loaded {@linkcode UsermodeBlob}.
 * @param options As {@linkcode BlobCommand}'s; stdin/stdout default to `"piped"`.
 * @returns The running helper. The caller owns it: await `status` or dispose
 *   it; close `stdin` so the helper sees EOF.
 *
 * @example
 * ```ts
 * import { forkUsermodeBlob } from "./mod.ts";
 * import { blobFor } from "../blobs/mod.ts";
 *
 * await using helper = forkUsermodeBlob(blobFor("reqrep"));
 * console.log(helper.pid > 0); // true
 * ```
 */
export function forkUsermodeBlob(blob: BlobSource, options: HelperOptions = {}): UsermodeHelper {
  return spawnHelper(blob, options, [options.stdin ?? "piped", options.stdout ?? "piped", options.stderr ?? "inherit"]);
}
