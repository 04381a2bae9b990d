// BlobCommand and forkUsermodeBlob: every option, with Deno.Command's defaults.

import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import { BlobCommand, forkUsermodeBlob, loadBlob, SpawnError, SyscallError, type UsermodeHelper } from "../lib/mod.ts";
import { bytes, cmdline, Conversation, fdCount, ourChildren, text } from "./test_util.ts";

/** A script that holds its fds 0, 1 and 2 open and does nothing: exec sleep. */
const SLEEPER = bytes("#!/bin/sh\nexec sleep 60\n");

/** Where fds 0, 1, 2 of `pid` point (`/dev/null`, `pipe:[…]`, a tty...), or "closed". */
function stdioLinks(pid: number | "self"): string[] {
  return [0, 1, 2].map((fd) => {
    try {
      return Deno.readLinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return "closed"; // e.g. a test runner started with stdin closed
    }
  });
}

function ownStdioLinks(): string[] {
  return stdioLinks("self");
}

async function stopped(helper: UsermodeHelper): Promise<void> {
  helper.kill("SIGKILL");
  assert.equal((await helper.status).signal, "SIGKILL");
}

Deno.test("BlobCommand runs a #! script with args", async () => {
  const script = bytes('#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n');
  const output = await new BlobCommand(script, { args: ["a b", "", "c"] }).output();
  assert.equal(text(output.stdout), "[a b]\n[]\n[c]\n");
  assert.deepEqual([output.success, output.code, output.signal], [true, 0, null]);
});

Deno.test("BlobCommand env is merged with the owner's environment, read at each spawn", async () => {
  const script = bytes('#!/bin/sh\necho "$UMH_TEST_OWNER/$UMH_TEST_EXTRA/$UMH_TEST_OVERRIDE"\n');
  Deno.env.set("UMH_TEST_OWNER", "owner");
  Deno.env.set("UMH_TEST_OVERRIDE", "old");
  try {
    const env = { UMH_TEST_EXTRA: "extra", UMH_TEST_OVERRIDE: "new" };
    assert.equal(text((await new BlobCommand(script, { env }).output()).stdout), "owner/extra/new\n");
    assert.equal(text((await new BlobCommand(script).output()).stdout), "owner//old\n");
  } finally {
    Deno.env.delete("UMH_TEST_OWNER");
    Deno.env.delete("UMH_TEST_OVERRIDE");
  }
});

Deno.test("BlobCommand clearEnv gives /usr/bin/env exactly the env given", async () => {
  const env = await Deno.readFile("/usr/bin/env");
  const output = await new BlobCommand(env, { clearEnv: true, env: { A: "1" } }).output();
  assert.equal(text(output.stdout), "A=1\n");
  assert.equal(output.code, 0);
  const empty = await new BlobCommand(env, { clearEnv: true }).output();
  assert.equal(text(empty.stdout), "");
});

