/*
 * trampoline: the child-side-setup spawn path of umh, without JavaScript in
 * the child. Built by tools/build_trampoline.sh into blobs/trampoline.<arch>.so
 * (freestanding: no libc, raw syscalls, no relocations, no imports), loaded by
 * ffi/trampoline.ts from a memfd with Deno.dlopen and called synchronously on
 * the JavaScript thread.
 *
 * Protocol: one exported function, `int umh_spawn(struct umh_spawn_req *req)`.
 * It returns the child's pid, or -errno with req->err_step naming the step
 * that failed (UMH_STEP_*), req->err_errno its errno and req->err_arg the fd
 * or RLIMIT_* involved. A failed child is already reaped when it returns, and
 * every pipe it made is closed. For each fd i in req->pipe_mask it makes a
 * pipe (O_CLOEXEC), gives the child its end as fd i, closes that end in the
 * owner once the child has exec'd, and returns the owner's end, O_NONBLOCK,
 * in req->parent_fd[i]: one call from JavaScript instead of nine.
 *
 * Why this shape:
 * - posix_spawn cannot set a parent-death signal, an arbitrary uid/gid/groups,
 *   no_new_privs or rlimits, and fork() from Deno leaves a child without V8's
 *   heap (MADV_DONTFORK). So a few hundred bytes of C do what glibc's
 *   posix_spawn does: clone(CLONE_VM | CLONE_VFORK) and run only this code in
 *   the child until exec. The parent waits until the child has exec'd or
 *   exited, so errors come back through the shared request struct. On the
 *   clone3 path it waits without CLONE_VFORK: CLONE_CHILD_CLEARTID has the
 *   kernel zero a word when the child's exec (or exit) releases the shared
 *   memory, and the parent spins on sched_yield until then (await_exec).
 * - Raw syscalls only: in a CLONE_VM child nothing may touch glibc state
 *   (errno, locks, lazy PLT binding) that the owner's threads share. The child
 *   function is called through a register, never through the PLT, and the
 *   link (-z defs, -nostdlib) proves the object imports nothing.
 * - The child stack is an array in umh_spawn's own frame, as musl does it:
 *   this thread does not return from it while the child runs (vfork, or
 *   await_exec), so the frame cannot change under it; there is no
 *   allocation, nothing static, and two threads (Deno workers) may spawn at
 *   once. The child needs well under 1 KiB of it.
 * - All signals stay blocked from before clone until just before exec. The
 *   child shares the owner's memory, so an owner handler running in it would
 *   corrupt the owner. clone3 with CLONE_CLEAR_SIGHAND (Linux 5.5+) gives the
 *   child its own handler table with every handled signal back at SIG_DFL,
 *   at no cost; where clone3 or the flag is missing (ENOSYS, EINVAL) the
 *   child is made with clone and asks for each signal's disposition itself
 *   (rt_sigaction with no new action), resetting the handled ones. Either
 *   way SIGPIPE, which the runtime ignores for itself, goes back to SIG_DFL;
 *   any other signal the owner ignores stays ignored, as POSIX and
 *   Deno.Command have it. The mask is
 *   emptied last, right before exec; the parent restores its own afterwards.
 * - clone3 also returns a pidfd for the child (CLONE_PIDFD, close-on-exec),
 *   in req->pidfd: no pidfd_open, and no window in which the pid could be
 *   anyone else's. It is -1 on the clone path.
 * - Order in the child: session/process group; stdio and a `#!` script's
 *   fd 3 (before rlimits, so a low RLIMIT_NOFILE cannot refuse them);
 *   rlimits (raising a hard limit needs privileges we may drop next);
 *   setgroups -> setresgid -> setresuid (groups and gid need privilege, so
 *   they go before uid; setres* also drops the saved ids); no_new_privs;
 *   chdir (checked as the new user); PR_SET_PDEATHSIG after the credential
 *   change because the kernel clears it when credentials change, then
 *   getppid() must still be the owner (closes the race with the owner dying
 *   before prctl); every fd above 2 (3 for a script) marked close-on-exec
 *   with close_range; exec.
 * - A credential change marks the *shared* mm non-dumpable (commit_creds),
 *   which would leave the owner non-dumpable for good. The child must not
 *   undo it (a dumpable child owned by the new uid, still sharing the
 *   owner's memory, could be ptraced by that user); the parent restores its
 *   own setting once the child has exec'd or exited.
 * - ELF: execveat(memfd, "", AT_EMPTY_PATH); the memfd may be close-on-exec.
 *   `#!` script: the interpreter reopens the file after exec, so the memfd is
 *   dup'd to fd 3 without FD_CLOEXEC and exec'd as /proc/self/fd/3 (allowed
 *   for the process itself even when it is not dumpable).
 * - PR_SET_PDEATHSIG fires when the parent *thread* exits: from the
 *   JavaScript main thread that is the process's end; from a Worker's, the
 *   Worker's (umh sets SIGKILL by default, so a Worker's helpers go with it).
 */
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
enum {
  SYS_close = 3,
  SYS_rt_sigaction = 13, SYS_rt_sigprocmask = 14, SYS_getpid = 39, SYS_clone = 56, SYS_execve = 59,
  SYS_clone3 = 435, SYS_pipe2 = 293,
  SYS_wait4 = 61, SYS_fcntl = 72, SYS_chdir = 80, SYS_setpgid = 109, SYS_getppid = 110, SYS_setsid = 112,
  SYS_setgroups = 116, SYS_setresuid = 117, SYS_setresgid = 119, SYS_prctl = 157, SYS_exit_group = 231,
  SYS_dup3 = 292, SYS_prlimit64 = 302, SYS_execveat = 322, SYS_close_range = 436,
  SYS_sched_yield = 24, SYS_futex = 202, SYS_waitid = 247,
};
#elif defined(__aarch64__)
enum {
  SYS_close = 57,
  SYS_rt_sigaction = 134, SYS_rt_sigprocmask = 135, SYS_getpid = 172, SYS_clone = 220, SYS_execve = 221,
  SYS_clone3 = 435, SYS_pipe2 = 59,
  SYS_wait4 = 260, SYS_fcntl = 25, SYS_chdir = 49, SYS_setpgid = 154, SYS_getppid = 173, SYS_setsid = 157,
  SYS_setgroups = 159, SYS_setresuid = 147, SYS_setresgid = 149, SYS_prctl = 167, SYS_exit_group = 94,
  SYS_dup3 = 24, SYS_prlimit64 = 261, SYS_execveat = 281, SYS_close_range = 436,
  SYS_sched_yield = 124, SYS_futex = 98, SYS_waitid = 95,
};
#else
#error "umh trampoline: x86_64 and aarch64 only"
#endif

