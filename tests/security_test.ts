// Issue 4: integrity (Subresource Integrity digests), environment and argv
// control, and the one-sentence answer when --allow-ffi is missing.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { blobFor } from "../blobs/mod.ts";
import { BlobCommand, encodeFrame, forkUsermodeBlob, FrameReader, loadBlob, type UsermodeHelper } from "../lib/mod.ts";
import { fdCount, ourChildren } from "./test_util.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function sri(algorithm: string, bytes: Uint8Array): string {
  return `${algorithm}-${createHash(algorithm).update(bytes).digest("base64")}`;
}

/** Starts the poller and opens the shared /dev/null once, so fd counts see only what a test adds. */
async function warmUp(): Promise<void> {
  await new BlobCommand(blobFor("cat"), { stdout: "null", stderr: "null" }).output();
}

async function ask(helper: UsermodeHelper, message: string): Promise<string> {
  const writer = helper.stdin.getWriter();
  await writer.write(encodeFrame(encoder.encode(message)));
  writer.releaseLock();
  const frames = new FrameReader(helper.stdout);
  const reply = await frames.next();
  frames.release();
  return decoder.decode(reply!);
}

Deno.test("loadBlob() accepts a matching sha256, sha384 or sha512 integrity digest and the blob runs", async () => {
  const bytes = blobFor("reqrep");
  for (const algorithm of ["sha256", "sha384", "sha512"]) {
    using blob = loadBlob(bytes, { name: `sri-${algorithm}`, integrity: sri(algorithm, bytes) });
    await using helper = forkUsermodeBlob(blob, { stderr: "piped" });
    assert.equal(await ask(helper, algorithm), algorithm);
  }
});

Deno.test("loadBlob() refuses a mismatching integrity digest before anything runs: no memfd, fd or process", async () => {
  await warmUp();
  const bytes = blobFor("reqrep");
  const fds = fdCount();
  const tampered = bytes.slice();
  tampered[tampered.length - 1]! ^= 1;
  for (const algorithm of ["sha256", "sha384", "sha512"]) {
    assert.throws(() => loadBlob(tampered, { integrity: sri(algorithm, bytes) }), (error: unknown) => {
      assert.ok(error instanceof Error && !(error instanceof TypeError));
      assert.match(error.message, new RegExp(`integrity check failed: expected ${algorithm}-.*, got ${algorithm}-`));
      return true;
    });
  }
  assert.equal(fdCount(), fds);
  assert.deepEqual(ourChildren(), []);
});

Deno.test("loadBlob() throws TypeError for a malformed integrity string", () => {
  const bytes = blobFor("cat");
  const digest = createHash("sha256").update(bytes).digest("base64");
  for (
    const integrity of ["", "sha256", "sha256-", `md5-${digest}`, `sha1-${digest}`, "sha256-!!!", `SHA256 ${digest}`]
  ) {
    assert.throws(() => loadBlob(bytes, { integrity }), TypeError, `integrity ${JSON.stringify(integrity)}`);
  }
});

Deno.test("main.ts run --integrity refuses a mismatching file with exit 1 and one error line, and runs a matching one", async () => {
  const echo = await Deno.readFile("/bin/echo");
  const run = async (integrity: string): Promise<Deno.CommandOutput> =>
    await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-ffi",
        "--allow-read",
        "main.ts",
        "run",
        "/bin/echo",
        "--integrity",
        integrity,
        "--",
        "RAN",
      ],
      cwd: ROOT,
      stdin: "null",
      env: { NO_COLOR: "1" },
    }).output();
  const bad = await run(sri("sha256", encoder.encode("not echo")));
  assert.equal(bad.code, 1);
  assert.equal(decoder.decode(bad.stdout), "", "nothing ran");
  const lines = decoder.decode(bad.stderr).trimEnd().split("\n");
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0]!, /^error: Cannot load blob "echo": integrity check failed: expected sha256-/);
  const good = await run(sri("sha512", echo));
  assert.equal(decoder.decode(good.stderr), "");
  assert.equal(decoder.decode(good.stdout), "RAN\n");
  assert.equal(good.code, 0);
});

