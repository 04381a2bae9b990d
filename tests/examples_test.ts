// Every program in examples/ runs as a user would run it (`deno run --check
// --allow-ffi`, from the repository, where "@umh/umh" resolves to this
// package) and prints what its comments promise.

import assert from "node:assert/strict";
import { ROOT } from "./test_util.ts";

/** What each example must print, line by line. */
const EXPECTED: Record<string, RegExp[]> = {
  "embed_helper.ts": [
    /^pid \d+ echoed "hello", exit code 0$/,
    /^pid \d+ echoed "world", exit code 0$/,
  ],
  "supervised_helper.ts": [
    /^\[start\] pid \d+$/,
    /^reply: hello$/,
    /^\[exit\] pid \d+, code 139 signal SIGSEGV$/,
    /^request failed: Helper "reqrep" \(pid \d+\) died: killed by SIGSEGV \(code 139\)$/,
    /^\[start\] pid \d+$/,
    /^\[restart\] pid \d+$/,
    /^reply: hello again \(after 1 restart\)$/,
    /^\[exit\] pid \d+, code 0 signal null$/,
  ],
};

Deno.test("examples/ has an expected output here for every program", async () => {
  const programs: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}/examples`)) {
    if (entry.isFile && entry.name.endsWith(".ts")) programs.push(entry.name);
  }
  assert.deepEqual(programs.sort(), Object.keys(EXPECTED).sort());
});

for (const [program, expected] of Object.entries(EXPECTED)) {
  Deno.test(`examples/${program} type-checks, runs with --allow-ffi only, and prints what it promises`, async () => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--check", "--allow-ffi", `examples/${program}`],
      cwd: ROOT,
      stdin: "null",
    }).output();
    const out = new TextDecoder().decode(stdout);
    assert.equal(code, 0, `${out}\n${new TextDecoder().decode(stderr)}`);
    const lines = out.trimEnd().split("\n");
    assert.equal(lines.length, expected.length, out);
    lines.forEach((line, i) => assert.match(line, expected[i]!));
  });
}