#define CLONE_VM 0x100
#define CLONE_VFORK 0x4000
#define CLONE_PIDFD 0x1000
#define CLONE_CHILD_CLEARTID 0x200000
#define FUTEX_WAIT 0
#define ETIMEDOUT 110
#define P_PIDFD 3
#define WNOHANG 1
#define WEXITED 4
#define WNOWAIT 0x01000000
#define EXEC_SPIN_YIELDS 5000 /* about 1 ms of sched_yield where nothing else wants this CPU */
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#define SIGKILL 9
#define SIGSTOP 19
#define SIGCHLD 17
#define SIGPIPE 13
#define ENOSYS 38
#define EINVAL 22
#define SIG_SETMASK 2
#define EINTR 4
#define ESRCH 3
#define F_SETFD 2
#define F_SETFL 4
#define O_NONBLOCK 04000      /* the same on x86_64 and aarch64 */
#define O_CLOEXEC 02000000
#define F_DUPFD_CLOEXEC 1030
#define AT_EMPTY_PATH 0x1000
#define CLOSE_RANGE_CLOEXEC 4
#define PR_SET_PDEATHSIG 1
#define PR_GET_DUMPABLE 3
#define PR_SET_DUMPABLE 4
#define PR_SET_NO_NEW_PRIVS 38
#define CHILD_STACK_SIZE 16384

