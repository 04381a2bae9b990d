// ffi/constants.ts and ffi/errno.ts against the C headers of this machine,
// where a C compiler exists: sizes, offsets, flags, syscall and signal numbers.

import assert from "node:assert/strict";
import * as constants from "../ffi/constants.ts";
import * as errno from "../ffi/errno.ts";
import { hasCommand, text } from "./test_util.ts";

const CC = ["cc", "gcc"].find(hasCommand);
if (CC === undefined) console.log("skipping constants_test: no C compiler (cc or gcc) on PATH");

// [name in ffi/constants.ts, C expression]; names the headers may lack (newer
// kernels' flags) are guarded with #ifdef on the C name.
const EXPRESSIONS: Record<string, string> = {
  SIZEOF_POSIX_SPAWNATTR_T: "sizeof(posix_spawnattr_t)",
  SIZEOF_POSIX_SPAWN_FILE_ACTIONS_T: "sizeof(posix_spawn_file_actions_t)",
  SIZEOF_SIGSET_T: "sizeof(sigset_t)",
  SIZEOF_EPOLL_EVENT: "sizeof(struct epoll_event)",
  EPOLL_EVENT_DATA_OFFSET: "offsetof(struct epoll_event, data)",
  SIZEOF_SIGINFO_T: "sizeof(siginfo_t)",
  SIGINFO_CODE_OFFSET: "offsetof(siginfo_t, si_code)",
  SIGINFO_PID_OFFSET: "offsetof(siginfo_t, si_pid)",
  SIGINFO_STATUS_OFFSET: "offsetof(siginfo_t, si_status)",
  SIGRTMAX: "SIGRTMAX",
  P_PID: "P_PID",
  P_PIDFD: "P_PIDFD",
};

/** Constants that are enum members or expressions rather than macros: never guarded. */
const UNGUARDED = new Set(Object.keys(EXPRESSIONS));

function cProgram(names: string[]): string {
  const lines = names.map((name) => {
    const expr = EXPRESSIONS[name] ?? name;
    const print = `  printf("%s %lld\\n", "${name}", (long long)(${expr}));`;
    if (UNGUARDED.has(name)) return print;
    return `#ifdef ${name}\n${print}\n#else\n  printf("%s -\\n", "${name}");\n#endif`;
  });
  return `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#if __has_include(<sys/pidfd.h>)
#include <sys/pidfd.h>
#endif
int main(void) {
${lines.join("\n")}
  return 0;
}
`;
}

/** Compiles and runs `source` in a temp dir; returns name → value (`null` where the headers lack it). */
async function runC(source: string): Promise<Map<string, number | null>> {
  const dir = await Deno.makeTempDir({ prefix: "umh_constants_" });
  try {
    await Deno.writeTextFile(`${dir}/constants.c`, source);
    const build = await new Deno.Command(CC!, {
      args: ["-std=c11", "-o", `${dir}/constants`, `${dir}/constants.c`],
      stderr: "piped",
    }).output();
    assert.equal(build.code, 0, `compiling failed:\n${text(build.stderr)}`);
    const run = await new Deno.Command(`${dir}/constants`, { stdout: "piped" }).output();
    assert.equal(run.code, 0);
    const values = new Map<string, number | null>();
    for (const line of text(run.stdout).trim().split("\n")) {
      const [name, value] = line.split(" ");
      values.set(name!, value === "-" ? null : Number(value));
    }
    return values;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function compare(expected: Record<string, number>, actual: Map<string, number | null>): void {
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const [name, value] of Object.entries(expected)) {
    const c = actual.get(name);
    if (c === null || c === undefined) missing.push(name);
    else if (c !== value) wrong.push(`${name}: ffi says ${value}, C says ${c}`);
  }
  if (missing.length > 0) console.log(`not in this machine's headers (unchecked): ${missing.join(", ")}`);
  assert.deepEqual(wrong, []);
}

Deno.test({
  name: "ffi/constants.ts sizes, offsets and flags match C on this machine",
  ignore: CC === undefined,
  fn: async () => {
    const numeric: Record<string, number> = {};
    for (const [name, value] of Object.entries(constants)) {
      if (typeof value === "number") numeric[name] = value;
    }
    const actual = await runC(cProgram(Object.keys(numeric)));
    // The ones the brief names must really have been compared.
    for (const name of Object.keys(EXPRESSIONS)) assert.notEqual(actual.get(name), null, name);
    for (const name of ["O_CLOEXEC", "O_NONBLOCK", "POSIX_SPAWN_SETSIGDEF", "POSIX_SPAWN_SETSIGMASK", "EPOLLONESHOT"]) {
      assert.notEqual(actual.get(name), null, name);
    }
    compare(numeric, actual);
  },
});

Deno.test({
  name: "ffi/constants.ts SIGNALS match the C signal numbers",
  ignore: CC === undefined,
  fn: async () => {
    const signals: Record<string, number> = { ...constants.SIGNALS };
    const actual = await runC(cProgram(Object.keys(signals)));
    for (const name of Object.keys(signals)) assert.notEqual(actual.get(name), null, `${name} is not in signal.h`);
    compare(signals, actual);
  },
});

Deno.test({
  name: "ffi/errno.ts errno numbers and names match C",
  ignore: CC === undefined,
  fn: async () => {
    const numbers: Record<string, number> = {};
    for (const [name, value] of Object.entries(errno)) {
      if (typeof value === "number" && /^E[A-Z0-9]+$/.test(name)) numbers[name] = value;
    }
    const names = [
      ...new Set([...Object.keys(numbers), "EBADF", "ENOMEM", "EMFILE", "ENFILE", "ETXTBSY", "ELOOP", "EOPNOTSUPP"]),
    ];
    const actual = await runC(cProgram(names));
    compare(numbers, actual);
    for (const name of names) {
      const value = actual.get(name);
      assert.ok(typeof value === "number", `${name} is not in errno.h`);
      assert.equal(errno.errnoName(value), name);
    }
  },
});
