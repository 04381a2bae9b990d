// Starting one helper: options → argv/envp/pipes → posix_spawn → handle.

import { O_CLOEXEC, POSIX_SPAWN_SETPGROUP } from "../ffi/constants.ts";
import { cString } from "../ffi/c_string.ts";
import { ENOEXEC, SpawnError } from "../ffi/errno.ts";
import { close, pidfdOpen, pipe2, setNonblocking } from "../ffi/libc.ts";
import { cStringArray } from "../ffi/pointer.ts";
import { type ChildFd, environEntries, posixSpawn } from "../ffi/spawn.ts";
import { elfMachine, loadBlob, type UsermodeBlob } from "./blob.ts";
import { newHelper, type UsermodeHelper } from "./helper.ts";

/** What a helper's fd 0, 1 or 2 is connected to, as in `Deno.CommandOptions`. */
export type Stdio = "piped" | "inherit" | "null";

/** Options for starting a helper; the names and defaults follow `Deno.CommandOptions`. */
export interface HelperOptions {
  /** Arguments after `argv[0]`. */
  args?: string[];
  /** Variables to set, on top of the owner's environment unless `clearEnv`. */
  env?: Record<string, string>;
  /** Start from an empty environment: the helper gets exactly `env`. */
  clearEnv?: boolean;
  /** Working directory of the helper. */
  cwd?: string | URL;
  /** fd 0: the kernel's `pipe_to_umh` when `"piped"`. */
  stdin?: Stdio;
  /** fd 1: the kernel's `pipe_from_umh` when `"piped"`. */
  stdout?: Stdio;
  /** fd 2. */
  stderr?: Stdio;
  /** Aborting it sends the helper SIGTERM. */
  signal?: AbortSignal;
  /** `argv[0]`, the name `ps` shows. Defaults to the blob's name. */
  argv0?: string;
  /**
   * Let the helper outlive the owner: it gets its own process group and is
   * not killed when the owner exits.
   */
  detached?: boolean;
}

/** Anything umh can run: bytes (loaded once per array) or a loaded blob. */
export type BlobSource = Uint8Array | UsermodeBlob;

// One memfd per byte array for the life of the array: compiled-in blobs are
// loaded once, however many helpers start from them. The safety net closes the
// memfd if the array is collected.
const loaded = new WeakMap<Uint8Array, UsermodeBlob>();
const closeWhenCollected = new FinalizationRegistry<UsermodeBlob>((blob) => blob.close());

/** The loaded blob for `source`, loading a byte array the first time it is seen. */
export function resolveBlob(source: BlobSource): UsermodeBlob {
  if (!(source instanceof Uint8Array)) {
    if (source.closed) throw new TypeError(`Cannot spawn "${source.name}": the blob is closed`);
    return source;
  }
  let blob = loaded.get(source);
  if (blob === undefined || blob.closed) {
    blob = loadBlob(source);
    loaded.set(source, blob);
    closeWhenCollected.register(source, blob);
  }
  return blob;
}

/** Starts `source` with fully defaulted `stdio`. Throws SpawnError, TypeError, or the signal's reason. */
export function spawnHelper(source: BlobSource, options: HelperOptions, stdio: [Stdio, Stdio, Stdio]): UsermodeHelper {
  options.signal?.throwIfAborted();
  // Checked before a byte array is loaded, so a refused blob holds no memfd.
  const machine = source instanceof Uint8Array ? elfMachine(source) : source.elfMachine;
  if (machine !== null && machine !== Deno.build.arch) {
    const action = `Cannot spawn "${source instanceof Uint8Array ? "umh-blob" : source.name}"`;
    const detail = `the blob is an ELF for ${machine}, and this machine is ${Deno.build.arch} (ENOEXEC)`;
    throw new SpawnError(action, "execve", ENOEXEC, { detail });
  }
  const blob = resolveBlob(source);
  const name = blob.name;
  const action = `Cannot spawn "${name}"`;
  const argv = cStringArray(
    [options.argv0 ?? name, ...(options.args ?? [])],
    (i) => i === 0 ? "argv0" : `args[${i - 1}]`,
  );
  const envp = buildEnv(options);
  const cwd = options.cwd === undefined ? null : cString(cwdPath(options.cwd), "cwd");
  const blobFd = blob.unsafeFd;

  const parentEnds: number[] = [];
  const childEnds: number[] = [];
  const ends = stdio.map((kind, i): [number, ChildFd] => {
    if (kind !== "piped") return [-1, kind];
    const [read, write] = pipe2(O_CLOEXEC, action);
    const [parent, child] = i === 0 ? [write, read] : [read, write];
    parentEnds.push(parent);
    childEnds.push(child);
    return [parent, child];
  });
  let pid: number;
  try {
    for (const end of parentEnds) setNonblocking(end);
    pid = posixSpawn({
      blobFd,
      isScript: blob.isScript,
      argv,
      envp,
      stdio: [ends[0]![1], ends[1]![1], ends[2]![1]],
      cwd,
      extraFlags: options.detached ? POSIX_SPAWN_SETPGROUP : 0,
      pgroup: 0,
    }, action);
  } catch (error) {
    for (const end of parentEnds) close(end);
    throw error;
  } finally {
    // The child has its copies; ours must go now, or the readers never see EOF.
    for (const end of childEnds) close(end);
  }
  const pidfd = pidfdOpen(pid);
  return newHelper({
    pid,
    pidfd: pidfd >= 0 ? pidfd : -1,
    name,
    stdin: ends[0]![0],
    stdout: ends[1]![0],
    stderr: ends[2]![0],
    signal: options.signal,
    detached: options.detached ?? false,
  });
}

function cwdPath(cwd: string | URL): string {
  return cwd instanceof URL ? decodeURIComponent(cwd.pathname) : cwd;
}

/** envp for the helper: `null` (the owner's own environ, no copy) unless env or clearEnv ask otherwise. */
function buildEnv(options: HelperOptions): ReturnType<typeof cStringArray> | null {
  if (options.env === undefined && !options.clearEnv) return null;
  const vars = new Map<string, string>();
  if (!options.clearEnv) {
    for (const entry of environEntries()) {
      const eq = entry.indexOf("=");
      if (eq > 0) vars.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  }
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (key === "" || key.includes("=") || key.includes("\0")) {
      throw new TypeError(`Invalid env key ${JSON.stringify(key)}: it must be non-empty, without "=" or NUL`);
    }
    vars.set(key, String(value));
  }
  const entries = [...vars].map(([key, value]) => `${key}=${value}`);
  return cStringArray(entries, (i) => `env[${JSON.stringify(entries[i]!.split("=")[0])}]`);
}
