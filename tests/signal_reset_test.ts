// The trampoline's child resets to SIG_DFL exactly the signals the owner
// handles or ignores (SigCgt | SigIgn of its /proc/self/status), not all 62:
// traced with `strace -f`, because a parse that silently fell back to all 62
// would pass every behavioural test and only cost time.

import assert from "node:assert/strict";
import { ROOT, straceDeno, whyNoStrace } from "./test_util.ts";

const noStrace = whyNoStrace();
if (noStrace) console.log(`signal_reset_test: skipping the traced test: ${noStrace}`);

// Adds a handler of its own (SIGUSR2) on top of Deno's, reads its own
// dispositions right before the (synchronous) spawn, and prints them with the pid.
const CHILD = `
import { forkUsermodeBlob } from "${ROOT}/lib/mod.ts";
Deno.addSignalListener("SIGUSR2", () => {});
const status = Deno.readTextFileSync("/proc/self/status");
const field = (name) => BigInt("0x" + new RegExp("^" + name + ":\\\\s*([0-9a-f]+)", "m").exec(status)[1]);
const helper = forkUsermodeBlob(new TextEncoder().encode("#!/bin/sh\\nexit 0\\n"), { stdin: "null" });
const { code } = await helper.status;
console.log(JSON.stringify({ pid: helper.pid, code, mask: (field("SigIgn") | field("SigCgt")).toString() }));
`;

const SIGKILL = 9;
const SIGSTOP = 19;

Deno.test({
  name: "the spawn trampoline resets only the signals the owner handles or ignores (strace -f)",
  ignore: noStrace !== null,
  async fn(): Promise<void> {
    const traced = await straceDeno(CHILD, "rt_sigaction,openat,execve,execveat");
    assert.equal(traced.code, 0, traced.stderr);
    const { pid, code, mask } = JSON.parse(traced.stdout);
    assert.equal(code, 0);

    const expected: number[] = [];
    for (let sig = 1; sig <= 64; sig++) {
      if (sig !== SIGKILL && sig !== SIGSTOP && (BigInt(mask) >> BigInt(sig - 1) & 1n) === 1n) expected.push(sig);
    }
    // SIGPIPE (Deno ignores it), SIGUSR2 (ours) and Deno's own handlers at least.
    assert.ok(expected.includes(13) && expected.includes(12), `owner mask ${BigInt(mask).toString(16)}`);

    // The helper's calls up to its exec: what the trampoline's child did.
    const lines = traced.trace.split("\n").filter((line) => line.startsWith(`${pid} `));
    const exec = lines.findIndex((line) => / execve(at)?\(/.test(line));
    assert.ok(exec >= 0, lines.join("\n"));
    const beforeExec = lines.slice(0, exec);
    assert.ok(beforeExec.some((line) => line.includes('"/proc/self/status"')), beforeExec.join("\n"));
    const resets = beforeExec.filter((line) => / rt_sigaction\(.*SIG_DFL/.test(line));
    assert.equal(resets.length, expected.length, `expected signals ${expected.join(",")}:\n${resets.join("\n")}`);
    for (const name of ["SIGPIPE", "SIGUSR2"]) {
      assert.ok(
        resets.some((line) => line.includes(`rt_sigaction(${name},`)),
        `${name} reset:\n${resets.join("\n")}`,
      );
    }
  },
});
