// The child-side-setup spawn path: blobs/trampoline.c, a freestanding C
// function that clones with CLONE_VM (waiting for the child's exec as vfork
// would, see await_exec there), applies the setup in the child and execs the
// blob, so that no JavaScript ever runs in the child.
//
// Why a trampoline and not posix_spawn: posix_spawn has no parent-death
// signal, no uid/gid/groups, no no_new_privs and no rlimits, and fork() from
// Deno leaves a child without V8's heap. Why a shared object loaded from a
// memfd: nothing is read from disk at run time (a bytes import compiles it
// into the program), glibc's loader maps it correctly on both architectures
// (including 64 KiB pages on aarch64), and the object has no imports and no
// relocations to resolve (tools/build_trampoline.sh checks). The memfd stays
// open for the life of the process: glibc identifies a loaded object by its
// path, and a closed fd number could later name another file someone
// dlopens as /proc/self/fd/N.
//
// The request is one 128-byte struct with explicit offsets (REQUEST_OFFSETS,
// matched by _Static_asserts in trampoline.c); every buffer it points at is
// held in a local until the call returns. The call is synchronous, on the
// JavaScript thread: PR_SET_PDEATHSIG fires when the *thread* that spawned
// the child exits, and the main thread lives as long as the owner.

import {
  F_ADD_SEALS,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  POSIX_SPAWN_SETPGROUP,
  POSIX_SPAWN_SETSID,
} from "./constants.ts";
import {
  checkErrno,
  EAGAIN,
  EINVAL,
  EMFILE,
  ENFILE,
  ENOMEM,
  errnoMessage,
  errnoName,
  lastErrno,
  SpawnError,
  SyscallError,
} from "./errno.ts";
import { fcntl, libc, memfdCreate, writeAll } from "./libc.ts";
import { addressOf } from "./pointer.ts";
import { type ChildFd, nullFd, type PosixSpawnRequest } from "./spawn.ts";
import { TRAMPOLINE_AARCH64, TRAMPOLINE_X86_64 } from "./trampoline_objects.ts";

/**
 * This architecture's object, or why there is none. The objects travel as
 * base64 text (ffi/trampoline_objects.ts, generated from blobs/ by
 * tools/embed_trampoline.ts): JSR takes no bytes imports, and a program run
 * without raw imports gets the trampoline all the same.
 */
const OBJECT: Uint8Array | Error = objectFor(Deno.build.arch);