/* req->flags */
#define UMH_SCRIPT 0x01
#define UMH_SETSID 0x02
#define UMH_SETPGID 0x04
#define UMH_SETGROUPS 0x08
#define UMH_SETGID 0x10
#define UMH_SETUID 0x20
#define UMH_NO_NEW_PRIVS 0x40
#define UMH_NO_CLONE3 0x80 /* take the clone path even where clone3 works (tests) */
#define UMH_NO_SPIN 0x100  /* clone3 path: wait for the exec on the futex at once (tests) */

/* req->err_step: which call failed. ffi/trampoline.ts has the same table. */
enum {
  UMH_STEP_DUP2 = 1, UMH_STEP_CHDIR = 2, UMH_STEP_SETGROUPS = 3, UMH_STEP_SETGID = 4, UMH_STEP_SETUID = 5,
  UMH_STEP_PDEATHSIG = 6, UMH_STEP_PARENT_CHANGED = 7, UMH_STEP_NO_NEW_PRIVS = 8, UMH_STEP_RLIMIT = 9,
  UMH_STEP_SETSID = 10, UMH_STEP_SETPGID = 11, UMH_STEP_EXEC = 12, UMH_STEP_CLONE = 13, UMH_STEP_SIGACTION = 14,
  UMH_STEP_SIGMASK = 15, UMH_STEP_FCNTL = 16, UMH_STEP_PIPE = 17,
};

struct umh_rlimit {
  uint64_t resource; /* RLIMIT_* */
  uint64_t soft;     /* with hard: the kernel's struct rlimit64 */
  uint64_t hard;
};

/* Laid out byte by byte in ffi/trampoline.ts: keep the offsets in step. */
struct umh_spawn_req {
  int32_t blob_fd;                  /*  0 memfd (or read-only tmpfile) to exec */
  uint32_t flags;                   /*  4 UMH_* */
  int32_t stdio[3];                 /*  8 source fd for child fd 0, 1, 2; -1 inherits; unread where piped */
  int32_t pdeath_signal;            /* 20 0: none */
  int32_t pgid;                     /* 24 with UMH_SETPGID; 0: a new group led by the child */
  uint32_t uid;                     /* 28 with UMH_SETUID */
  uint32_t gid;                     /* 32 with UMH_SETGID */
  uint32_t ngroups;                 /* 36 with UMH_SETGROUPS; 0 clears them */
  uint32_t nlimits;                 /* 40 */
  int32_t err_step;                 /* 44 out: UMH_STEP_*, 0 on success */
  int32_t err_errno;                /* 48 out */
  int32_t err_arg;                  /* 52 out: fd or resource of the failed step */
  const uint32_t *groups;           /* 56 */
  const struct umh_rlimit *limits;  /* 64 */
  char *const *argv;                /* 72 NULL-terminated */
  char *const *envp;                /* 80 NULL-terminated; NULL: *environ_ref */
  const char *cwd;                  /* 88 NULL: keep the owner's */
  int32_t pidfd;                    /* 96 out: the child's pidfd from clone3, or -1 */
  uint32_t pipe_mask;               /* 100 bit i: a pipe for fd i (0: the child reads, 1, 2: it writes) */
  int32_t parent_fd[3];             /* 104 out: the owner's end of each pipe, O_NONBLOCK, or -1 */
  int32_t reserved;                 /* 116 */
  char **const *environ_ref;        /* 120 the address of the owner's `environ`, read at the spawn */
};

_Static_assert(offsetof(struct umh_spawn_req, err_step) == 44, "layout");
_Static_assert(offsetof(struct umh_spawn_req, groups) == 56, "layout");
_Static_assert(offsetof(struct umh_spawn_req, cwd) == 88, "layout");
_Static_assert(offsetof(struct umh_spawn_req, pidfd) == 96, "layout");
_Static_assert(offsetof(struct umh_spawn_req, parent_fd) == 104, "layout");
_Static_assert(offsetof(struct umh_spawn_req, environ_ref) == 120, "layout");
_Static_assert(sizeof(struct umh_spawn_req) == 128, "layout");
_Static_assert(sizeof(struct umh_rlimit) == 24, "layout");

