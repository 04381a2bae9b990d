// Starting one helper: options → argv/envp/pipes → posix_spawn → handle.

import { O_CLOEXEC, P_PID, P_PIDFD, POSIX_SPAWN_SETSID, SIGNALS } from "../ffi/constants.ts";
import { cString } from "../ffi/c_string.ts";
import { ENOEXEC, errnoMessage, SpawnError, SyscallError } from "../ffi/errno.ts";
import { close, pidfdOpen, pipe2, sendSignal, setNonblocking, waitid } from "../ffi/libc.ts";
import { type CStringArray, cStringArray } from "../ffi/pointer.ts";
import { type ChildFd, environEntries, posixSpawn, type PosixSpawnRequest } from "../ffi/spawn.ts";
import {
  type LimitValue,
  resourceLimits,
  type ResourceName,
  trampolineAvailable,
  type TrampolineChild,
  type TrampolineFd,
  type TrampolineRequest,
  trampolineSpawn,
} from "../ffi/trampoline.ts";
import { signalNumber } from "./status.ts";
import { DEFAULT_BLOB_NAME, elfMachine, UsermodeBlob } from "./blob.ts";
import { type BlobSource, resolveBlob } from "./blob_cache.ts";
import { describeValue } from "./errors.ts";
import { newHelper, type UsermodeHelper } from "./helper.ts";
import { collectSync, type StartedProcess } from "./output_sync.ts";
import type { HelperOutput } from "./status.ts";

export type { BlobSource };

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
   * Let the helper outlive the owner: it gets a session (and process group)
   * of its own, as `Deno.Command` gives a detached child, and is not killed
   * when the owner exits.
   */
  detached?: boolean;
  /**
   * Signal the helper gets when the owner dies (prctl PR_SET_PDEATHSIG), e.g.
   * `"SIGTERM"`. A helper that is not `detached` gets `"SIGKILL"` unless told
   * otherwise, so that the kernel kills it however the owner ends, SIGKILL
   * included (a Worker's helper: when the Worker ends); `null`: none.
   */
  parentDeathSignal?: Deno.Signal | null;
  /** Run as this uid (a root owner's supplementary groups are cleared unless `groups` is given). */
  uid?: number;
  /** Run as this gid. */
  gid?: number;
  /** Supplementary groups. */
  groups?: number[];
  /** prctl(PR_SET_NO_NEW_PRIVS). */
  noNewPrivileges?: boolean;
  /** Resource limits by name (`nofile`, `as`, `core`, ...): one number for soft and hard, or both. */
  limits?: Partial<Record<ResourceName, LimitValue>>;
  /** A new session led by the helper. */
  setsid?: boolean;
  /** Join this process group, or 0: a new group led by the helper. */
  processGroup?: number;
}

/** The trampoline's extra fields, or `null` when posix_spawn can do everything asked. */
function setupOf(o: HelperOptions): Omit<TrampolineRequest, keyof PosixSpawnRequest> | null {
  if (
    o.parentDeathSignal == null && o.uid === undefined && o.gid === undefined && o.groups === undefined &&
    !o.noNewPrivileges && o.limits === undefined && !o.setsid && o.processGroup === undefined
  ) return null;
  return {
    parentDeathSignal: o.parentDeathSignal == null ? undefined : signalNumber(o.parentDeathSignal),
    uid: o.uid,
    gid: o.gid,
    groups: o.groups,
    noNewPrivileges: o.noNewPrivileges,
    limits: o.limits === undefined ? undefined : resourceLimits(o.limits),
    setsid: o.setsid,
    processGroup: o.processGroup,
  };
}

/** Starts `source` with fully defaulted `stdio`. Throws SpawnError, TypeError, or the signal's reason. */
export function spawnHelper(source: BlobSource, options: HelperOptions, stdio: [Stdio, Stdio, Stdio]): UsermodeHelper {
  return withBlob(source, options, stdio, (blob, strings) => {
    const started = startBlob(blob, options, stdio, strings);
    return newHelper({
      ...started,
      name: blob.name,
      signal: options.signal,
      detached: options.detached ?? false,
    });
  });
}

