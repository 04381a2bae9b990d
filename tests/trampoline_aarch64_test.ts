// The shipped aarch64 trampoline (ffi/trampoline_objects.ts), run: a small
// aarch64 C program loads it with dlopen and calls umh_spawn under qemu-user.
// No aarch64 Deno exists here, so this is the only run it gets on this
// machine. qemu-user turns clone(CLONE_VM | CLONE_VFORK) into a fork, so the
// child's error report (written into the shared request) cannot reach the
// parent here, and qemu 7.2 does not emulate execveat: the test starts a `#!`
// script, which the trampoline execs as /proc/self/fd/3 with execve. That
// covers the aarch64 clone3 entry (or, where qemu refuses clone3, the clone
// entry and the child's disposition queries), the syscall numbers of every
// child step the script path takes (rt_sigaction, dup3, fcntl, close_range,
// rt_sigprocmask, execve) and the parent's side.

import assert from "node:assert/strict";
import { TRAMPOLINE_AARCH64 } from "../ffi/trampoline_objects.ts";
import { hasCommand, text } from "./test_util.ts";

const QEMU = "qemu-aarch64-static";
const CC = "aarch64-linux-gnu-gcc";
const SYSROOT = "/usr/aarch64-linux-gnu";
const missing = [QEMU, CC].filter((tool) => !hasCommand(tool));
if (missing.length > 0) console.log(`trampoline_aarch64_test: skipping: ${missing.join(" and ")} not installed`);

// Calls umh_spawn(req) with the script as the blob (UMH_SCRIPT), stdin and
// stdout piped, SIGPIPE and SIGUSR1 ignored, SIGUSR2 handled and one fd
// without O_CLOEXEC in the owner; sends one line, prints "pid <0|1> step <n>
// errno <n> extra <fd> pidfd <0|1>", the script's output and "exit <n>".
const HARNESS = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
struct req {
  int32_t blob_fd; uint32_t flags; int32_t stdio[3]; int32_t pdeath_signal, pgid; uint32_t uid, gid, ngroups, nlimits;
  int32_t err_step, err_errno, err_arg; const void *groups, *limits; char *const *argv; char *const *envp;
  const char *cwd; int32_t pidfd; uint32_t pipe_mask; int32_t parent_fd[3], reserved; char **const *environ_ref;
};
_Static_assert(sizeof(struct req) == 128, "layout");
static void on_usr2(int sig) { (void)sig; }
extern char **environ;
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  void *so = dlopen(argv[1], RTLD_NOW);
  if (!so) { printf("dlopen %s\n", dlerror()); return 2; }
  int (*spawn)(struct req *) = (int (*)(struct req *))dlsym(so, "umh_spawn");
  if (!spawn) return 2;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  signal(SIGUSR2, on_usr2);
  int blob = open(argv[2], O_RDONLY | O_CLOEXEC);
  int in[2], out[2];
  if (blob < 0 || pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) return 2;
  char *child_argv[] = {"script", 0};
  struct req r;
  memset(&r, 0, sizeof r);
  r.blob_fd = blob;
  r.flags = 1; /* UMH_SCRIPT */
  r.stdio[0] = in[0];
  r.stdio[1] = out[1];
  r.stdio[2] = -1;
  r.argv = child_argv;
  r.envp = environ;
  int extra = dup(in[1]); /* no O_CLOEXEC: only the trampoline's close_range keeps it from the child */
  int pid = spawn(&r);
  printf("pid %d step %d errno %d extra %d pidfd %d\n", pid > 0, r.err_step, r.err_errno, extra, r.pidfd >= 0);
  if (r.pidfd >= 0) close(r.pidfd);
  fflush(stdout);
  if (pid <= 0) return 1;
  close(in[0]);
  close(out[1]);
  if (write(in[1], "hello\n", 6) != 6) return 2;
  close(in[1]);
  close(extra);
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
  int status;
  if (waitpid(pid, &status, 0) != pid) return 2;
  printf("exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0;
}
`;

// Reads the line, then reports its own ignored and handled signals and which fds are open.
const SCRIPT = `#!/bin/sh
read line
echo "got $line"
grep SigIgn /proc/$$/status
grep SigCgt /proc/$$/status
ls /proc/$$/fd | sort -n | tr '\\n' ' '
echo
`;

Deno.test({
  name:
    "the shipped aarch64 trampoline starts a #! script with piped stdio and Deno.Command's signal dispositions under qemu-user",
  ignore: missing.length > 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "umh_aarch64_" });
    try {
      const shipped = Uint8Array.from(atob(TRAMPOLINE_AARCH64), (c) => c.charCodeAt(0));
      await Deno.writeFile(`${dir}/trampoline.so`, shipped);
      await Deno.writeTextFile(`${dir}/harness.c`, HARNESS);
      await Deno.writeTextFile(`${dir}/script`, SCRIPT, { mode: 0o755 });
      const build = await new Deno.Command(CC, {
        args: ["-std=c11", "-O2", "-Wall", "-Werror", "-o", `${dir}/harness`, `${dir}/harness.c`],
        stderr: "piped",
      }).output();
      assert.equal(build.code, 0, text(build.stderr));
      const run = await new Deno.Command(QEMU, {
        args: ["-L", SYSROOT, `${dir}/harness`, `${dir}/trampoline.so`, `${dir}/script`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const lines = text(run.stdout).trim().split("\n");
      assert.equal(run.code, 0, `${text(run.stdout)}\n${text(run.stderr)}`);
      const [, spawned, extra] = lines[0]!.match(/^(pid 1 step 0 errno 0) extra (\d+) pidfd [01]$/) ?? [];
      assert.equal(spawned, "pid 1 step 0 errno 0", lines[0]);
      assert.equal(lines[1], "got hello");
      // The owner ignored SIGPIPE (13) and SIGUSR1 (10): the child reset
      // SIGPIPE and kept SIGUSR1 ignored, as Deno.Command's children do.
      const ignored = BigInt(`0x${lines[2]!.split(/\s+/)[1]}`);
      assert.equal((ignored >> 12n) & 1n, 0n, `SIGPIPE still ignored after exec: ${lines[2]}`);
      assert.equal((ignored >> 9n) & 1n, 1n, `SIGUSR1 no longer ignored after exec: ${lines[2]}`);
      // The owner's SIGUSR2 handler is gone (an exec resets handlers; the
      // child must not have run it before, which no output can show).
      const caught = BigInt(`0x${lines[3]!.split(/\s+/)[1]}`);
      assert.equal((caught >> 11n) & 1n, 0n, `SIGUSR2 still handled: ${lines[3]}`);
      // The owner's fd without O_CLOEXEC did not survive the exec (fd 3 is the script, which the shell reopens).
      const childFds = lines[4]!.trim().split(" ").map(Number);
      assert.ok(childFds.includes(0) && childFds.includes(1), `child fds ${childFds}`);
      assert.ok(!childFds.includes(Number(extra)), `fd ${extra} leaked into the child: ${childFds}`);
      assert.equal(lines.at(-1), "exit 0");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