struct child_ctx {
  struct umh_spawn_req *req;
  long owner;        /* the owner's pid, for the PR_SET_PDEATHSIG race check */
  int handlers_left; /* 1 on the clone path: the child still has the owner's handlers */
  int stdio[3];      /* the child's fd 0, 1, 2 sources: req->stdio, or the child's pipe ends */
  char *const *envp; /* req->envp, or the owner's environ at the spawn */
};

/* The first fields of struct clone_args (CLONE_ARGS_SIZE_VER0). */
struct clone_args_v0 {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

#if defined(__x86_64__)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "+a"(n)
                   : "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return n;
}

/*
 * The vfork-style clone, through system call `nr` with arguments `a` and `b`:
 * clone(flags, stack top) or clone3(&args, sizeof args), the other argument
 * registers zero (no parent_tid, child_tid or tls). The child calls `fn`
 * through a register (no PLT, no return into this frame) and exits 127 if it
 * ever returns. The parent gets the pid or -errno once the child has exec'd
 * or exited.
 */
static long clone_entry(long nr, long a, long b, void (*fn)(struct child_ctx *), struct child_ctx *ctx) {
  register long rax __asm__("rax") = nr;
  register long rdi __asm__("rdi") = a;
  register long rsi __asm__("rsi") = b;
  register long rdx __asm__("rdx") = 0;
  register long r10 __asm__("r10") = 0;
  register long r8 __asm__("r8") = 0;
  /* Pinned, so that neither can be given %rbp, which the child clears for backtraces. */
  register void (*r12)(struct child_ctx *) __asm__("r12") = fn;
  register struct child_ctx *r13 __asm__("r13") = ctx;
  __asm__ volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xor %%ebp, %%ebp\n\t"
      "mov %[ctx], %%rdi\n\t"
      "call *%[fn]\n\t"
      "mov $127, %%edi\n\t"
      "mov %[exit], %%eax\n\t"
      "syscall\n\t"
      "hlt\n"
      "1:"
      : "+r"(rax)
      : "r"(rdi), "r"(rsi), "r"(rdx), "r"(r10), "r"(r8), [fn] "r"(r12), [ctx] "r"(r13), [exit] "i"(SYS_exit_group)
      : "rcx", "r11", "memory", "cc");
  return rax;
}
#else
static inline long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}

/* As on x86_64; aarch64's clone takes (flags, stack, parent_tid, tls, child_tid). */
static long clone_entry(long nr, long a, long b, void (*fn)(struct child_ctx *), struct child_ctx *ctx) {
  register long x8 __asm__("x8") = nr;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = 0;
  register long x3 __asm__("x3") = 0;
  register long x4 __asm__("x4") = 0;
  /* Pinned, so that neither can be given x29 or x30, which the child clears. */
  register void (*x9)(struct child_ctx *) __asm__("x9") = fn;
  register struct child_ctx *x10 __asm__("x10") = ctx;
  __asm__ volatile(
      "svc #0\n\t"
      "cbnz x0, 1f\n\t"
      "mov x29, #0\n\t"
      "mov x30, #0\n\t"
      "mov x0, %[ctx]\n\t"
      "blr %[fn]\n\t"
      "mov x0, #127\n\t"
      "mov x8, %[exit]\n\t"
      "svc #0\n\t"
      "brk #0\n"
      "1:"
      : "+r"(x0)
      : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), [fn] "r"(x9), [ctx] "r"(x10), [exit] "i"(SYS_exit_group)
      : "memory", "cc");
  return x0;
}
#endif

#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* Child only: report `step` and the -errno in `r` to the parent, then exit 127. */
__attribute__((noreturn)) static void fail(struct umh_spawn_req *req, int step, long r, int arg) {
  req->err_arg = arg;
  req->err_errno = (int)-r;
  req->err_step = step; /* last: the parent tests this one */
  for (;;) sys1(SYS_exit_group, 127);
}

#define CHECK(call, step, arg) \
  do {                         \
    long r_ = (call);          \
    if (r_ < 0) fail(req, step, r_, arg); \
  } while (0)

/* Child only: a close-on-exec copy of `fd` numbered 3 or above. */
static int move_up(struct umh_spawn_req *req, int fd) {
  long r = sys3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);
  if (r < 0) fail(req, UMH_STEP_FCNTL, r, fd);
  return (int)r;
}