/**
 * Runs `source` to completion on this thread and collects its output (the
 * synchronous API, as `Deno.Command.outputSync()`), with fully defaulted `stdio`.
 */
export function runHelperSync(source: BlobSource, options: HelperOptions, stdio: [Stdio, Stdio, Stdio]): HelperOutput {
  return withBlob(
    source,
    options,
    stdio,
    (blob, strings) => collectSync(startBlob(blob, options, stdio, strings), blob.name),
  );
}

/** Checks what can be checked before a memfd exists, then runs `start` on the loaded blob. */
function withBlob<T>(
  source: BlobSource,
  options: HelperOptions,
  stdio: [Stdio, Stdio, Stdio],
  start: (blob: UsermodeBlob, strings: SpawnStrings) => T,
): T {
  if (!(source instanceof Uint8Array) && !(source instanceof UsermodeBlob)) {
    const hint = typeof source === "string" ? " (for a file on disk, pass await Deno.readFile(path))" : "";
    throw new TypeError(`Invalid blob: expected a Uint8Array or a UsermodeBlob, got ${describeValue(source)}${hint}`);
  }
  checkStdio(stdio);
  const name = source instanceof Uint8Array ? DEFAULT_BLOB_NAME : source.name;
  // The C strings: a TypeError for a cwd of the wrong type, a NUL in any of
  // them, or an env value that is not a string.
  const strings = spawnStrings(options, name);
  options.signal?.throwIfAborted();
  // Checked before a byte array is loaded, so a refused blob holds no memfd.
  const machine = source instanceof Uint8Array ? elfMachine(source) : source.elfMachine;
  if (machine !== null && machine !== Deno.build.arch) {
    const detail = `the blob is an ELF for ${machine}, and this machine is ${Deno.build.arch} (ENOEXEC)`;
    throw new SpawnError(`Cannot spawn "${name}"`, "execve", ENOEXEC, { detail });
  }
  const { blob, temporary } = resolveBlob(source);
  try {
    return start(blob, strings);
  } finally {
    // The helper has exec'd (or failed): a one-off memfd is not needed any more.
    if (temporary) blob.close();
  }
}

/** The spawn's C strings, built before any memfd or pipe exists. */
interface SpawnStrings {
  readonly argv: CStringArray;
  readonly envp: CStringArray | null;
  readonly cwd: Uint8Array<ArrayBuffer> | null;
}

function spawnStrings(options: HelperOptions, name: string): SpawnStrings {
  return {
    argv: argvFor(options.argv0 ?? name, options.args),
    envp: buildEnv(options),
    cwd: hasCwd(options) ? cString(cwdPath(options.cwd!), "cwd") : null,
  };
}

