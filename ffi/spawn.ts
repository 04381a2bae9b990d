// posix_spawn(3) of a memfd, with the child's stdio set up by file actions.
//
// glibc's posix_spawn clones with CLONE_VM | CLONE_VFORK and runs only C in
// the child, so no JavaScript ever runs there (V8's heap is MADV_DONTFORK and
// would be missing in a forked child). It reports exec failures (ENOEXEC,
// ENOENT, EACCES) as its return value instead of a silent exit code 127.

import {
  O_CLOEXEC,
  O_RDWR,
  POSIX_SPAWN_SETPGROUP,
  POSIX_SPAWN_SETSIGDEF,
  POSIX_SPAWN_SETSIGMASK,
  SIGNALS,
  SIZEOF_POSIX_SPAWN_FILE_ACTIONS_T,
  SIZEOF_POSIX_SPAWNATTR_T,
  SIZEOF_SIGSET_T,
} from "./constants.ts";
import { checkErrno, checkReturned, checkSpawn } from "./errno.ts";
import { type CStringArray, readCStringArray } from "./pointer.ts";
import { libc } from "./symbols.ts";

/** What the child gets on one of its fds 0, 1, 2. */
export type ChildFd = "inherit" | "null" | number;

/** Everything posix_spawn needs for one helper. Buffers must stay alive until it returns. */
export interface PosixSpawnRequest {
  /** The memfd (or read-only tmpfile) holding the executable. */
  readonly blobFd: number;
  /** True for a `#!` script. */
  readonly isScript: boolean;
  readonly argv: CStringArray;
  /** `null`: the owner's current `environ`. */
  readonly envp: CStringArray | null;
  /** Fds 0, 1, 2 of the child: inherited, /dev/null, or dup2 of this fd. */
  readonly stdio: readonly [ChildFd, ChildFd, ChildFd];
  /** NUL-terminated directory to chdir to, or `null`. */
  readonly cwd: Uint8Array<ArrayBuffer> | null;
  /** POSIX_SPAWN_SETPGROUP / POSIX_SPAWN_SETSID, or 0. */
  readonly extraFlags: number;
  /** The process group to join (0: a new one led by the child) with POSIX_SPAWN_SETPGROUP. */
  readonly pgroup: number;
}

const encoder = new TextEncoder();
const NULL_PATH = encoder.encode("/dev/null\0");
const SCRIPT_PATH = encoder.encode("/proc/self/fd/3\0");
let procPid = "";

/**
 * `/proc/<owner>/fd/N`: the path by which the child can exec the owner's
 * memfd after its own copy is closed. The owner's pid is read from the
 * `/proc/self` link, so it is right even when `/proc` belongs to an outer
 * pid namespace.
 */
function ownerFdPath(fd: number): Uint8Array<ArrayBuffer> {
  if (procPid === "") {
    const buffer = new Uint8Array(32);
    const n = Number(libc().readlink(encoder.encode("/proc/self\0"), buffer, BigInt(buffer.length)));
    procPid = n > 0 ? new TextDecoder().decode(buffer.subarray(0, n)) : "self";
  }
  return encoder.encode(`/proc/${procPid}/fd/${fd}\0`);
}
let devNull = -1;
const attrs = new Map<string, Uint8Array<ArrayBuffer>>();

/**
 * A spawn attribute object, built once per flag set and reused: SIGPIPE back
 * to SIG_DFL (Deno ignores it for itself, and an ignored signal survives
 * exec) and an empty signal mask. glibc's child resets every handled signal
 * on its own; other signals the owner ignores stay ignored, as with
 * Deno.Command and the trampoline.
 */
function spawnAttr(extraFlags: number, pgroup: number): Uint8Array<ArrayBuffer> {
  const key = `${extraFlags}:${pgroup}`;
  let attr = attrs.get(key);
  if (attr) return attr;
  const c = libc();
  const action = "Cannot prepare the spawn attributes";
  attr = new Uint8Array(SIZEOF_POSIX_SPAWNATTR_T);
  checkReturned(c.posix_spawnattr_init(attr), action, "posix_spawnattr_init");
  const pipeOnly = new Uint8Array(SIZEOF_SIGSET_T);
  const none = new Uint8Array(SIZEOF_SIGSET_T);
  c.sigemptyset(pipeOnly);
  c.sigaddset(pipeOnly, SIGNALS.SIGPIPE);
  c.sigemptyset(none);
  checkReturned(c.posix_spawnattr_setsigdefault(attr, pipeOnly), action, "posix_spawnattr_setsigdefault");
  checkReturned(c.posix_spawnattr_setsigmask(attr, none), action, "posix_spawnattr_setsigmask");
  const flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | extraFlags;
  checkReturned(c.posix_spawnattr_setflags(attr, flags), action, "posix_spawnattr_setflags");
  if (extraFlags & POSIX_SPAWN_SETPGROUP) {
    checkReturned(c.posix_spawnattr_setpgroup(attr, pgroup), action, "posix_spawnattr_setpgroup");
  }
  attrs.set(key, attr);
  return attr;
}