/*
 * Child only: SIGPIPE back to SIG_DFL, and on the clone path every signal
 * that still has one of the owner's handlers too (asked one by one, as glibc's
 * posix_spawn does). Ignored signals other than SIGPIPE stay ignored.
 */
static void reset_signals(struct child_ctx *ctx) {
  struct umh_spawn_req *req = ctx->req;
  const uint64_t sig_dfl[4] = {0, 0, 0, 0}; /* struct sigaction: SIG_DFL, no flags, empty mask */
  for (int sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    if (sig != SIGPIPE) {
      if (!ctx->handlers_left) continue;
      uint64_t old[4] = {0, 0, 0, 0};
      CHECK(sys4(SYS_rt_sigaction, sig, 0, old, 8), UMH_STEP_SIGACTION, sig);
      if (old[0] <= 1) continue; /* SIG_DFL (0) or SIG_IGN (1) */
    }
    CHECK(sys4(SYS_rt_sigaction, sig, sig_dfl, 0, 8), UMH_STEP_SIGACTION, sig);
  }
}

/* Child only: runs on the array in umh_spawn's frame until exec. Never returns. */
__attribute__((noinline, used)) static void child_main(struct child_ctx *ctx) {
  struct umh_spawn_req *req = ctx->req;
  const uint32_t flags = req->flags;
  const uint64_t no_signals = 0;

  reset_signals(ctx);
  if (flags & UMH_SETSID) CHECK(sys0(SYS_setsid), UMH_STEP_SETSID, 0);
  if (flags & UMH_SETPGID) CHECK(sys2(SYS_setpgid, 0, req->pgid), UMH_STEP_SETPGID, req->pgid);

  /* A source below 3 could be overwritten by an earlier dup2: move it up first. */
  int fds[3] = {ctx->stdio[0], ctx->stdio[1], ctx->stdio[2]};
  int blob = req->blob_fd;
  for (int i = 0; i < 3; i++) {
    if (fds[i] >= 0 && fds[i] < 3 && fds[i] != i) fds[i] = move_up(req, fds[i]);
  }
  if (blob < 3) blob = move_up(req, blob);
  for (int i = 0; i < 3; i++) {
    if (fds[i] == i) CHECK(sys3(SYS_fcntl, i, F_SETFD, 0), UMH_STEP_FCNTL, i); /* dup2 onto itself keeps CLOEXEC */
    else if (fds[i] >= 0) CHECK(sys3(SYS_dup3, fds[i], i, 0), UMH_STEP_DUP2, i);
  }
  if (flags & UMH_SCRIPT) {
    if (blob == 3) CHECK(sys3(SYS_fcntl, 3, F_SETFD, 0), UMH_STEP_FCNTL, 3);
    else CHECK(sys3(SYS_dup3, blob, 3, 0), UMH_STEP_DUP2, 3);
  }

  for (uint32_t i = 0; i < req->nlimits; i++) {
    const struct umh_rlimit *limit = &req->limits[i];
    CHECK(sys4(SYS_prlimit64, 0, limit->resource, &limit->soft, 0), UMH_STEP_RLIMIT, (int)limit->resource);
  }
  if (flags & UMH_SETGROUPS) CHECK(sys2(SYS_setgroups, req->ngroups, req->groups), UMH_STEP_SETGROUPS, 0);
  if (flags & UMH_SETGID) CHECK(sys3(SYS_setresgid, req->gid, req->gid, req->gid), UMH_STEP_SETGID, 0);
  if (flags & UMH_SETUID) CHECK(sys3(SYS_setresuid, req->uid, req->uid, req->uid), UMH_STEP_SETUID, 0);
  if (flags & UMH_NO_NEW_PRIVS) CHECK(sys5(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), UMH_STEP_NO_NEW_PRIVS, 0);
  if (req->cwd) CHECK(sys1(SYS_chdir, req->cwd), UMH_STEP_CHDIR, 0);
  if (req->pdeath_signal) {
    CHECK(sys5(SYS_prctl, PR_SET_PDEATHSIG, req->pdeath_signal, 0, 0, 0), UMH_STEP_PDEATHSIG, req->pdeath_signal);
    if (sys0(SYS_getppid) != ctx->owner) fail(req, UMH_STEP_PARENT_CHANGED, -ESRCH, 0);
  }
  /* Second line of defence behind O_CLOEXEC; ENOSYS/EINVAL before Linux 5.11 is fine. */
  sys3(SYS_close_range, (flags & UMH_SCRIPT) ? 4 : 3, ~0U, CLOSE_RANGE_CLOEXEC);

  CHECK(sys4(SYS_rt_sigprocmask, SIG_SETMASK, &no_signals, 0, 8), UMH_STEP_SIGMASK, 0);
  if (flags & UMH_SCRIPT) {
    fail(req, UMH_STEP_EXEC, sys3(SYS_execve, "/proc/self/fd/3", req->argv, ctx->envp), 0);
  }
  fail(req, UMH_STEP_EXEC, sys5(SYS_execveat, blob, "", req->argv, ctx->envp, AT_EMPTY_PATH), blob);
}