/** Forks and execs `blob` with its pipes: the pid, pidfd and the owner's pipe ends (-1 where not piped). */
function startBlob(
  blob: UsermodeBlob,
  options: HelperOptions,
  stdio: [Stdio, Stdio, Stdio],
  strings: SpawnStrings,
): StartedProcess {
  const name = blob.name;
  const action = `Cannot spawn "${name}"`;
  const setup = setupOf(options); // TypeError before any pipe exists
  const request = {
    blobFd: blob.unsafeFd,
    isScript: blob.isScript,
    ...strings,
    // A session of its own, as Deno.Command detaches (a group of its choosing with processGroup).
    extraFlags: options.detached && options.processGroup === undefined ? POSIX_SPAWN_SETSID : 0,
    pgroup: 0,
  };
  // The trampoline is the faster path (bench/trampoline_compare.ts) and the
  // only one that can do child-side setup; posix_spawn serves where it
  // cannot load (no executable mapping allowed), or with UMH_SPAWN=posix_spawn.
  const path = spawnPath();
  let child: TrampolineChild;
  let parentDeathSignal: number | undefined;
  try {
    if (setup === null && path === "posix_spawn") {
      child = posixSpawnWithPipes(request, stdio, action);
    } else {
      // The trampoline makes the pipes, closes the child's ends and sets
      // O_NONBLOCK on ours, all in the one call.
      const fds = stdio.map((kind) => kind === "piped" ? "pipe" : kind) as [TrampolineFd, TrampolineFd, TrampolineFd];
      parentDeathSignal = setup?.parentDeathSignal ?? defaultDeathSignal(options);
      child = trampolineSpawn(
        {
          ...request,
          ...setup,
          parentDeathSignal,
          stdio: fds,
          legacyClone: path === "clone",
          futexWait: path === "futex",
        },
        action,
      );
    }
  } catch (error) {
    const detail = execFailureDetail(error, blob, request.blobFd, hasCwd(options) ? cwdPath(options.cwd!) : null);
    if (detail !== null) {
      const { syscall, errno } = error as SpawnError;
      throw new SpawnError(action, syscall, errno, { detail, cause: error });
    }
    throw error;
  }
  const pidfd = child.pidfd >= 0 ? child.pidfd : pidfdOpen(child.pid);
  return {
    pid: child.pid,
    pidfd: pidfd >= 0 ? pidfd : -1,
    stdin: child.fds[0],
    stdout: child.fds[1],
    stderr: child.fds[2],
    // Only SIGKILL is sure to end it: a helper may trap, ignore or not be ended by any other.
    covered: parentDeathSignal === SIGNALS.SIGKILL,
  };
}

/**
 * The kernel's guarantee, by default: SIGKILL when the owner dies, for a
 * helper that is not detached. The signal comes when the *thread* that
 * started it ends: the process for the main thread, the Worker for a
 * Worker's helper (which so goes with the Worker, at the latest with the
 * process). Not for `parentDeathSignal: null`.
 */
function defaultDeathSignal(options: HelperOptions): number | undefined {
  if (options.parentDeathSignal === null || options.detached === true) return undefined;
  return SIGNALS.SIGKILL;
}

/** glibc's posix_spawn, with the pipes made, closed and made non-blocking here. */
function posixSpawnWithPipes(
  request: Omit<PosixSpawnRequest, "stdio">,
  stdio: [Stdio, Stdio, Stdio],
  action: string,
): TrampolineChild {
  const parentEnds: number[] = [];
  const childEnds: number[] = [];
  let pid: number;
  const ends = stdio.map((kind, i): [number, ChildFd] => {
    if (kind !== "piped") return [-1, kind];
    let pipe: [number, number];
    try {
      pipe = pipe2(O_CLOEXEC, action);
    } catch (error) {
      for (const end of [...parentEnds, ...childEnds]) close(end);
      // A SpawnError, naming the pipe, as the trampoline path reports it.
      if (!(error instanceof SyscallError)) throw error;
      throw new SpawnError(action, "pipe2", error.errno, {
        detail: `pipe2() for fd ${i} failed with ${error.code} (${errnoMessage(error.errno)})`,
        cause: error,
      });
    }
    const [read, write] = pipe;
    const [parent, child] = i === 0 ? [write, read] : [read, write];
    parentEnds.push(parent);
    childEnds.push(child);
    return [parent, child];
  });
  try {
    pid = posixSpawn({ ...request, stdio: [ends[0]![1], ends[1]![1], ends[2]![1]] }, action);
  } catch (error) {
    for (const end of parentEnds) close(end);
    throw error;
  } finally {
    // The child has its copies; ours must go now, or the readers never see EOF.
    for (const end of childEnds) close(end);
  }
  try {
    // O_NONBLOCK on the owner's open file descriptions only; the helper's ends are other ones.
    for (const end of parentEnds) setNonblocking(end);
  } catch (error) {
    // Cannot happen for a fresh pipe; should it, no handle would own the child.
    abandon(pid, -1, parentEnds);
    throw error;
  }
  return { pid, pidfd: -1, fds: [ends[0]![0], ends[1]![0], ends[2]![0]] };
}

