// The umh CLI end to end, as a user runs it: under `deno run` always, and as
// the one-file binary `deno task compile` (tools/compile.sh) builds, when
// DENORT_BIN names a denort runtime (deno compile cannot download one here).
// Both run the same cases, so the compiled binary is held to the same code
// path, with its helpers compiled in and nothing read from beside it.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ROOT } from "./test_util.ts";

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

type Cli = (args: string[], options?: { stdin?: Uint8Array; cwd?: string }) => Promise<CliResult>;

function cliFrom(argv0: string, prefix: string[]): Cli {
  return async (args, options = {}) => {
    const child = new Deno.Command(argv0, {
      args: [...prefix, ...args],
      cwd: options.cwd ?? ROOT,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (options.stdin) {
      const writer = child.stdin.getWriter();
      await writer.write(options.stdin);
      await writer.close();
    }
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
  };
}

const DENO = Deno.execPath();
const denoRun = cliFrom(DENO, ["run", "--allow-ffi", "--allow-read", `${ROOT}/main.ts`]);

const DENORT_BIN = Deno.env.get("DENORT_BIN");
const compileSkip = DENORT_BIN === undefined
  ? "DENORT_BIN is not set (deno compile needs a denort runtime and cannot download one offline)"
  : null;
if (compileSkip) console.log(`compile_test: skipping the compiled binary: ${compileSkip}`);

// One build per run, shared by the compiled cases.
let compiled: Promise<{ binary: string; dir: string }> | undefined;
function compileOnce(): Promise<{ binary: string; dir: string }> {
  return compiled ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "umh-compile-" });
    const binary = `${dir}/umh`;
    const { code, stderr } = await new Deno.Command("bash", {
      args: [`${ROOT}/tools/compile.sh`, "--out", binary],
      env: { DENO },
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, `tools/compile.sh failed:\n${new TextDecoder().decode(stderr)}`);
    return { binary, dir };
  })();
}

const ECHO = await Deno.readFile("/bin/echo");
const ECHO_SRI = `sha256-${createHash("sha256").update(ECHO).digest("base64")}`;

type CliCase = [name: string, fn: (run: Cli) => Promise<void>];

