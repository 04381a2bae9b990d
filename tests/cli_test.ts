// main.ts, the CLI: demo, run (with exit-code propagation), --help, errors.

import assert from "node:assert/strict";
import { bytes, ROOT, text } from "./test_util.ts";

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A main.ts ...args` in the repository, feeding `stdin` when given. */
async function cli(args: string[], stdin?: Uint8Array): Promise<CliResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: ROOT,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const output = await child.output();
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

/** Writes `content` to an executable file in a fresh temp dir, runs `body`, removes the dir. */
async function withScript(content: string, body: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "umh_cli_" });
  try {
    const path = `${dir}/script.sh`;
    await Deno.writeTextFile(path, content, { mode: 0o755 });
    await body(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertDemo(result: CliResult): void {
  assert.equal(result.code, 0, result.stderr);
  const pid = /started as pid (\d+)/.exec(result.stdout)?.[1];
  assert.ok(pid, `no pid in ${JSON.stringify(result.stdout)}`);
  assert.match(result.stdout, /sent "hello", got "hello"/);
  assert.ok(result.stdout.includes(`sent "!pid", got "${pid}"`), result.stdout);
  assert.match(result.stdout, /exited: code 0\b/);
  // The supervised part: killed mid-request, then served by a new pid.
  const first = /^ {2}pid (\d+) answers "ping"$/m.exec(result.stdout)?.[1];
  assert.ok(first, result.stdout);
  assert.match(
    result.stdout,
    new RegExp(`request in flight: Helper "umh-demo" \\(pid ${first}\\) died: killed by SIGKILL`),
  );
  const next = /next request served by pid (\d+) \(restarts: 1\)/.exec(result.stdout)?.[1];
  assert.ok(next && next !== first, result.stdout);
}

Deno.test("main.ts with no arguments runs the demo: pid, replies, exited: code 0", async () => {
  assertDemo(await cli([]));
});

Deno.test("main.ts demo prints the pid, the replies and exited: code 0", async () => {
  assertDemo(await cli(["demo"]));
});

Deno.test("main.ts run propagates the helper's exit code", async () => {
  const result = await cli(["run", "/bin/sh", "--", "-c", "exit 7"]);
  assert.equal(result.code, 7, result.stderr);
  const ok = await cli(["run", "/bin/echo", "--", "hello", "from memory"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, "hello from memory\n");
});

Deno.test("main.ts run exits 128 + signal number when the helper is killed (SIGKILL → 137)", async () => {
  await withScript("#!/bin/sh\nkill -KILL $$\n", async (path) => {
    const result = await cli(["run", path]);
    assert.equal(result.code, 137, result.stderr);
  });
});

Deno.test("main.ts run - reads the executable from stdin", async () => {
  const echo = await Deno.readFile("/bin/echo");
  const result = await cli(["run", "-", "--", "piped", "in"], echo);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "piped in\n");
  const script = await cli(["run", "-"], bytes("#!/bin/sh\necho script; exit 4\n"));
  assert.equal(script.code, 4, script.stderr);
  assert.equal(script.stdout, "script\n");
});

Deno.test("main.ts run passes --env, --clear-env and --name", async () => {
  await withScript('#!/bin/sh\necho "$A|$HOME"\n', async (path) => {
    const result = await cli(["run", "--clear-env", "--env", "A=1", path]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "1|\n");
  });
  const env = await cli(["run", "--clear-env", "--env", "B=2", "/usr/bin/env"]);
  assert.equal(env.stdout, "B=2\n");
  const named = await cli(["run", "--name", "my-sh", "/bin/sh", "--", "-c", 'echo "$0"']);
  assert.equal(named.stdout, "my-sh\n");
});

Deno.test("main.ts --help on every level exits 0 and prints usage", async () => {
  for (const args of [["--help"], ["-h"], ["help"], ["demo", "--help"], ["run", "--help"], ["run", "-h"]]) {
    const result = await cli(args);
    assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stdout, /Usage:/, args.join(" "));
    assert.equal(result.stderr, "", args.join(" "));
  }
});

Deno.test("main.ts prints one error line to stderr and exits non-zero on bad input", async () => {
  const cases = [["frobnicate"], ["run"], ["run", "/nonexistent/umh-file"], ["run", "--bogus", "/bin/true"]];
  for (const args of cases) {
    const result = await cli(args);
    assert.notEqual(result.code, 0, args.join(" "));
    const lines = result.stderr.split("\n").filter((line) => line !== "");
    assert.equal(lines.length, 1, `${args.join(" ")}: ${JSON.stringify(result.stderr)}`);
    assert.match(lines[0]!, /^error: /);
    assert.equal(result.stdout, "", args.join(" "));
  }
});