/** Kills and reaps a child no handle will own, and closes its pipes. */
function abandon(pid: number, pidfd: number, ends: readonly number[]): void {
  sendSignal(pidfd, pid, SIGNALS.SIGKILL);
  waitid(pidfd >= 0 ? P_PIDFD : P_PID, pidfd >= 0 ? pidfd : pid, 0, "Cannot reap an abandoned helper", true);
  if (pidfd >= 0) close(pidfd);
  for (const end of ends) close(end);
}

/** What an exec failure means where its errno alone would mislead, or null. */
function execFailureDetail(error: unknown, blob: UsermodeBlob, blobFd: number, cwd: string | null): string | null {
  if (!(error instanceof SpawnError)) return null;
  const { syscall, code } = error;
  const failed = `${syscall}() failed with ${code}`;
  const where = (path: string): string => path.startsWith("/") || cwd === null ? path : `${cwd}/${path}`;
  if (code === "ENOENT" && syscall !== "chdir") {
    const interpreter = blob.interpreter;
    // Unknown (no read permission): a script's ENOENT without a cwd can only be its interpreter.
    const known = interpreter === null ? null : exists(where(interpreter));
    if (interpreter !== null && (known === false || (known === null && blob.isScript && cwd === null))) {
      if (blob.isScript) {
        const crlf = interpreter.endsWith("\r")
          ? ' (the script has CRLF line endings, and the "\\r" is part of the name)'
          : "";
        return `${failed}: its "#!" interpreter ${JSON.stringify(interpreter)} does not exist${crlf}`;
      }
      return `${failed}: it is linked dynamically, and its loader ${JSON.stringify(interpreter)} does not exist here ` +
        `(link the helper statically to carry everything it needs)`;
    }
    // posix_spawn changes directory in the child and reports it as its own failure.
    if (syscall === "posix_spawn" && cwd !== null && exists(cwd) === false) {
      return `${failed}: its cwd ${JSON.stringify(cwd)} does not exist`;
    }
    // posix_spawn execs the memfd by its /proc/self/fd path (the trampoline
    // needs no path, but is itself dlopen()ed through one).
    const proc = syscall === "posix_spawn" ? exists(`/proc/self/fd/${blobFd}`) : true;
    if (proc === false || (proc === null && interpreter === null && cwd === null)) {
      return `${failed}: /proc/self/fd/${blobFd} does not resolve; umh needs /proc mounted to run a blob`;
    }
  }
  if (code === "ENOTDIR" && syscall === "posix_spawn" && cwd !== null) {
    return `${failed}: its cwd ${JSON.stringify(cwd)} is not a directory`;
  }
  // The kernel refuses to exec a file someone has open for writing. A sealed
  // memfd can still be opened for writing (by path, in /proc), just not written.
  if (code === "ETXTBSY") {
    return `${failed}: the blob's memfd is open for writing somewhere ` +
      `(an open of /proc/${Deno.pid}/fd/${blobFd} for writing, by this or another process); ` +
      `it starts again once that is closed`;
  }
  return null;
}

/** Whether `path` exists: null where that cannot be told without asking for read permission. */
function exists(path: string): boolean | null {
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return null; // never a prompt
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    return error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory ? false : null;
  }
}

// argv without extra args is the same for every start of a blob: built once
// per argv0 and kept (posix_spawn only reads it; the cache keeps it alive).
const bareArgv = new Map<string, CStringArray>();
const MAX_CACHED_ARGV = 64;

