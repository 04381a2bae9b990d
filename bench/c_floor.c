/*
 * c_floor: the machine's floor for bench/compare.ts, in plain C on the same
 * helper binaries: posix_spawn (vfork) with pipes, the same framed round trip
 * or the same cat pipe run as bench/workloads.ts, timed inside this process.
 *
 *   c_floor latency <reqrep> <count>        -> {"samples":[us, ...]}
 *   c_floor latency-memfd <reqrep> <count>  -> {"samples":[us, ...]}
 *   c_floor pipe <cat> <bytes> <chunk>      -> {"bytesPerSecond":n}
 *   c_floor startup <reqrep> <count>        -> {"samples":[us, ...]}
 *   c_floor cpuid <count>                   -> {"us":n} (null where not x86)
 *
 * startup is the helper's own share of every contender's round trip: spawned
 * with stdin already at EOF (it exits at once), from posix_spawn to reaped.
 * cpuid is the time of one CPUID instruction, which a VM traps: static glibc
 * runs dozens of them at start (its CPU-feature and cache probes), musl none.
 *
 * latency-memfd is the floor for running from memory: the file is copied
 * into a sealed memfd once, and each helper is started the way umh's
 * trampoline does it, vfork + execveat(memfd, "", AT_EMPTY_PATH), so that the
 * cost of executing a memfd (its page cache is 4 KiB pages where shmem huge
 * pages are off) is in the floor and not charged to umh.
 *
 * Pipes are grown to 1 MiB (F_SETPIPE_SZ) and read with 1 MiB reads, as
 * umh's pipes are under bulk data. Exit status: 0, or 1 with a message on
 * stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

extern char **environ;

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void die(const char *what) {
  fprintf(stderr, "c_floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* The sealed memfd holding the helper for latency-memfd, or -1. */
static int blob_fd = -1;

static void load_memfd(const char *path) {
  int file = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (file < 0 || fstat(file, &st) != 0) die("open");
  blob_fd = memfd_create("helper", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (blob_fd < 0) die("memfd_create");
  char buffer[65536];
  for (;;) {
    ssize_t n = read(file, buffer, sizeof buffer);
    if (n < 0) die("read");
    if (n == 0) break;
    if (write(blob_fd, buffer, (size_t)n) != n) die("write");
  }
  close(file);
  if (fcntl(blob_fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) die("seal");
}

/* vfork + execveat of the memfd, as umh's trampoline does; only async-signal-safe calls in the child. */
static pid_t start_memfd(int in, int out) {
  char *argv[] = {(char *)"helper", NULL};
  pid_t pid = vfork();
  if (pid == 0) {
    if (dup2(in, 0) == 0 && dup2(out, 1) == 1) syscall(SYS_execveat, blob_fd, "", argv, environ, AT_EMPTY_PATH);
    _exit(127);
  }
  if (pid < 0) die("vfork");
  return pid;
}

/* posix_spawn of the file `path` with `in` as its stdin and `out` as its stdout. */
static pid_t start_file(const char *path, int in, int out) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, pipe_only;
  sigemptyset(&none);
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in, 0);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &pipe_only);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  char *argv[] = {(char *)"helper", NULL};
  int err = posix_spawn(&pid, path, &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    errno = err;
    die("posix_spawn");
  }
  return pid;
}

/* Starts `path` (or the memfd) with stdin and stdout piped; *to and *from get the owner's ends. */
static pid_t start(const char *path, int *to, int *from) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) die("pipe2");
  pid_t pid = blob_fd >= 0 ? start_memfd(in[0], out[1]) : start_file(path, in[0], out[1]);
  close(in[0]);
  close(out[1]);
  *to = in[1];
  *from = out[0];
  return pid;
}

static void reap(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) die("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (WIFEXITED(status)) fprintf(stderr, "c_floor: the helper failed: exit code %d\n", WEXITSTATUS(status));
    else fprintf(stderr, "c_floor: the helper failed: killed by signal %d\n", WTERMSIG(status));
    exit(1);
  }
}

/* Reads `from` to EOF, closes it and reaps `pid`. */
static void drain_and_reap(pid_t pid, int from) {
  unsigned char sink[64];
  while (read(from, sink, sizeof sink) > 0) {
  }
  close(from);
  reap(pid);
}

