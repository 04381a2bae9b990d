// Every spawn path passes the core tests: the trampoline with clone3 (the
// default where it loads), its clone path for kernels without clone3
// (UMH_SPAWN=clone), its clone3 path with the exec waited for on the futex from
// the start instead of after the spin (UMH_SPAWN=futex, as a slow exec is), and
// glibc's posix_spawn (the fallback, UMH_SPAWN=posix_spawn);
// so do reads through the poller alone (UMH_READER=poller), the path where
// node:net cannot adopt a pipe fd.

import assert from "node:assert/strict";
import { hasCommand } from "./test_util.ts";

const CORE_TESTS = ["helper_test.ts", "command_test.ts", "bad_blob_test.ts", "blob_test.ts", "reactor_test.ts"]
  .map((name) => new URL(name, import.meta.url).pathname);

for (
  const [name, value] of [
    ["UMH_SPAWN", "posix_spawn"],
    ["UMH_SPAWN", "clone"],
    ["UMH_SPAWN", "futex"],
    ["UMH_READER", "poller"],
  ]
) {
  Deno.test(`${name}=${value} passes the core helper, command and bad-blob tests`, async () => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--unstable-raw-imports", ...CORE_TESTS],
      env: { [name!]: value!, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, out.slice(-4000));
    assert.match(out, /ok \| \d+ passed \| 0 failed/);
  });
}

Deno.test("the spawn path in use reports its own exec call for an unexecutable blob", async () => {
  const script = `
    import { BlobCommand } from "${new URL("../lib/mod.ts", import.meta.url).href}";
    try { new BlobCommand(new Uint8Array([1, 2, 3, 4])).spawn(); } catch (e) { console.log(e.syscall); }
  `;
  for (const [path, syscall] of [["posix_spawn", "posix_spawn"], ["default", "execveat"]] as const) {
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--unstable-raw-imports", script],
      env: { UMH_SPAWN: path, NO_COLOR: "1" },
      stderr: "inherit",
    }).output();
    assert.equal(new TextDecoder().decode(stdout).trim(), syscall, `UMH_SPAWN=${path}`);
  }
});

// Run in a child Deno program with RLIMIT_NOFILE just above its lowest free fd,
// so that the first pipe of a spawn fits and the second does not.
const OUT_OF_FDS = `
import { forkUsermodeBlob, loadBlob, SpawnError } from "${new URL("../lib/mod.ts", import.meta.url).href}";
const libc = Deno.dlopen("libc.so.6", {
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
}).symbols;
const lowestFree = () => { const fd = libc.fcntl(2, 0 /* F_DUPFD */, 0); libc.close(fd); return fd; };
const script = loadBlob(new TextEncoder().encode("#!/bin/sh\\nexit 0\\n"));
const first = forkUsermodeBlob(script); // loads everything a spawn needs
first.stdin.close();
await first.output();
await new Promise((resolve) => setTimeout(resolve, 50));
const before = lowestFree();
const limit = new BigUint64Array([BigInt(before + 3), BigInt(before + 3)]);
if (libc.setrlimit(7 /* RLIMIT_NOFILE */, limit) !== 0) throw new Error("setrlimit failed");
let error;
try {
  forkUsermodeBlob(script);
} catch (e) {
  error = e;
}
const after = lowestFree();
console.log(JSON.stringify({ spawnError: error instanceof SpawnError, syscall: error?.syscall, code: error?.code, leaked: after !== before }));
`;

for (const path of ["default", "clone", "posix_spawn"]) {
  Deno.test(`a spawn out of fds reports pipe2() EMFILE as a SpawnError and leaves no fd (UMH_SPAWN=${path})`, async () => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--unstable-raw-imports", OUT_OF_FDS],
      env: { UMH_SPAWN: path, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const result = JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
    assert.deepEqual(result, { spawnError: true, syscall: "pipe2", code: "EMFILE", leaked: false });
  });
}

// The trampoline's parent spins on sched_yield while its child execs. With
// the owner, its threads and every helper on one CPU, the child must still
// get that CPU at once: 200 sequential round trips, and 20 helpers at a time.
const ONE_CPU = `
import { roundTrips } from "${new URL("./round_trips.ts", import.meta.url).href}";
const ok = await roundTrips(200) + await roundTrips(100, 20);
const cpus = Deno.readTextFileSync("/proc/self/status").match(/Cpus_allowed_list:\\s*(\\S+)/)[1];
console.log(JSON.stringify({ ok, cpus }));
`;

Deno.test({
  name: "helpers start and answer with the owner and all its helpers on one CPU (taskset -c 0)",
  ignore: !hasCommand("taskset"),
  async fn(): Promise<void> {
    const { code, stdout, stderr } = await new Deno.Command("taskset", {
      args: ["-c", "0", Deno.execPath(), "eval", "--unstable-raw-imports", ONE_CPU],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const result = JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
    assert.equal(result.cpus, "0");
    assert.equal(result.ok, 300, JSON.stringify(result));
  },
});