function argvFor(argv0: string, args: string[] | undefined): CStringArray {
  const what = (i: number): string => i === 0 ? "argv0" : `args[${i - 1}]`;
  if (args !== undefined && !Array.isArray(args)) {
    throw new TypeError(`Invalid args: expected an array, got ${describeValue(args)}`);
  }
  // Non-string args become strings, as Deno.Command makes them.
  if (args !== undefined && args.length > 0) return cStringArray([argv0, ...args.map(String)], what);
  let argv = bareArgv.get(argv0);
  if (argv === undefined) {
    argv = cStringArray([argv0], what);
    if (bareArgv.size < MAX_CACHED_ARGV) bareArgv.set(argv0, argv);
  }
  return argv;
}

type SpawnPath = "trampoline" | "futex" | "clone" | "posix_spawn";
let defaultPath: SpawnPath | undefined;

/**
 * How plain spawns start a helper: through the trampoline where it loads
 * (with clone3), unless `UMH_SPAWN=posix_spawn` asks for glibc's posix_spawn
 * or `UMH_SPAWN=clone` for the trampoline's path for kernels without clone3
 * (`UMH_SPAWN=futex`: clone3, the exec waited for on the futex at once, as a
 * slow exec is). Setup options always take the trampoline.
 */
function spawnPath(): SpawnPath {
  if (defaultPath !== undefined) return defaultPath;
  const env = environEntries();
  if (env.includes("UMH_SPAWN=posix_spawn") || !trampolineAvailable()) return defaultPath = "posix_spawn";
  if (env.includes("UMH_SPAWN=clone")) return defaultPath = "clone";
  return defaultPath = env.includes("UMH_SPAWN=futex") ? "futex" : "trampoline";
}

/** Whether the helper starts somewhere else: `cwd: ""` means here, as for Deno.Command. */
function hasCwd(options: HelperOptions): boolean {
  return options.cwd !== undefined && options.cwd !== "";
}

function cwdPath(cwd: string | URL): string {
  if (cwd instanceof URL) {
    if (cwd.protocol !== "file:") throw new TypeError("Must be a file URL"); // Deno.Command's words
    return decodeURIComponent(cwd.pathname);
  }
  if (typeof cwd !== "string") {
    throw new TypeError(`Invalid cwd: expected a string or a URL, got ${describeValue(cwd)}`);
  }
  return cwd;
}

const STDIO_KINDS: readonly string[] = ["piped", "inherit", "null"];

/**
 * `kind`, or `fallback` when it was left out. Only `undefined` means left
 * out: `null` is no kind, and the spawn refuses it, as Deno.Command does.
 */
export function stdioOr(kind: Stdio | undefined, fallback: Stdio): Stdio {
  return kind === undefined ? fallback : kind;
}

/** TypeError for a stdio kind other than "piped", "inherit" or "null" (as Deno.Command refuses them). */
function checkStdio(stdio: [Stdio, Stdio, Stdio]): void {
  stdio.forEach((kind, i) => {
    if (STDIO_KINDS.includes(kind)) return;
    const name = ["stdin", "stdout", "stderr"][i];
    throw new TypeError(`Invalid ${name}: ${describeValue(kind)}, expected "piped", "inherit" or "null"`);
  });
}

/** envp for the helper: `null` (the owner's own environ, no copy) unless env or clearEnv ask otherwise. */
function buildEnv(options: HelperOptions): ReturnType<typeof cStringArray> | null {
  if (options.env === undefined && !options.clearEnv) return null;
  if (options.env !== undefined && (options.env === null || typeof options.env !== "object")) {
    throw new TypeError(`Invalid env: expected an object of strings, got ${describeValue(options.env)}`);
  }
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
    if (typeof value !== "string") {
      throw new TypeError(
        `Invalid env value for ${JSON.stringify(key)}: expected a string, got ${describeValue(value)}`,
      );
    }
    vars.set(key, value);
  }
  const entries = [...vars].map(([key, value]) => `${key}=${value}`);
  return cStringArray(entries, (i) => `env[${JSON.stringify(entries[i]!.split("=")[0])}]`);
}