/** The cases every form of the CLI must pass. `cwd` runs the CLI from there. */
function cliCases(cwd?: string): CliCase[] {
  const cases: CliCase[] = [];
  const test = (name: string, fn: (run: Cli) => Promise<void>): void => void cases.push([name, fn]);
  const at = (run: Cli): Cli => (args, options) => run(args, { cwd, ...options });

  test("demo exchanges frames with the compiled-in helper and exits 0", async (run) => {
    const { code, stdout, stderr } = await at(run)(["demo"]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^helper "umh-demo" \(\d+ bytes, from a sealed memfd\) started as pid \d+$/m);
    assert.match(stdout, /sent "hello", got "hello"/);
    assert.match(stdout, /sent "!pid", got "\d+"/);
    assert.match(stdout, /^exited: code 0 after/m);
  });

  test("run <file> -- args runs the file from memory", async (run) => {
    assert.deepEqual(await at(run)(["run", "/bin/echo", "--", "hi"]), { code: 0, stdout: "hi\n", stderr: "" });
  });

  test("run - reads the executable from stdin", async (run) => {
    const result = await at(run)(["run", "-", "--", "from", "stdin"], { stdin: ECHO });
    assert.deepEqual(result, { code: 0, stdout: "from stdin\n", stderr: "" });
  });

  test("run --name sets argv[0]", async (run) => {
    const result = await at(run)(["run", "/bin/sh", "--name", "my-tool", "--", "-c", 'echo "$0"']);
    assert.deepEqual(result, { code: 0, stdout: "my-tool\n", stderr: "" });
  });

  test("run --clear-env --env gives exactly those variables", async (run) => {
    const result = await at(run)(["run", "/usr/bin/env", "--clear-env", "--env", "A=1", "--env", "B=x=y"]);
    assert.deepEqual(result, { code: 0, stdout: "A=1\nB=x=y\n", stderr: "" });
  });

  test("run --env without --clear-env adds to the environment", async (run) => {
    const { code, stdout } = await at(run)(["run", "/usr/bin/env", "--env", "UMH_TEST_VAR=yes"]);
    assert.equal(code, 0);
    assert.ok(stdout.split("\n").includes("UMH_TEST_VAR=yes"));
    assert.ok(stdout.split("\n").some((line) => line.startsWith("PATH=")), "PATH was inherited");
  });

  test("run --cwd sets the working directory", async (run) => {
    const dir = await Deno.realPath(await Deno.makeTempDir());
    try {
      assert.deepEqual(await at(run)(["run", "/bin/pwd", "--cwd", dir]), { code: 0, stdout: `${dir}\n`, stderr: "" });
    } finally {
      await Deno.remove(dir);
    }
  });

  test("run --integrity accepts a match and refuses a mismatch before exec", async (run) => {
    const ok = await at(run)(["run", "/bin/echo", "--integrity", ECHO_SRI, "--", "ok"]);
    assert.deepEqual(ok, { code: 0, stdout: "ok\n", stderr: "" });
    const wrong = `sha256-${createHash("sha256").update("other").digest("base64")}`;
    const bad = await at(run)(["run", "/bin/echo", "--integrity", wrong, "--", "no"]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, "");
    assert.match(bad.stderr, /^error: Cannot load blob "echo": integrity check failed/);
  });

  test("run refuses a helper built for another architecture, naming both", async (run) => {
    const other = Deno.build.arch === "x86_64" ? "aarch64" : "x86_64";
    const { code, stderr } = await at(run)(["run", `${ROOT}/blobs/reqrep.${other}`]);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `error: Cannot spawn "reqrep.${other}": the blob is an ELF for ${other}, and this machine is ${Deno.build.arch} (ENOEXEC)\n`,
    );
  });

  test("run exits with the helper's code, or 128 + signal", async (run) => {
    assert.equal((await at(run)(["run", "/bin/sh", "--", "-c", "exit 3"])).code, 3);
    assert.equal((await at(run)(["run", "/bin/sh", "--", "-c", "kill -KILL $$"])).code, 137);
  });

  test("run --help shows examples", async (run) => {
    const { code, stdout } = await at(run)(["run", "--help"]);
    assert.equal(code, 0);
    assert.match(stdout, /^Examples:$/m);
    assert.match(stdout, /umh run - /);
    for (const option of ["--name", "--integrity", "--env", "--clear-env", "--cwd"]) assert.ok(stdout.includes(option));
  });

  test("run without a file, or with a bad --env, is an error", async (run) => {
    const missing = await at(run)(["run"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: Missing file/);
    const badEnv = await at(run)(["run", "/bin/true", "--env", "NOEQUALS"]);
    assert.equal(badEnv.code, 1);
    assert.match(badEnv.stderr, /^error: Invalid --env "NOEQUALS"/);
  });

  test("info --json prints a MachineInfo", async (run) => {
    const { code, stdout, stderr } = await at(run)(["info", "--json"]);
    assert.equal(code, 0, stderr);
    const info = JSON.parse(stdout);
    assert.equal(info.arch, Deno.build.arch);
    assert.equal(typeof info.kernel, "string");
    assert.equal(typeof info.seals.ok, "boolean");
  });

  test("info and --help describe themselves", async (run) => {
    const table = await at(run)(["info"]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^vm\.memfd_noexec +/m);
    const help = await at(run)(["info", "--help"]);
    assert.match(help.stdout, /^umh info: /);
    assert.match(help.stdout, /--json/);
    const top = await at(run)(["--help"]);
    assert.match(top.stdout, /umh info \[--json\]/);
  });

  test("an unknown command is an error", async (run) => {
    const { code, stderr } = await at(run)(["frobnicate"]);
    assert.equal(code, 1);
    assert.equal(stderr, 'error: Unknown command "frobnicate": try "umh --help"\n');
  });
  return cases;
}

for (const [name, fn] of cliCases()) {
  Deno.test(`main.ts (deno run) ${name}`, () => fn(denoRun));
}

Deno.test({
  name: "tools/compile.sh builds one umh binary that passes every CLI case",
  ignore: compileSkip !== null,
  fn: async (t) => {
    const umh = cliFrom((await compileOnce()).binary, []);
    for (const [name, fn] of cliCases("/")) await t.step(name, () => fn(umh));
  },
});

Deno.test({
  name: "compiled umh carries its helpers: it runs from an empty directory with blobs/ out of reach",
  ignore: compileSkip !== null,
  fn: async () => {
    const { binary, dir } = await compileOnce();
    const moved = await Deno.makeTempDir();
    try {
      await Deno.copyFile(binary, `${moved}/umh`);
      await Deno.chmod(`${moved}/umh`, 0o755);
      const { code, stdout } = await cliFrom(`${moved}/umh`, [])(["demo"], { cwd: moved });
      assert.equal(code, 0);
      assert.match(stdout, /got "goodbye"/);
    } finally {
      await Deno.remove(moved, { recursive: true });
      await Deno.remove(dir, { recursive: true });
      compiled = undefined;
    }
  },
});
