// Flat numeric constants of Linux and glibc, in their C spelling.
//
// Almost every value is the same on x86_64 and aarch64 (both use the kernel's
// asm-generic numbering for what we need); where an architecture differs the
// value is picked from `Deno.build.arch` once, here. tests/constants_test.ts
// checks the sizes and values against a C program where a compiler exists.

const ARCH = Deno.build.arch;

/** True when this architecture is one umh has constants for. */
export const ARCH_SUPPORTED: boolean = ARCH === "x86_64" || ARCH === "aarch64";

// memfd_create(2) and file sealing (fcntl(2)).
export const MFD_CLOEXEC = 0x0001;
export const MFD_ALLOW_SEALING = 0x0002;
/** Linux 6.3+: ask for an executable memfd, so `vm.memfd_noexec=1` does not apply. */
export const MFD_EXEC = 0x0010;
export const F_ADD_SEALS = 1033;
export const F_GET_SEALS = 1034;
export const F_SEAL_SEAL = 0x0001;
export const F_SEAL_SHRINK = 0x0002;
export const F_SEAL_GROW = 0x0004;
export const F_SEAL_WRITE = 0x0008;
export const F_SEAL_FUTURE_WRITE = 0x0010;
/** Linux 6.3+: forbids chmod of the exec bits. */
export const F_SEAL_EXEC = 0x0020;

// fcntl(2).
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const FD_CLOEXEC = 1;
export const F_DUPFD_CLOEXEC = 1030;
export const F_SETPIPE_SZ = 1031;
export const F_GETPIPE_SZ = 1032;

// open(2) flags.
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const O_EXCL = 0o200;
/** O_TMPFILE includes O_DIRECTORY, whose value differs on aarch64. */
export const O_TMPFILE = ARCH === "aarch64" ? 0o20040000 : 0o20200000;

// posix_spawn(3), glibc.
export const POSIX_SPAWN_SETPGROUP = 0x02;
export const POSIX_SPAWN_SETSIGDEF = 0x04;
export const POSIX_SPAWN_SETSIGMASK = 0x08;
export const POSIX_SPAWN_SETSID = 0x80;
/** `sizeof(posix_spawnattr_t)` in glibc on x86_64 and aarch64. */
export const SIZEOF_POSIX_SPAWNATTR_T = 336;
/** `sizeof(posix_spawn_file_actions_t)` in glibc on x86_64 and aarch64. */
export const SIZEOF_POSIX_SPAWN_FILE_ACTIONS_T = 80;
/** `sizeof(sigset_t)` in glibc (1024 bits). */
export const SIZEOF_SIGSET_T = 128;

// epoll(7). x86_64 packs `struct epoll_event` to 12 bytes; aarch64 pads it to 16.
export const EPOLL_CLOEXEC = O_CLOEXEC;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLONESHOT = 1 << 30;
export const SIZEOF_EPOLL_EVENT = ARCH === "aarch64" ? 16 : 12;

// poll(2): struct pollfd { int fd; short events; short revents; }
export const POLLIN = 0x001;
export const SIZEOF_POLLFD = 8;
export const EPOLL_EVENT_DATA_OFFSET = ARCH === "aarch64" ? 8 : 4;

// eventfd(2).
export const EFD_CLOEXEC = O_CLOEXEC;
export const EFD_NONBLOCK = O_NONBLOCK;

// waitid(2) and siginfo_t.
export const P_PID = 1;
export const P_PIDFD = 3;
export const WNOHANG = 1;
export const WEXITED = 4;
export const SIZEOF_SIGINFO_T = 128;
export const SIGINFO_CODE_OFFSET = 8;
export const SIGINFO_PID_OFFSET = 16;
export const SIGINFO_STATUS_OFFSET = 24;
export const CLD_EXITED = 1;
export const CLD_KILLED = 2;
export const CLD_DUMPED = 3;

// pidfd_open(2).
export const PIDFD_NONBLOCK = O_NONBLOCK;

// execveat(2) and friends.
export const AT_EMPTY_PATH = 0x1000;
export const AT_FDCWD = -100;

// close_range(2).
export const CLOSE_RANGE_CLOEXEC = 1 << 2;

// prctl(2).
export const PR_SET_PDEATHSIG = 1;
export const PR_SET_NAME = 15;
export const PR_SET_NO_NEW_PRIVS = 38;

/** Syscall numbers for what glibc 2.36 may not wrap. */
export const SYS_pidfd_send_signal = 424;
export const SYS_pidfd_open = 434;
export const SYS_close_range = 436;
export const SYS_memfd_create = ARCH === "aarch64" ? 279 : 319;
export const SYS_execveat = ARCH === "aarch64" ? 281 : 322;
export const SYS_rt_sigaction = ARCH === "aarch64" ? 134 : 13;

/** Linux signal numbers (the same on x86_64 and aarch64). */
export const SIGNALS = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
} as const;

/** A signal name umh knows, as `Deno.Signal` spells it. */
export type SignalName = keyof typeof SIGNALS;

/** Highest real-time signal number; `_NSIG - 1` in glibc. */
export const SIGRTMAX = 64;
