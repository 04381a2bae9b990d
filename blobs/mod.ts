/**
 * Prebuilt helper executables (static Linux ELF binaries) for umh tests.
 *
 * Sources live next to this file (`*.c`); rebuild with
 * `tools/build_blobs.sh` and verify with `tools/build_blobs.sh --check`.
 *
 * @module
 */

import catAarch64 from "./cat.aarch64" with { type: "bytes" };
import catX64 from "./cat.x86_64" with { type: "bytes" };
import reqrepAarch64 from "./reqrep.aarch64" with { type: "bytes" };
import reqrepX64 from "./reqrep.x86_64" with { type: "bytes" };

/**
 * Helper binaries by name and architecture (see the matching `.c` file for each protocol).
 *
 * @example
 * ```ts
 * import { BLOBS } from "./mod.ts";
 * const elf: Uint8Array = BLOBS.reqrep.x86_64;
 * console.log(elf.length);
 * ```
 */
export const BLOBS = {
  /** Framed request/reply helper: echo, `!pid`, `!exit N`, `!crash`, `!hang`, `!sleep MS`, `!stderr TEXT`. */
  reqrep: {
    x86_64: reqrepX64 as Uint8Array,
    aarch64: reqrepAarch64 as Uint8Array,
  },
  /** Copies stdin to stdout until EOF. */
  cat: {
    x86_64: catX64 as Uint8Array,
    aarch64: catAarch64 as Uint8Array,
  },
} as const;

/**
 * Returns the helper binary `name` built for `arch` (defaults to the running architecture).
 *
 * @example
 * ```ts
 * import { blobFor } from "./mod.ts";
 * const elf: Uint8Array = blobFor("cat");
 * const arm: Uint8Array = blobFor("reqrep", "aarch64");
 * ```
 */
export function blobFor(
  name: keyof typeof BLOBS,
  arch: string = Deno.build.arch,
): Uint8Array {
  if (arch === "x86_64" || arch === "aarch64") {
    return BLOBS[name][arch];
  }
  throw new Error(
    `No "${name}" helper is built for ${arch}: umh ships x86_64 and aarch64`,
  );
}
