// What a helper starts with, signal-wise: the owner's handled signals back at
// SIG_DFL (they must not run in the child before exec), SIGPIPE back at
// SIG_DFL (Deno ignores it for itself), any other signal the owner ignores
// still ignored (POSIX inheritance), and nothing blocked:
// exactly what Deno.Command's children get, on every spawn path. The traced
// tests check how the trampoline gets there, because a path that silently
// did more work would pass every behavioural test and only cost time.

import assert from "node:assert/strict";
import { ROOT, straceDeno, whyNoStrace } from "./test_util.ts";

const noStrace = whyNoStrace();
if (noStrace) console.log(`signal_reset_test: skipping the traced tests: ${noStrace}`);

// Run as a child Deno program: adds a handler of its own (SIGUSR2) on top of
// Deno's, starts the reqrep blob with umh and the same binary from a file with
// Deno.Command, does one round trip with each (so both have exec'd) and
// prints their Sig* lines and the owner's own.
const CHILD = `
import { forkUsermodeBlob } from "${ROOT}/lib/mod.ts";
import { blobFor } from "${ROOT}/blobs/mod.ts";
const sig = (pid) => Deno.readTextFileSync("/proc/" + pid + "/status").split("\\n")
  .filter((line) => /^Sig(Ign|Cgt|Blk):/.test(line)).join(" ");
Deno.addSignalListener("SIGUSR2", () => {});
const request = new Uint8Array([4, 0, 0, 0, 112, 105, 110, 103]);
async function roundTrip(child) {
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  await writer.write(request);
  for (let got = 0; got < request.length;) got += (await reader.read()).value.length;
  await writer.close();
  const text = sig(child.pid);
  while (!(await reader.read()).done);
  return { code: (await child.status).code, sig: text };
}
const path = Deno.makeTempFileSync();
Deno.writeFileSync(path, blobFor("reqrep"), { mode: 0o700 });
const umh = await roundTrip(forkUsermodeBlob(blobFor("reqrep"), { name: "reqrep" }));
const deno = await roundTrip(new Deno.Command(path, { stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn());
Deno.removeSync(path);
console.log(JSON.stringify({ umh, deno, owner: sig("self") }));
`;

interface Report {
  umh: { code: number; sig: string };
  deno: { code: number; sig: string };
  owner: string;
}

function field(line: string, name: string): bigint {
  return BigInt(`0x${new RegExp(`${name}:\\s*([0-9a-f]+)`).exec(line)![1]}`);
}

const bit = (signo: number): bigint => 1n << BigInt(signo - 1);
const [SIGUSR1, SIGPIPE, SIGUSR2] = [10, 13, 12];