Deno.test("BlobCommand cwd accepts a string and a file URL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "umh cwd " }); // a space, to check URL decoding
  try {
    const real = Deno.realPathSync(dir);
    const script = bytes("#!/bin/sh\npwd -P\n");
    assert.equal(text((await new BlobCommand(script, { cwd: dir }).output()).stdout), `${real}\n`);
    const url = new URL(`file://${dir}/`);
    assert.match(url.href, /%20/);
    assert.equal(text((await new BlobCommand(script, { cwd: url }).output()).stdout), `${real}\n`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("BlobCommand.spawn() throws SpawnError ENOENT (a Deno.errors.NotFound) or ENOTDIR naming a bad cwd, and leaves no fd", async () => {
  // Warm up: a reused array stays loaded from its second spawn on.
  for (let i = 0; i < 2; i++) await new BlobCommand(blobFor("cat"), { stdout: "null" }).output();
  const before = fdCount();
  const command = new BlobCommand(blobFor("cat"), { cwd: "/nonexistent/umh", stdout: "piped", stdin: "piped" });
  assert.throws(() => command.spawn(), (error: unknown) => {
    assert.ok(error instanceof SpawnError, `expected SpawnError, got ${error}`);
    assert.equal(error.code, "ENOENT");
    // What Deno.Command throws for a missing cwd, so the same catch works for both.
    assert.ok(error instanceof Deno.errors.NotFound, "not a Deno.errors.NotFound");
    assert.ok(error.message.includes('"/nonexistent/umh"'), `the message names the cwd: ${error.message}`);
    return true;
  });
  const notADirectory = Deno.makeTempFileSync({ prefix: "umh_cwd_file_" });
  try {
    const file = new BlobCommand(blobFor("cat"), { cwd: notADirectory, stdout: "piped", stdin: "piped" });
    assert.throws(() => file.spawn(), (error: unknown) => {
      assert.ok(error instanceof SpawnError && error.code === "ENOTDIR", `expected SpawnError ENOTDIR, got ${error}`);
      assert.ok(error.message.includes(JSON.stringify(notADirectory)), `the message names the cwd: ${error.message}`);
      return true;
    });
  } finally {
    Deno.removeSync(notADirectory);
  }
  assert.equal(fdCount(), before);
});

Deno.test("SyscallError is also the Deno error class for its errno, where Deno has one", () => {
  const cases: [number, (new (...args: never[]) => Error) | null][] = [
    [2, Deno.errors.NotFound], // ENOENT
    [13, Deno.errors.PermissionDenied], // EACCES
    [1, Deno.errors.PermissionDenied], // EPERM
    [32, Deno.errors.BrokenPipe], // EPIPE
    [17, Deno.errors.AlreadyExists], // EEXIST
    [8, null], // ENOEXEC: no Deno class
  ];
  const denoClasses = Object.values(Deno.errors);
  for (const [errno, expected] of cases) {
    for (const error of [new SyscallError("Cannot x", "x", errno), new SpawnError("Cannot x", "x", errno)]) {
      assert.ok(error instanceof SyscallError && error instanceof Error, `errno ${errno}`);
      const ownName = error instanceof SpawnError ? "SpawnError" : "SyscallError";
      assert.equal(
        error.name,
        expected?.name ?? ownName,
        `errno ${errno}: named as Deno names it, where it has a class`,
      );
      assert.equal(error.errno, errno);
      const matching = denoClasses.filter((denoClass) => error instanceof denoClass);
      assert.deepEqual(matching, expected ? [expected] : [], `errno ${errno}: ${matching.map((c) => c.name)}`);
    }
  }
});

Deno.test("BlobCommand argv0 sets argv[0], which defaults to the blob's name", async () => {
  using blob = loadBlob(blobFor("reqrep"), { name: "reqrep-blob" });
  for (const [argv0, expected] of [[undefined, "reqrep-blob"], ["my-helper", "my-helper"]] as const) {
    await using helper = new BlobCommand(blob, { argv0, args: ["x", "y"], stdin: "piped", stdout: "piped" }).spawn();
    const talk = new Conversation(helper);
    assert.equal(await talk.request("!pid"), String(helper.pid)); // answered: argv is laid out
    assert.deepEqual(cmdline(helper.pid), [expected, "x", "y"]);
    await talk.close();
  }
});

Deno.test("BlobCommand.spawn() inherits stdin, stdout and stderr by default", async () => {
  await using helper = new BlobCommand(SLEEPER).spawn();
  assert.throws(() => helper.stdin, TypeError);
  assert.throws(() => helper.stdout, TypeError);
  assert.throws(() => helper.stderr, TypeError);
  assert.deepEqual(stdioLinks(helper.pid), ownStdioLinks());
  await stopped(helper);
});

Deno.test('BlobCommand.spawn() connects "null" to /dev/null and "piped" to pipes', async () => {
  {
    await using helper = new BlobCommand(SLEEPER, { stdin: "null", stdout: "null", stderr: "null" }).spawn();
    assert.deepEqual(stdioLinks(helper.pid), ["/dev/null", "/dev/null", "/dev/null"]);
    assert.throws(() => helper.stdout, TypeError);
    await stopped(helper);
  }
  {
    await using helper = new BlobCommand(SLEEPER, { stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
    for (const link of stdioLinks(helper.pid)) assert.match(link, /^pipe:\[\d+\]$/);
    assert.ok(helper.stdin instanceof WritableStream);
    assert.ok(helper.stdout instanceof ReadableStream);
    assert.ok(helper.stderr instanceof ReadableStream);
    await stopped(helper);
  }
});

Deno.test("BlobCommand.output() defaults to stdin null and piped stdout and stderr", async () => {
  const script = bytes("#!/bin/sh\nreadlink /proc/self/fd/0\necho err >&2\n");
  const output = await new BlobCommand(script).output();
  assert.equal(text(output.stdout), "/dev/null\n");
  assert.equal(text(output.stderr), "err\n");
  await assert.rejects(new BlobCommand(script, { stdin: "piped" }).output(), TypeError);
  const quiet = await new BlobCommand(script, { stdout: "null" }).output();
  assert.throws(() => quiet.stdout, TypeError);
  assert.equal(text(quiet.stderr), "err\n");
});

Deno.test("BlobCommand.outputSync() gives what output() gives, with the same defaults", async () => {
  const script = bytes("#!/bin/sh\nreadlink /proc/self/fd/0\necho err >&2\nexit 3\n");
  const sync = new BlobCommand(script).outputSync();
  const async = await new BlobCommand(script).output();
  for (const output of [sync, async]) {
    assert.deepEqual([output.success, output.code, output.signal], [false, 3, null]);
    assert.equal(text(output.stdout), "/dev/null\n");
    assert.equal(text(output.stderr), "err\n");
  }
  assert.throws(() => new BlobCommand(script, { stdin: "piped" }).outputSync(), TypeError);
  const quiet = new BlobCommand(script, { stdout: "null" }).outputSync();
  assert.throws(() => quiet.stdout, TypeError);
  assert.equal(text(quiet.stderr), "err\n");
  const silent = new BlobCommand(bytes("#!/bin/sh\n:\n")).outputSync();
  assert.deepEqual([silent.stdout.length, silent.stderr.length, silent.code], [0, 0, 0]);
});

Deno.test("BlobCommand.outputSync() reads stdout and stderr together: a full stderr pipe cannot deadlock it", () => {
  // 3 MB to stderr before a byte of stdout: reading stdout alone to EOF would wait forever.
  const script = bytes("#!/bin/sh\nhead -c 3000000 /dev/zero >&2\nhead -c 2000000 /dev/zero\n");
  const output = new BlobCommand(script).outputSync();
  assert.deepEqual([output.stdout.length, output.stderr.length, output.code], [2_000_000, 3_000_000, 0]);
});

Deno.test("BlobCommand.outputSync() reports a death by signal and leaves no fd and no child", () => {
  const fds = fdCount();
  const output = new BlobCommand(bytes("#!/bin/sh\necho before\nkill -KILL $$\n")).outputSync();
  assert.deepEqual([output.success, output.code, output.signal], [false, 137, "SIGKILL"]);
  assert.equal(text(output.stdout), "before\n");
  assert.equal(fdCount(), fds);
  assert.deepEqual(ourChildren(), []);
});

Deno.test("forkUsermodeBlob() pipes stdin and stdout and inherits stderr by default", async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"));
  assert.throws(() => helper.stderr, TypeError);
  const talk = new Conversation(helper);
  assert.equal(await talk.request("ping"), "ping");
  const links = stdioLinks(helper.pid);
  assert.match(links[0]!, /^pipe:/);
  assert.match(links[1]!, /^pipe:/);
  assert.equal(links[2], ownStdioLinks()[2]);
  await talk.close();
  assert.equal((await helper.status).code, 0);
});

Deno.test("BlobCommand throws TypeError naming the entry for a NUL in args, env, argv0 or cwd", async () => {
  await new BlobCommand(blobFor("cat"), { stdout: "null" }).output(); // warm up
  const before = fdCount();
  const cat = blobFor("cat");
  const cases: [ConstructorParameters<typeof BlobCommand>[1], RegExp][] = [
    [{ args: ["ok", "bad\0arg"] }, /args\[1\]/],
    [{ env: { GOOD: "1", BAD: "x\0y" } }, /env\["BAD"\]/],
    [{ env: { "B\0AD": "1" } }, /env key/],
    [{ env: { "A=B": "1" } }, /env key/],
    [{ argv0: "nul\0" }, /argv0/],
    [{ cwd: "/tmp\0x" }, /cwd/],
  ];
  for (const [options, name] of cases) {
    assert.throws(() => new BlobCommand(cat, { ...options, stdin: "piped", stdout: "piped" }).spawn(), (error) => {
      assert.ok(error instanceof TypeError, `expected TypeError for ${JSON.stringify(options)}, got ${error}`);
      assert.match(error.message, name);
      return true;
    });
    await assert.rejects(new BlobCommand(cat, options).output(), TypeError);
  }
  assert.equal(fdCount(), before);
});

Deno.test("BlobCommand refuses a blob that is not bytes, an unknown stdio kind, a cwd or env of the wrong type with TypeError", async () => {
  const script = bytes("#!/bin/sh\necho hi\n");
  await new BlobCommand(script).output(); // loaded once, so the fd count below is steady
  const before = fdCount();
  const refused: [string, () => unknown][] = [
    ["Invalid blob", () => new BlobCommand("/bin/true" as unknown as Uint8Array).spawn()],
    ["Invalid blob", () => forkUsermodeBlob(42 as unknown as Uint8Array)],
    ["Invalid stdout", () => new BlobCommand(script, { stdout: "pipe" as "piped" }).spawn()],
    ["Invalid stdin", () => new BlobCommand(script, { stdin: "closed" as "null" }).outputSync()],
    ["Invalid cwd", () => new BlobCommand(script, { cwd: 5 as unknown as string }).spawn()],
    ["Must be a file URL", () => new BlobCommand(script, { cwd: new URL("http://example.com/tmp") }).spawn()],
    ["Invalid env", () => new BlobCommand(script, { env: null as unknown as Record<string, string> }).spawn()],
  ];
  for (const [message, run] of refused) {
    assert.throws(run, (error: unknown) => error instanceof TypeError && error.message.startsWith(message), message);
  }
  assert.equal(fdCount(), before);
});

Deno.test("BlobCommand signal: aborting kills the helper with SIGTERM", async () => {
  const controller = new AbortController();
  await using helper = new BlobCommand(SLEEPER, { signal: controller.signal, stdout: "piped" }).spawn();
  controller.abort();
  assert.deepEqual({ ...await helper.status }, { success: false, code: 143, signal: "SIGTERM" });
  controller.abort(); // after exit: nothing to kill, nothing thrown
});

Deno.test("BlobCommand signal: aborting during output() resolves with the SIGTERM status", async () => {
  const controller = new AbortController();
  const running = new BlobCommand(SLEEPER, { signal: controller.signal }).output();
  controller.abort();
  const output = await running;
  assert.deepEqual([output.success, output.code, output.signal], [false, 143, "SIGTERM"]);
  assert.equal(text(output.stdout), "");
});

Deno.test("BlobCommand signal: an already-aborted signal makes spawn() throw and output() reject", async () => {
  await new BlobCommand(blobFor("cat"), { stdout: "null" }).output(); // warm up
  const before = fdCount();
  const signal = AbortSignal.abort();
  assert.throws(() => new BlobCommand(SLEEPER, { signal }).spawn());
  await assert.rejects(new BlobCommand(SLEEPER, { signal }).output());
  assert.throws(() => forkUsermodeBlob(blobFor("cat"), { signal: AbortSignal.abort(new Error("stop")) }), /stop/);
  assert.equal(fdCount(), before, "nothing is loaded or opened for an aborted spawn");
});

Deno.test("BlobCommand helpers and Deno.Command children started together all report their own status", async () => {
  const helpers: Promise<number>[] = [];
  const commands: Promise<number>[] = [];
  for (let i = 0; i < 10; i++) {
    commands.push(new Deno.Command("/bin/sh", { args: ["-c", `exit ${i + 10}`] }).output().then((o) => o.code));
    helpers.push((async (): Promise<number> => {
      await using helper = forkUsermodeBlob(blobFor("reqrep"));
      await new Conversation(helper).send(`!exit ${i + 20}`);
      return (await helper.status).code;
    })());
  }
  const sleeper = new Deno.Command("/bin/sh", { args: ["-c", "sleep 0.2; exit 5"] }).spawn();
  assert.deepEqual(await Promise.all(helpers), [...Array(10).keys()].map((i) => i + 20));
  assert.deepEqual(await Promise.all(commands), [...Array(10).keys()].map((i) => i + 10));
  assert.deepEqual({ ...await sleeper.status }, { success: false, code: 5, signal: null });
});

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});
if (!BUSYBOX) console.log("command_test: skipping the busybox test: busybox is not installed");

Deno.test({
  name: "BlobCommand runs a static multi-call busybox from memory, its applet picked by argv0 or by args[0]",
  ignore: BUSYBOX === undefined,
  fn: async () => {
    const busybox = await Deno.readFile(BUSYBOX!);
    // As the shell would run it: argv[0] "busybox", the applet in argv[1].
    const viaArgs = await new BlobCommand(busybox, { argv0: "busybox", args: ["echo", "from", "args"] }).output();
    assert.equal(text(viaArgs.stdout), "from args\n");
    // As a symlinked applet would run: argv[0] names it.
    const viaArgv0 = await new BlobCommand(busybox, { argv0: "echo", args: ["from", "argv0"] }).output();
    assert.equal(text(viaArgv0.stdout), "from argv0\n");
    // A blob named after the binary needs no argv0.
    using named = loadBlob(busybox, { name: "busybox" });
    const sum = await new BlobCommand(named, { args: ["sha256sum"], stdin: "null" }).output();
    assert.match(text(sum.stdout), /^e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 /);
  },
});

Deno.test("BlobCommand runs third-party dynamically linked executables read from disk", async () => {
  const echo = await Deno.readFile("/bin/echo");
  const out = await new BlobCommand(echo, { args: ["hello", "world"] }).output();
  assert.equal(text(out.stdout), "hello world\n");
  assert.equal(out.code, 0);
  const sh = await Deno.readFile("/bin/sh");
  const shell = await new BlobCommand(sh, { args: ["-c", 'echo "$0 $1"; exit 9', "zero", "one"] }).output();
  assert.equal(text(shell.stdout), "zero one\n");
  assert.deepEqual([shell.success, shell.code, shell.signal], [false, 9, null]);
  const env = await Deno.readFile("/usr/bin/env");
  const printed = await new BlobCommand(env, { clearEnv: true, env: { X: "y z" } }).output();
  assert.equal(text(printed.stdout), "X=y z\n");
});