/** One /dev/null fd for the whole process, dup2'd into children that want "null" (both spawn paths). */
export function nullFd(): number {
  if (devNull < 0) {
    devNull = checkErrno(libc().open(NULL_PATH, O_RDWR | O_CLOEXEC, 0), 'Cannot open "/dev/null"', "open");
  }
  return devNull;
}

/** The current `environ` pointer (read at each spawn: setenv may move it). */
export function currentEnviron(): Deno.PointerValue {
  return new Deno.UnsafePointerView(libc().environ!).getPointer();
}

/** The owner's environment as `KEY=value` strings, read from `environ` (no --allow-env needed). */
export function environEntries(): string[] {
  return readCStringArray(currentEnviron());
}

/**
 * Starts the child and returns its pid. Throws SyscallError naming
 * posix_spawn (or the file action that failed) and its errno.
 */
export function posixSpawn(request: PosixSpawnRequest, action: string): number {
  const c = libc();
  const key = actionsKey(request);
  const cached = key === null ? undefined : cachedActions.get(key);
  if (cached) return spawnWith(request, cached, action);
  const actions = buildActions(request, action);
  if (key !== null && cachedActions.size < MAX_CACHED_ACTIONS) {
    cachedActions.set(key, actions);
    return spawnWith(request, actions, action);
  }
  try {
    return spawnWith(request, actions, action);
  } finally {
    c.posix_spawn_file_actions_destroy(actions.actions);
  }
}

// File actions hold only fd numbers, and helpers reuse the same few numbers
// (the lowest free ones), so each distinct set is built once and kept: that
// saves five FFI calls and glibc's getrlimit per added action on every spawn.
// posix_spawn only reads them (POSIX allows reusing one object).
interface Actions {
  readonly actions: Uint8Array<ArrayBuffer>;
  readonly path: Uint8Array<ArrayBuffer>;
}
const cachedActions = new Map<string, Actions>();
const MAX_CACHED_ACTIONS = 256;

function actionsKey(request: PosixSpawnRequest): string | null {
  if (request.cwd !== null) return null;
  return `${request.blobFd}:${request.isScript}:${request.stdio.join(",")}`;
}

function spawnWith(request: PosixSpawnRequest, built: Actions, action: string): number {
  const c = libc();
  const pid = new Int32Array(1);
  const envp = request.envp === null ? currentEnviron() : Deno.UnsafePointer.of(request.envp.pointers);
  const attr = spawnAttr(request.extraFlags, request.pgroup);
  checkSpawn(c.posix_spawn(pid, built.path, built.actions, attr, request.argv.pointers, envp), action, "posix_spawn");
  // Keep the strings alive until here: `pointers` only holds raw addresses.
  void request.argv.strings;
  void request.envp?.strings;
  return pid[0]!;
}

function buildActions(request: PosixSpawnRequest, action: string): Actions {
  const c = libc();
  const actions = new Uint8Array(SIZEOF_POSIX_SPAWN_FILE_ACTIONS_T);
  checkReturned(c.posix_spawn_file_actions_init(actions), action, "posix_spawn_file_actions_init");
  try {
    for (let fd = 0; fd < 3; fd++) {
      const want = request.stdio[fd]!;
      if (want === "inherit") continue;
      const from = want === "null" ? nullFd() : want;
      checkReturned(c.posix_spawn_file_actions_adddup2(actions, from, fd), action, "posix_spawn_file_actions_adddup2");
    }
    // The child must hold exactly fds 0, 1, 2: descriptors the owner
    // inherited without FD_CLOEXEC (from a shell, say) are closed too. The
    // blob itself is then exec'd through the owner's fd table.
    let path = ownerFdPath(request.blobFd);
    let closeFrom = 3;
    if (request.isScript) {
      // A `#!` script is reopened by its interpreter after exec, when every
      // close-on-exec fd is gone: it gets the memfd as fd 3, kept open.
      checkReturned(
        c.posix_spawn_file_actions_adddup2(actions, request.blobFd, 3),
        action,
        "posix_spawn_file_actions_adddup2",
      );
      path = SCRIPT_PATH;
      closeFrom = 4;
    }
    const addclosefrom = c.posix_spawn_file_actions_addclosefrom_np;
    if (addclosefrom) {
      checkReturned(addclosefrom(actions, closeFrom), action, "posix_spawn_file_actions_addclosefrom_np");
    }
    if (request.cwd !== null) {
      const addchdir = c.posix_spawn_file_actions_addchdir_np;
      if (!addchdir) {
        throw new Error(`${action}: this glibc has no posix_spawn_file_actions_addchdir_np (cwd needs 2.29+)`);
      }
      checkReturned(addchdir(actions, request.cwd), action, "posix_spawn_file_actions_addchdir_np");
    }
    return { actions, path };
  } catch (error) {
    c.posix_spawn_file_actions_destroy(actions);
    throw error;
  }
}