async function runOwner(spawnPath: string): Promise<Report> {
  // The owner starts with SIGUSR1 ignored, as a parent may leave it. (Not
  // SIGHUP under nohup: Deno handles SIGHUP, SIGINT and SIGTERM itself as
  // soon as any signal listener exists, and umh's owner-exit handling adds some.)
  const { code, stdout, stderr } = await new Deno.Command("env", {
    args: ["--ignore-signal=USR1", Deno.execPath(), "eval", "--unstable-raw-imports", CHILD],
    env: { UMH_SPAWN: spawnPath, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, decoder.decode(stderr));
  return JSON.parse(decoder.decode(stdout));
}

for (const spawnPath of ["trampoline", "clone", "posix_spawn"]) {
  Deno.test(`helpers get the signal dispositions Deno.Command children get (UMH_SPAWN=${spawnPath})`, async () => {
    const { umh, deno, owner } = await runOwner(spawnPath);
    assert.equal(umh.code, 0);
    assert.equal(deno.code, 0);
    // The owner: SIGUSR1 and SIGPIPE ignored, SIGUSR2 and Deno's own handled.
    assert.equal(field(owner, "SigIgn") & (bit(SIGUSR1) | bit(SIGPIPE)), bit(SIGUSR1) | bit(SIGPIPE), owner);
    assert.equal(field(owner, "SigCgt") & bit(SIGUSR2), bit(SIGUSR2), owner);
    // The helper: what the owner ignores but SIGPIPE (SIGUSR1 among it),
    // nothing handled or blocked. glibc's posix_spawn leaves its internal
    // signals 32 and 33 ignored in every child (Deno.Command's too): the
    // posix_spawn path may differ there, and only there.
    const glibcInternal = bit(32) | bit(33);
    const ignored = field(umh.sig, "SigIgn") & ~glibcInternal;
    assert.equal(ignored, field(owner, "SigIgn") & ~bit(SIGPIPE) & ~glibcInternal, `${umh.sig} / owner ${owner}`);
    assert.equal(field(umh.sig, "SigCgt"), 0n, umh.sig);
    assert.equal(field(umh.sig, "SigBlk"), 0n, umh.sig);
    for (const name of ["SigIgn", "SigCgt", "SigBlk"]) {
      assert.equal(
        field(umh.sig, name) & ~glibcInternal,
        field(deno.sig, name) & ~glibcInternal,
        `${name}: ${umh.sig} / ${deno.sig}`,
      );
    }
  });
}

// The trampoline child's calls between clone and exec, from an strace -f log.
function childCallsBeforeExec(trace: string, pid: number): string[] {
  const lines = trace.split("\n").filter((line) => line.startsWith(`${pid} `));
  const exec = lines.findIndex((line) => / execve(at)?\(/.test(line));
  assert.ok(exec >= 0, lines.join("\n"));
  return lines.slice(0, exec);
}

// Spawns a `#!` script that exits at once and prints its pid and the owner's SigCgt.
const TRACED_CHILD = `
import { forkUsermodeBlob } from "${ROOT}/lib/mod.ts";
Deno.addSignalListener("SIGUSR2", () => {});
const status = Deno.readTextFileSync("/proc/self/status");
const caught = BigInt("0x" + /SigCgt:\\s*([0-9a-f]+)/.exec(status)[1]);
const helper = forkUsermodeBlob(new TextEncoder().encode("#!/bin/sh\\nexit 0\\n"), { stdin: "null" });
const { code } = await helper.status;
console.log(JSON.stringify({ pid: helper.pid, code, caught: caught.toString() }));
`;

Deno.test({
  name: "the spawn trampoline clones with CLONE_CLEAR_SIGHAND and resets only SIGPIPE itself (strace -f)",
  ignore: noStrace !== null,
  async fn(): Promise<void> {
    const traced = await straceDeno(TRACED_CHILD, "clone,clone3,rt_sigaction,execve,execveat");
    assert.equal(traced.code, 0, traced.stderr);
    const { pid, code } = JSON.parse(traced.stdout);
    assert.equal(code, 0);
    const clone = traced.trace.split("\n").find((line) => / clone3\(\{flags=.*CLONE_PIDFD/.test(line));
    assert.ok(clone, `no clone3 that reports the exec through its child tid:\n${traced.trace.slice(-3000)}`);
    for (const flag of ["CLONE_VM", "CLONE_CHILD_CLEARTID", "CLONE_PIDFD", "CLONE_CLEAR_SIGHAND"]) {
      assert.ok(clone.includes(flag), `${flag} missing: ${clone}`);
    }
    assert.ok(!clone.includes("CLONE_VFORK"), `the parent spins on the child tid, it does not vfork: ${clone}`);
    const resets = childCallsBeforeExec(traced.trace, pid).filter((line) => / rt_sigaction\(/.test(line));
    assert.equal(resets.length, 1, resets.join("\n"));
    assert.match(resets[0]!, /rt_sigaction\(SIGPIPE, \{sa_handler=SIG_DFL/);
  },
});

Deno.test({
  name: "the trampoline's clone path resets exactly the owner's handled signals and SIGPIPE (strace -f)",
  ignore: noStrace !== null,
  async fn(): Promise<void> {
    const traced = await straceDeno(TRACED_CHILD, "clone,clone3,rt_sigaction,execve,execveat", [], {
      UMH_SPAWN: "clone",
    });
    assert.equal(traced.code, 0, traced.stderr);
    const { pid, code, caught } = JSON.parse(traced.stdout);
    assert.equal(code, 0);
    const expected = new Set<number>([SIGPIPE]);
    for (let signo = 1; signo <= 64; signo++) if ((BigInt(caught) & bit(signo)) !== 0n) expected.add(signo);
    assert.ok(expected.has(SIGUSR2), `owner SigCgt ${BigInt(caught).toString(16)}`);
    const calls = childCallsBeforeExec(traced.trace, pid).filter((line) => / rt_sigaction\(/.test(line));
    const resets = calls.filter((line) => /sa_handler=SIG_DFL/.test(line) && !/, NULL, \{/.test(line));
    assert.equal(resets.length, expected.size, `expected ${[...expected].join(",")}:\n${resets.join("\n")}`);
    for (const name of ["SIGPIPE", "SIGUSR2"]) {
      assert.ok(
        resets.some((line) => line.includes(`rt_sigaction(${name}, {`)),
        `${name} reset:\n${resets.join("\n")}`,
      );
    }
  },
});