/* Parent only: closes the fds in `fds` that are open (>= 0) and marks them closed. */
static void close_all(int *fds, int count) {
  for (int i = 0; i < count; i++) {
    if (fds[i] >= 0) sys1(SYS_close, fds[i]);
    fds[i] = -1;
  }
}

/*
 * Parent only: the pipes req->pipe_mask asks for. The child's ends go to
 * ctx->stdio, the owner's to `owner`. Returns 0, or -errno with every pipe
 * made so far closed again.
 */
static long make_pipes(struct umh_spawn_req *req, struct child_ctx *ctx, int owner[3], int child[3]) {
  for (int i = 0; i < 3; i++) owner[i] = child[i] = -1;
  for (int i = 0; i < 3; i++) {
    ctx->stdio[i] = req->stdio[i];
    if (!(req->pipe_mask >> i & 1)) continue;
    int ends[2];
    long r = sys2(SYS_pipe2, ends, O_CLOEXEC);
    if (r < 0) {
      close_all(owner, 3);
      close_all(child, 3);
      req->err_arg = i;
      return r;
    }
    /* ends[0] reads, ends[1] writes: the child reads its stdin and writes the rest. */
    child[i] = ends[i == 0 ? 0 : 1];
    owner[i] = ends[i == 0 ? 1 : 0];
    ctx->stdio[i] = child[i];
  }
  return 0;
}

/*
 * Parent only, clone3 path: returns once the child has exec'd or exited. The
 * kernel zeroes *word and wakes its futex at either (CLONE_CHILD_CLEARTID:
 * exec releases the shared mm, as exit does). Spinning on sched_yield first
 * keeps this vCPU awake for the 40-150 µs an exec takes, where CLONE_VFORK's
 * sleep and cross-vCPU wake-up cost a VM about 45 µs more per spawn. A child
 * queued on this CPU gets it at the first yield and keeps it past its exec
 * until it blocks or its time slice ends, as it often does after a vfork too
 * (a helper that computes for 50 ms before reading stdin: spawn() 2.2 ms
 * median, 4.8 at most, against 1.7 and 4.7 with CLONE_VFORK). Spinning on
 * pause instead would keep such a child from running at all; asking
 * /proc/<pid>/stat where it is queued, to pause-spin only for a child on
 * another CPU, cost 2 µs and won nothing in the bench. A child slower than
 * about 1 ms of yields (a stop signal, a slow chdir) is waited for on the
 * futex. Kernels before 5.16 leave the word set when the child dies dumping
 * core, so a timed-out wait also asks the pidfd whether the child has exited.
 */
static void await_exec(int32_t *word, int pidfd, int spin) {
  for (int i = 0; spin && i < EXEC_SPIN_YIELDS; i++) {
    if (__atomic_load_n(word, __ATOMIC_ACQUIRE) == 0) return;
    sys0(SYS_sched_yield);
  }
  const long timeout[2] = {0, 10 * 1000 * 1000}; /* struct timespec: 10 ms */
  while (__atomic_load_n(word, __ATOMIC_ACQUIRE) != 0) {
    if (sys4(SYS_futex, word, FUTEX_WAIT, 1, timeout) != -ETIMEDOUT) continue;
    uint64_t info[16]; /* siginfo_t; si_pid is the low half of info[2] */
    info[2] = 0;
    if (sys5(SYS_waitid, P_PIDFD, pidfd, info, WEXITED | WNOHANG | WNOWAIT, 0) == 0 && (uint32_t)info[2] != 0) return;
  }
}