Deno.test("BlobCommand clearEnv gives the helper exactly the variables passed, none of the owner's", async () => {
  const env = await Deno.readFile("/usr/bin/env");
  Deno.env.set("UMH_OWNER_SECRET", "do-not-leak");
  try {
    const passed = { A: "1", B: "with space", C: "", D: "ünïcode=yes" };
    const out = await new BlobCommand(env, { clearEnv: true, env: passed }).output();
    assert.equal(out.code, 0);
    const lines = decoder.decode(out.stdout).trimEnd().split("\n").sort();
    assert.deepEqual(lines, ["A=1", "B=with space", "C=", "D=ünïcode=yes"]);
    const empty = await new BlobCommand(env, { clearEnv: true }).output();
    assert.equal(decoder.decode(empty.stdout), "");
    const inherited = await new BlobCommand(env).output();
    assert.match(
      decoder.decode(inherited.stdout),
      /^UMH_OWNER_SECRET=do-not-leak$/m,
      "control: without clearEnv it is seen",
    );
  } finally {
    Deno.env.delete("UMH_OWNER_SECRET");
  }
});

Deno.test("BlobCommand argv0 is the helper's argv[0] in /proc/<pid>/cmdline, followed by exactly args", async () => {
  using blob = loadBlob(blobFor("reqrep"), { name: "named-blob" });
  await using helper = new BlobCommand(blob, {
    argv0: "[kworker/fake]",
    args: ["two words", "", "--flag=x"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  assert.equal(await ask(helper, "!pid"), String(helper.pid)); // exec has finished once it answers
  const argv = Deno.readTextFileSync(`/proc/${helper.pid}/cmdline`).split("\0").slice(0, -1);
  assert.deepEqual(argv, ["[kworker/fake]", "two words", "", "--flag=x"]);
});

Deno.test("BlobCommand refuses NUL in args or env with a TypeError naming the entry, before spawning", async () => {
  await warmUp();
  const fds = fdCount();
  const cat = blobFor("cat");
  const cases: [ConstructorParameters<typeof BlobCommand>[1], string][] = [
    [{ args: ["ok", "bad\0arg"] }, "args[1]"],
    [{ args: ["\0"] }, "args[0]"],
    [{ env: { GOOD: "1", K: "v\0v" } }, 'env["K"]'],
    [{ clearEnv: true, env: { K: "\0" } }, 'env["K"]'],
    [{ env: { "K\0EY": "v" } }, '"K\\u0000EY"'],
    [{ argv0: "a\0b" }, "argv0"],
  ];
  for (const [options, entry] of cases) {
    assert.throws(() => new BlobCommand(cat, { ...options, stdin: "piped", stdout: "piped" }).spawn(), (error) => {
      assert.ok(error instanceof TypeError, `TypeError for ${JSON.stringify(options)}, got ${error}`);
      assert.ok(error.message.includes(entry), `"${error.message}" names ${entry}`);
      return true;
    });
  }
  assert.equal(fdCount(), fds, "no pipe or memfd left behind");
  assert.deepEqual(ourChildren(), []);
});

const NEEDS_FFI = /^Cannot start a user-mode helper: umh needs --allow-ffi, because .+$/;

Deno.test("main.ts without --allow-ffi exits 1 with one error line that names --allow-ffi and why", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-read", "main.ts", "demo"],
    cwd: ROOT,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(out.code, 1);
  assert.equal(decoder.decode(out.stdout), "");
  const lines = decoder.decode(out.stderr).trimEnd().split("\n");
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0]!.replace(/^error: /, ""), NEEDS_FFI);
  assert.match(lines[0]!, /^error: .*full access/, "says why: FFI is all-powerful");
});

Deno.test("lib/mod.ts without --allow-ffi imports fine and throws that same sentence, as NotCapable, on first call", async () => {
  const dir = await Deno.makeTempDir({ prefix: "umh-no-ffi-" });
  try {
    const program = `${dir}/child.mjs`;
    await Deno.writeTextFile(
      program,
      `import { loadBlob } from "${new URL("lib/mod.ts", `file://${ROOT}`)}";
       for (let i = 0; i < 2; i++) {
         try { loadBlob(new Uint8Array([1])); } catch (error) { console.log(error.constructor.name + ": " + error.message); }
       }`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", program],
      stdin: "null",
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(decoder.decode(out.stderr), "");
    assert.equal(out.code, 0);
    const lines = decoder.decode(out.stdout).trimEnd().split("\n");
    assert.equal(lines.length, 2);
    // The class Deno itself throws for a missing permission.
    for (const line of lines) assert.match(line.replace(/^NotCapable: /, ""), NEEDS_FFI);
    const cli = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", "main.ts", "demo"],
      cwd: ROOT,
      stdin: "null",
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(
      decoder.decode(cli.stderr).trim(),
      `error: ${lines[0]!.replace(/^NotCapable: /, "")}`,
      "same sentence",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
