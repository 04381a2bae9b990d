// The libc symbol table, opened once, on first use.
//
// Opening is deferred to the first call (not done at import) so that importing
// umh on a machine without glibc, or without --allow-ffi, does not throw; the
// first call that needs libc fails with one sentence that says what is missing.

/** What umh calls in glibc. Keys are the C names; comments give the C signatures. */
export const LIBC_SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" }, // int *(void)
  strerror: { parameters: ["i32"], result: "pointer" }, // char *(int errnum)
  gnu_get_libc_version: { parameters: [], result: "pointer" }, // const char *(void)
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" }, // const char *name, unsigned flags
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" }, // const char *path, int flags, mode_t mode
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" }, // const char *path, char *buf, size_t size
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" }, // int fd, void *buf, size_t count
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" }, // int fd, const void *buf, size_t count
  close: { parameters: ["i32"], result: "i32" }, // int fd
  sched_yield: { parameters: [], result: "i32" }, // int (void)
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" }, // int fd, int cmd, ... (long arg)
  fchmod: { parameters: ["i32", "u32"], result: "i32" }, // int fd, mode_t mode
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" }, // int fd, struct statfs *buf
  pipe2: { parameters: ["buffer", "i32"], result: "i32" }, // int pipefd[2], int flags
  eventfd: { parameters: ["u32", "i32"], result: "i32" }, // unsigned initval, int flags
  epoll_create1: { parameters: ["i32"], result: "i32" }, // int flags
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" }, // int epfd, int op, int fd, struct epoll_event *ev
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" }, // int epfd, struct epoll_event *evs, int max, int timeout
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" }, // struct pollfd *fds, nfds_t nfds, int timeout
  epoll_wait_nonblocking: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"], // same as epoll_wait, run on a worker thread
    result: "i32",
    nonblocking: true,
  },
  posix_spawn: {
    // pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
    // const posix_spawnattr_t *attr, char *const argv[], char *const envp[]
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "pointer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" }, // posix_spawn_file_actions_t *fa
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" }, // posix_spawn_file_actions_t *fa
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" }, // fa, int fd, int newfd
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"], // fa, int fd, const char *path, int oflag, mode_t mode
    result: "i32",
  },
  posix_spawn_file_actions_addchdir_np: { parameters: ["buffer", "buffer"], result: "i32", optional: true }, // fa, const char *path (glibc 2.29+)
  posix_spawn_file_actions_addclosefrom_np: { parameters: ["buffer", "i32"], result: "i32", optional: true }, // fa, int from (glibc 2.34+)
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" }, // posix_spawnattr_t *attr
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" }, // posix_spawnattr_t *attr
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" }, // attr, short flags
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" }, // attr, const sigset_t *set
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" }, // attr, const sigset_t *set
  posix_spawnattr_setpgroup: { parameters: ["buffer", "i32"], result: "i32" }, // attr, pid_t pgroup
  sigemptyset: { parameters: ["buffer"], result: "i32" }, // sigset_t *set
  sigaddset: { parameters: ["buffer", "i32"], result: "i32" }, // sigset_t *set, int signum
  sigdelset: { parameters: ["buffer", "i32"], result: "i32" }, // sigset_t *set, int signo
  waitid: { parameters: ["i32", "u32", "buffer", "i32"], result: "i32" }, // idtype_t, id_t, siginfo_t *, int options
  kill: { parameters: ["i32", "i32"], result: "i32" }, // pid_t pid, int sig
  getpid: { parameters: [], result: "i32" }, // void
  geteuid: { parameters: [], result: "u32" }, // void
  pidfd_open: { parameters: ["i32", "u32"], result: "i32", optional: true }, // pid_t pid, unsigned flags (glibc 2.36+)
  pidfd_send_signal: {
    parameters: ["i32", "i32", "pointer", "u32"], // int pidfd, int sig, siginfo_t *info, unsigned flags (glibc 2.36+)
    result: "i32",
    optional: true,
  },
  // long syscall(long number, ...): glibc's syscall() is plain assembly that
  // moves six integer registers, so declaring the variadic tail as fixed i64
  // arguments is safe on x86_64 and aarch64.
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  environ: { type: "pointer" }, // char **environ (Deno gives the variable's address)
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened table's symbols. */
export type LibcSymbols = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

let opened: LibcSymbols | undefined;

/**
 * The libc symbols, opening glibc on first use.
 * Throws one clear sentence on a system that is not Linux with glibc, or
 * without the FFI permission.
 */
export function libc(): LibcSymbols {
  return opened ??= openLibc();
}

function openLibc(): LibcSymbols {
  if (Deno.build.os !== "linux") {
    throw new Error(
      `Cannot start a user-mode helper: umh needs Linux with glibc, and this is ${Deno.build.os}`,
    );
  }
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    throw new Error(`Cannot start a user-mode helper: umh supports x86_64 and aarch64, not ${Deno.build.arch}`);
  }
  try {
    return Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  } catch (cause) {
    if (cause instanceof Deno.errors.NotCapable || cause instanceof Deno.errors.PermissionDenied) {
      // The class Deno threw (NotCapable), so `instanceof` checks written for Deno's own refusals still hold.
      const Refusal = cause instanceof Deno.errors.NotCapable ? Deno.errors.NotCapable : Deno.errors.PermissionDenied;
      throw new Refusal(
        "Cannot start a user-mode helper: umh needs --allow-ffi, because it calls libc (memfd_create, posix_spawn) directly, which gives it full access to this process",
        { cause },
      );
    }
    throw new Error(
      `Cannot open libc: umh needs Linux with glibc ("libc.so.6"), and it could not be loaded: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
  }
}