static void latency(const char *path, int count) {
  static const unsigned char request[8] = {4, 0, 0, 0, 'p', 'i', 'n', 'g'};
  printf("{\"samples\":[");
  for (int i = 0; i < count; i++) {
    double t0 = now_us();
    int to, from;
    pid_t pid = start(path, &to, &from);
    if (write(to, request, sizeof request) != (ssize_t)sizeof request) die("write");
    unsigned char reply[64];
    size_t got = 0;
    while (got < sizeof request) {
      ssize_t n = read(from, reply, sizeof reply);
      if (n <= 0) die("read");
      got += (size_t)n;
    }
    close(to);
    drain_and_reap(pid, from);
    printf("%s%.1f", i ? "," : "", now_us() - t0);
  }
  printf("]}\n");
}

static void startup(const char *path, int count) {
  printf("{\"samples\":[");
  for (int i = 0; i < count; i++) {
    double t0 = now_us();
    int to, from;
    pid_t pid = start(path, &to, &from);
    close(to); /* EOF before the helper even runs: it starts, reads nothing, exits */
    drain_and_reap(pid, from);
    printf("%s%.1f", i ? "," : "", now_us() - t0);
  }
  printf("]}\n");
}

static void cpuid_cost(int count) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  double t0 = now_us();
  for (int i = 0; i < count; i++) __cpuid(0, a, b, c, d); /* asm volatile: never optimized away; any leaf traps */
  (void)a, (void)b, (void)c, (void)d;
  printf("{\"us\":%.3f}\n", (now_us() - t0) / count);
#else
  (void)count;
  printf("{\"us\":null}\n");
#endif
}

static void pipe_run(const char *path, long long bytes, long chunk) {
  unsigned char *out = malloc((size_t)chunk), *in = malloc(1 << 20);
  if (!out || !in) die("malloc");
  memset(out, 'a', (size_t)chunk);
  double t0 = now_us();
  int to, from;
  pid_t pid = start(path, &to, &from);
  fcntl(to, F_SETPIPE_SZ, 1 << 20); /* best effort, as umh */
  fcntl(from, F_SETPIPE_SZ, 1 << 20);
  fcntl(to, F_SETFL, O_NONBLOCK);
  fcntl(from, F_SETFL, O_NONBLOCK);
  long long sent = 0, received = 0;
  long offset = 0;
  for (;;) {
    struct pollfd fds[2] = {{from, POLLIN, 0}, {to, POLLOUT, 0}};
    if (poll(fds, to >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) die("poll");
    if (to >= 0 && fds[1].revents) {
      long want = chunk - offset;
      if (bytes - sent < want) want = (long)(bytes - sent);
      ssize_t n = write(to, out + offset, (size_t)want);
      if (n > 0) {
        sent += n;
        offset = (offset + n) % chunk;
      } else if (n < 0 && errno != EAGAIN) {
        die("write");
      }
      if (sent == bytes) {
        close(to);
        to = -1;
      }
    }
    if (fds[0].revents) {
      ssize_t n = read(from, in, 1 << 20);
      if (n == 0) break;
      if (n > 0) received += n;
      else if (errno != EAGAIN) die("read");
    }
  }
  close(from);
  reap(pid);
  if (received != bytes) {
    fprintf(stderr, "c_floor: short pipe run: %lld of %lld bytes came back\n", received, bytes);
    exit(1);
  }
  printf("{\"bytesPerSecond\":%.0f}\n", (double)bytes / ((now_us() - t0) / 1e6));
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "latency") == 0) {
    latency(argv[2], atoi(argv[3]));
  } else if (argc == 4 && strcmp(argv[1], "latency-memfd") == 0) {
    load_memfd(argv[2]);
    latency(argv[2], atoi(argv[3]));
  } else if (argc == 5 && strcmp(argv[1], "pipe") == 0) {
    pipe_run(argv[2], atoll(argv[3]), atol(argv[4]));
  } else if (argc == 4 && strcmp(argv[1], "startup") == 0) {
    startup(argv[2], atoi(argv[3]));
  } else if (argc == 3 && strcmp(argv[1], "cpuid") == 0) {
    cpuid_cost(atoi(argv[2]));
  } else {
    fprintf(stderr,
            "usage: c_floor latency[-memfd] <reqrep> <count> | pipe <cat> <bytes> <chunk> | startup <reqrep> <count> | "
            "cpuid <count>\n");
    return 1;
  }
  return 0;
}