function objectFor(arch: string): Uint8Array | Error {
  const base64 = arch === "x86_64" ? TRAMPOLINE_X86_64 : arch === "aarch64" ? TRAMPOLINE_AARCH64 : null;
  if (base64 === null) return new Error(`umh has it for x86_64 and aarch64, not ${arch}`);
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** Linux 6.3+: a memfd that can never be made executable; mmap(PROT_EXEC) still works. */
const MFD_NOEXEC_SEAL = 0x0008;

/** A resource name for `limits`, e.g. `"nofile"`: RLIMIT_NOFILE. */
export type ResourceName =
  | "cpu"
  | "fsize"
  | "data"
  | "stack"
  | "core"
  | "rss"
  | "nproc"
  | "nofile"
  | "memlock"
  | "as"
  | "locks"
  | "sigpending"
  | "msgqueue"
  | "nice"
  | "rtprio"
  | "rttime";

/** RLIMIT_* numbers by the name `limits` uses (asm-generic: the same on x86_64 and aarch64). */
// deno-fmt-ignore
export const RLIMIT: Readonly<Record<ResourceName, number>> = {
  cpu: 0, fsize: 1, data: 2, stack: 3, core: 4, rss: 5, nproc: 6, nofile: 7, memlock: 8, as: 9, locks: 10,
  sigpending: 11, msgqueue: 12, nice: 13, rtprio: 14, rttime: 15,
};

/** `RLIM_INFINITY`: no limit. */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/** One limit for prlimit64(2) in the child. */
export interface ResourceLimit {
  /** RLIMIT_* number. */
  readonly resource: number;
  readonly soft: bigint;
  readonly hard: bigint;
}

/** A limit as callers write it: one value for soft and hard, or both. `Infinity` is RLIM_INFINITY. */
export type LimitValue = number | bigint | { soft: number | bigint; hard: number | bigint };

/** What a helper's fd 0, 1 or 2 gets: as for posix_spawn, or `"pipe"`: a pipe the trampoline makes. */
export type TrampolineFd = ChildFd | "pipe";

/** What the trampoline does on top of a posix_spawn request; every field is off when absent. */
export interface TrampolineRequest extends Omit<PosixSpawnRequest, "stdio"> {
  /** Fds 0, 1, 2 of the child; for `"pipe"` the owner's end comes back in `TrampolineChild.fds`. */
  readonly stdio: readonly [TrampolineFd, TrampolineFd, TrampolineFd];
  /** Signal number sent to the helper when the owner's spawning thread exits. */
  readonly parentDeathSignal?: number;
  /** setresuid to this uid; clears supplementary groups unless `groups` is given. */
  readonly uid?: number;
  /** setresgid to this gid. */
  readonly gid?: number;
  /** setgroups to exactly these (an empty array clears them). */
  readonly groups?: readonly number[];
  /** prctl(PR_SET_NO_NEW_PRIVS). */
  readonly noNewPrivileges?: boolean;
  /** prlimit64 of each, before privileges are dropped. */
  readonly limits?: readonly ResourceLimit[];
  /** A new session (and process group) led by the helper. Also set by POSIX_SPAWN_SETSID in `extraFlags`. */
  readonly setsid?: boolean;
  /** Join process group `processGroup`, or 0: a new one led by the helper. Also set by POSIX_SPAWN_SETPGROUP. */
  readonly processGroup?: number;
  /**
   * Make the child with clone instead of clone3, as on kernels before 5.5
   * (the child then resets the owner's handled signals itself). For tests.
   */
  readonly legacyClone?: boolean;
  /**
   * On the clone3 path, wait for the child's exec on the futex at once
   * instead of spinning on sched_yield first. For tests.
   */
  readonly futexWait?: boolean;
}

/** The started child: what the caller now owns. */
export interface TrampolineChild {
  readonly pid: number;
  /** Its pidfd from clone3 (close-on-exec), or -1 where clone3 was not used. */
  readonly pidfd: number;
  /** The owner's end of each `"pipe"` (close-on-exec, O_NONBLOCK), else -1. */
  readonly fds: readonly [number, number, number];
}

// struct umh_spawn_req in blobs/trampoline.c.
const REQUEST_SIZE = 128;
// deno-fmt-ignore
const REQUEST_OFFSETS = {
  blobFd: 0, flags: 4, stdio: 8, parentDeathSignal: 20, pgid: 24, uid: 28, gid: 32, groupCount: 36, limitCount: 40,
  errStep: 44, errErrno: 48, errArg: 52, groups: 56, limits: 64, argv: 72, envp: 80, cwd: 88, pidfd: 96,
  pipeMask: 100, parentFd: 104, environRef: 120,
} as const;
// req->flags
// deno-fmt-ignore
const [UMH_SCRIPT, UMH_SETSID, UMH_SETPGID, UMH_SETGROUPS, UMH_SETGID, UMH_SETUID, UMH_NO_NEW_PRIVS, UMH_NO_CLONE3, UMH_NO_SPIN] = [
  0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x100,
];
const MAX_ID = 0xffff_fffe; // (uid_t)-1 means "unchanged" to setresuid
const NGROUPS_MAX = 65536;
const SIGRTMAX = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RESOURCE_NAMES = Object.fromEntries(Object.entries(RLIMIT).map(([name, n]) => [n, name]));

/** For req->err_step: the call that failed, and how to describe it. */
const STEPS: Record<number, [syscall: string, what: (arg: number) => string]> = {
  1: ["dup2", (fd) => `dup2() onto fd ${fd}`],
  2: ["chdir", () => "chdir()"],
  3: ["setgroups", () => "setgroups()"],
  4: ["setresgid", () => "setresgid()"],
  5: ["setresuid", () => "setresuid()"],
  6: ["prctl", () => "prctl(PR_SET_PDEATHSIG)"],
  7: ["getppid", () => ""],
  8: ["prctl", () => "prctl(PR_SET_NO_NEW_PRIVS)"],
  9: ["prlimit64", (r) => `prlimit64(RLIMIT_${(RESOURCE_NAMES[r] ?? String(r)).toUpperCase()})`],
  10: ["setsid", () => "setsid()"],
  11: ["setpgid", (pgid) => `setpgid() to process group ${pgid}`],
  12: ["execveat", () => "execveat()"],
  13: ["clone", () => "clone()"],
  14: ["rt_sigaction", (signo) => `rt_sigaction() of signal ${signo}`],
  15: ["rt_sigprocmask", () => "rt_sigprocmask()"],
  16: ["fcntl", (fd) => `fcntl() of fd ${fd}`],
  17: ["pipe2", (fd) => `pipe2() for fd ${fd}`],
};

const SYMBOLS = {
  umh_spawn: { parameters: ["buffer"], result: "i32" }, // struct umh_spawn_req *req
} as const satisfies Deno.ForeignLibraryInterface;
type UmhSpawn = (request: Uint8Array<ArrayBuffer>) => number;
let umhSpawn: UmhSpawn | undefined;
const request = new Uint8Array(REQUEST_SIZE);
const view = new DataView(request.buffer);

/**
 * Loads the trampoline for this architecture now (it is otherwise loaded on
 * the first spawn). It keeps one close-on-exec memfd open for the life of
 * the process.
 */
export function loadTrampoline(): void {
  umhSpawn ??= openTrampoline();
}

/**
 * True when the trampoline is loaded or loads now; false where it cannot be
 * (another architecture, no executable mapping), so a caller
 * can fall back to posix_spawn when no setup option is asked for.
 */
export function trampolineAvailable(): boolean {
  try {
    loadTrampoline();
    return true;
  } catch (error) {
    // Out of fds or memory for the moment (EMFILE, ENFILE, ENOMEM, EAGAIN):
    // this spawn fails and names the call, and the next one tries again,
    // rather than umh giving up the trampoline for the rest of the process.
    if (error instanceof SyscallError && TRANSIENT_ERRNOS.has(error.errno)) {
      throw new SpawnError("Cannot load the spawn trampoline", error.syscall, error.errno, { cause: error });
    }
    const shortage = error instanceof Error && /Too many open files|Cannot allocate memory/.exec(error.message);
    if (shortage) {
      const errno = shortage[0] === "Too many open files" ? EMFILE : ENOMEM;
      const detail = `dlopen() of its memfd failed with ${errnoName(errno)} (${errnoMessage(errno)})`;
      throw new SpawnError("Cannot load the spawn trampoline", "dlopen", errno, { detail, cause: error });
    }
    return false; // on purpose: the reason is thrown again by trampolineSpawn() if it is used anyway
  }
}

/** A shortage now, not a trampoline that cannot work here. */
const TRANSIENT_ERRNOS: ReadonlySet<number> = new Set([EAGAIN, ENOMEM, ENFILE, EMFILE]);

function openTrampoline(): UmhSpawn {
  const action = "Cannot load the spawn trampoline";
  if (OBJECT instanceof Error) throw new Error(`${action}: ${OBJECT.message}`, { cause: OBJECT.cause });
  const name = encoder.encode("umh-trampoline\0");
  const flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  let fd = memfdCreate(name, flags | MFD_NOEXEC_SEAL);
  if (fd < 0 && lastErrno() === EINVAL) fd = memfdCreate(name, flags); // before Linux 6.3
  checkErrno(fd, action, "memfd_create");
  try {
    writeAll(fd, new Uint8Array(OBJECT), action);
    fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE, action);
    return Deno.dlopen(`/proc/self/fd/${fd}`, SYMBOLS).symbols.umh_spawn;
  } catch (cause) {
    libc().close(fd);
    if (cause instanceof SyscallError) throw cause;
    throw new Error(`${action}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/**
 * Converts `{ nofile: 64, core: 0, as: { soft, hard } }` to prlimit64
 * requests. A single number sets soft and hard; `Infinity` is RLIM_INFINITY.
 * Throws `TypeError` for an unknown name, a value that is not a non-negative
 * integer, or soft above hard.
 */
export function resourceLimits(limits: Readonly<Partial<Record<string, LimitValue>>>): ResourceLimit[] {
  const out: ResourceLimit[] = [];
  for (const [name, value] of Object.entries(limits)) {
    if (value === undefined) continue;
    const resource = (RLIMIT as Record<string, number>)[name];
    if (resource === undefined) {
      throw new TypeError(`Invalid limit "${name}": expected one of ${Object.keys(RLIMIT).join(", ")}`);
    }
    const [soft, hard] = typeof value === "object" ? [value.soft, value.hard] : [value, value];
    const limit = { resource, soft: limitValue(name, soft), hard: limitValue(name, hard) };
    if (limit.soft > limit.hard) throw new TypeError(`Invalid limit "${name}": soft ${soft} is above hard ${hard}`);
    out.push(limit);
  }
  return out;
}

function limitValue(name: string, value: number | bigint): bigint {
  if (value === Infinity) return RLIM_INFINITY;
  const n = typeof value === "bigint" ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n;
  if (n < 0n || n > RLIM_INFINITY) {
    throw new TypeError(`Invalid limit "${name}": ${value} is not a non-negative integer or Infinity`);
  }
  return n;
}

/**
 * Starts the child through the trampoline: its pid, and the pidfd and pipe
 * ends the caller now owns (each -1 where there is none). Throws `TypeError` for an invalid request and
 * `SpawnError` naming the step that failed (`setresuid`, `prlimit64`,
 * `execveat`, ...) and its errno; a child that failed has already been reaped
 * and its pidfd closed.
 */
export function trampolineSpawn(req: TrampolineRequest, action: string): TrampolineChild {
  const spawn = umhSpawn ??= openTrampoline();
  const { flags, pgid } = setupFlags(req, action);
  const groups = req.groups === undefined || req.groups.length === 0
    ? null
    : new Uint32Array(req.groups.map((g, i) => checkId(g, `groups[${i}]`)));
  if (groups !== null && groups.length > NGROUPS_MAX) {
    throw new TypeError(`Invalid groups: ${groups.length} is over ${NGROUPS_MAX}`);
  }
  const limitList = req.limits ?? [];
  let limits: BigUint64Array<ArrayBuffer> | null = null;
  if (limitList.length > 0) {
    limits = new BigUint64Array(limitList.length * 3);
    limitList.forEach((limit, i) => limits!.set([BigInt(limit.resource), limit.soft, limit.hard], i * 3));
  }
  const signo = req.parentDeathSignal ?? 0;
  if (!Number.isInteger(signo) || signo < 0 || signo > SIGRTMAX) {
    throw new TypeError(`Invalid parentDeathSignal ${signo}: expected a signal number from 1 to ${SIGRTMAX}`);
  }
  if (pgid !== undefined && !(Number.isInteger(pgid) && pgid >= 0 && pgid <= 0x7fff_ffff)) {
    throw new TypeError(`Invalid processGroup ${pgid}: expected 0 or a process group id`);
  }

  const o = REQUEST_OFFSETS;
  request.fill(0);
  view.setInt32(o.blobFd, req.blobFd, true);
  view.setUint32(o.flags, flags, true);
  let pipeMask = 0;
  for (let i = 0; i < 3; i++) {
    const want = req.stdio[i]!;
    if (want === "pipe") pipeMask |= 1 << i;
    else view.setInt32(o.stdio + 4 * i, childFd(want), true);
  }
  view.setUint32(o.pipeMask, pipeMask, true);
  view.setInt32(o.parentDeathSignal, signo, true);
  view.setInt32(o.pgid, pgid ?? 0, true);
  view.setUint32(o.uid, req.uid === undefined ? 0 : checkId(req.uid, "uid"), true);
  view.setUint32(o.gid, req.gid === undefined ? 0 : checkId(req.gid, "gid"), true);
  view.setUint32(o.groupCount, groups === null ? 0 : groups.length, true);
  view.setUint32(o.limitCount, limitList.length, true);
  if (groups !== null) view.setBigUint64(o.groups, addressOf(groups), true);
  if (limits !== null) view.setBigUint64(o.limits, addressOf(limits), true);
  view.setBigUint64(o.argv, req.argv.address, true);
  // No envp: the trampoline reads the owner's `environ` at the spawn (setenv may move it).
  if (req.envp === null) view.setBigUint64(o.environRef, environRef ??= environVariableAddress(), true);
  else view.setBigUint64(o.envp, req.envp.address, true);
  if (req.cwd !== null) view.setBigUint64(o.cwd, addressOf(req.cwd), true);

  const pid = spawn(request);
  // Keep every buffer the struct points at alive until here.
  void [groups, limits, req.argv.strings, req.argv.pointers, req.envp?.strings, req.envp?.pointers, req.cwd];
  if (pid > 0) {
    const fd = (i: number): number => view.getInt32(o.parentFd + 4 * i, true);
    return { pid, pidfd: view.getInt32(o.pidfd, true), fds: [fd(0), fd(1), fd(2)] };
  }
  throw spawnError(action, req);
}

/** req->flags, and the process group to join (`undefined`: none). */
function setupFlags(req: TrampolineRequest, action: string): { flags: number; pgid: number | undefined } {
  const setsid = req.setsid === true || (req.extraFlags & POSIX_SPAWN_SETSID) !== 0;
  if (setsid && req.processGroup !== undefined) {
    throw new TypeError(`${action}: setsid and processGroup cannot be combined (a session leader leads its own group)`);
  }
  // POSIX_SPAWN_SETPGROUP (`detached`) asks for a group of its own, which a new session also gives.
  const fromFlags = !setsid && (req.extraFlags & POSIX_SPAWN_SETPGROUP) !== 0 ? req.pgroup : undefined;
  const pgid = req.processGroup ?? fromFlags;
  let flags = req.isScript ? UMH_SCRIPT : 0;
  if (setsid) flags |= UMH_SETSID;
  if (pgid !== undefined) flags |= UMH_SETPGID;
  // Supplementary groups go with the uid, where there is privilege to drop:
  // an owner that is not root keeps its own (setgroups would fail with EPERM,
  // and Deno.Command leaves them too); a root one must drop them or fail.
  if (req.uid !== undefined) flags |= UMH_SETUID | (libc().geteuid() === 0 ? UMH_SETGROUPS : 0);
  if (req.groups !== undefined) flags |= UMH_SETGROUPS;
  if (req.gid !== undefined) flags |= UMH_SETGID;
  if (req.noNewPrivileges === true) flags |= UMH_NO_NEW_PRIVS;
  if (req.legacyClone === true) flags |= UMH_NO_CLONE3;
  if (req.futexWait === true) flags |= UMH_NO_SPIN;
  return { flags, pgid };
}

function spawnError(action: string, req: TrampolineRequest): SpawnError {
  const isScript = req.isScript;
  const step = view.getInt32(REQUEST_OFFSETS.errStep, true);
  const errno = view.getInt32(REQUEST_OFFSETS.errErrno, true);
  const arg = view.getInt32(REQUEST_OFFSETS.errArg, true);
  const [syscall, what] = STEPS[step] ?? [`step ${step}`, (): string => `step ${step}`];
  if (step === 7) {
    const detail = `the owner exited before the parent-death signal was set (getppid() changed, ${errnoName(errno)})`;
    return new SpawnError(action, syscall, errno, { detail });
  }
  const name = step === 12 && isScript ? "execve" : syscall;
  let call = step === 12 && isScript ? "execve()" : what(arg);
  if (step === 2 && req.cwd !== null) call = `chdir(${JSON.stringify(decoder.decode(req.cwd.subarray(0, -1)))})`;
  return new SpawnError(action, name, errno, {
    detail: `${call} failed with ${errnoName(errno)} (${errnoMessage(errno)})`,
  });
}

function checkId(id: number, what: string): number {
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID) {
    throw new TypeError(`Invalid ${what} ${id}: expected an integer from 0 to ${MAX_ID}`);
  }
  return id;
}

function childFd(want: ChildFd): number {
  if (want === "inherit") return -1;
  if (want === "null") return nullFd();
  return want;
}

let environRef: bigint | undefined;

/** The address of libc's `environ` variable itself (not its value): it never moves. */
function environVariableAddress(): bigint {
  return BigInt(Deno.UnsafePointer.value(libc().environ!));
}