/* Starts the helper described by `req`: the pid, or -errno with req->err_* set. */
__attribute__((visibility("default"))) int umh_spawn(struct umh_spawn_req *req) {
  _Alignas(16) char stack[CHILD_STACK_SIZE];
  struct child_ctx ctx = {req, sys0(SYS_getpid), 0, {-1, -1, -1}, req->envp};
  const uint64_t all_signals = ~(uint64_t)0;
  uint64_t saved_mask = 0;
  long dumpable = -1;
  int pidfd = -1;
  int32_t in_child = 1; /* clone3 path: the kernel zeroes it once the child has exec'd or exited */
  int owner[3], child[3];

  req->err_step = 0;
  req->err_errno = 0;
  req->err_arg = 0;
  req->pidfd = -1;
  for (int i = 0; i < 3; i++) req->parent_fd[i] = -1;
  long made = make_pipes(req, &ctx, owner, child);
  if (made < 0) {
    req->err_step = UMH_STEP_PIPE;
    req->err_errno = (int)-made;
    return (int)made;
  }
  if (ctx.envp == 0 && req->environ_ref != 0) ctx.envp = *req->environ_ref; /* setenv may move it: read it now */
  if (req->flags & (UMH_SETGROUPS | UMH_SETGID | UMH_SETUID)) dumpable = sys1(SYS_prctl, PR_GET_DUMPABLE);
  sys4(SYS_rt_sigprocmask, SIG_SETMASK, &all_signals, &saved_mask, 8);

  long pid = -ENOSYS;
  if (!(req->flags & UMH_NO_CLONE3)) {
    struct clone_args_v0 args = {
        .flags = CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND | CLONE_CHILD_CLEARTID,
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .child_tid = (uint64_t)(uintptr_t)&in_child,
        .exit_signal = SIGCHLD,
        .stack = (uint64_t)(uintptr_t)stack,
        .stack_size = sizeof stack,
    };
    pid = clone_entry(SYS_clone3, (long)&args, (long)sizeof args, child_main, &ctx);
    if (pid > 0) await_exec(&in_child, pidfd, !(req->flags & UMH_NO_SPIN));
  }
  if (pid == -ENOSYS || pid == -EINVAL) { /* no clone3 (before 5.3), or no CLONE_CLEAR_SIGHAND (before 5.5) */
    ctx.handlers_left = 1;
    pidfd = -1;
    pid = clone_entry(SYS_clone, CLONE_VM | CLONE_VFORK | SIGCHLD, (long)(stack + sizeof stack), child_main, &ctx);
  }
  if (pid < 0) {
    req->err_step = UMH_STEP_CLONE;
    req->err_errno = (int)-pid;
  } else if (req->err_step != 0) {
    while (sys4(SYS_wait4, pid, 0, 0, 0) == -EINTR) {
    }
    if (pidfd >= 0) sys1(SYS_close, pidfd);
    pidfd = -1;
  }
  if (dumpable >= 0) sys2(SYS_prctl, PR_SET_DUMPABLE, dumpable);
  sys4(SYS_rt_sigprocmask, SIG_SETMASK, &saved_mask, 0, 8);
  /* The child has its copies (or failed): ours must go now, or the owner never sees EOF. */
  close_all(child, 3);
  if (req->err_step != 0) {
    close_all(owner, 3);
    return -req->err_errno;
  }
  /* O_NONBLOCK on the owner's open file descriptions only; the helper's ends are other ones. */
  for (int i = 0; i < 3; i++) {
    if (owner[i] >= 0) sys3(SYS_fcntl, owner[i], F_SETFL, O_NONBLOCK);
    req->parent_fd[i] = owner[i];
  }
  req->pidfd = pidfd;
  return (int)pid;
}
