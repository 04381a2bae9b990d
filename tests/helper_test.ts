// UsermodeHelper: pipes, exit status, kill, output(), dispose, ref/unref.

import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import { BlobCommand, encodeFrame, forkUsermodeBlob, SyscallError, type UsermodeHelper } from "../lib/mod.ts";
import {
  bytes,
  childFds,
  Conversation,
  eventually,
  fdCount,
  processState,
  randomBytes,
  readAll,
  ROOT,
  sameBytes,
  text,
  within,
} from "./test_util.ts";

const MiB = 1024 * 1024;

/** Feeds `data` to a cat helper in `chunk`-sized writes while reading its stdout concurrently. */
async function catRoundTrip(data: Uint8Array, chunk: number): Promise<void> {
  await using helper = forkUsermodeBlob(blobFor("cat"));
  const writing = (async (): Promise<void> => {
    const writer = helper.stdin.getWriter();
    for (let offset = 0; offset < data.length; offset += chunk) {
      await writer.write(data.subarray(offset, offset + chunk));
    }
    await writer.close();
  })();
  const [received] = await Promise.all([readAll(helper.stdout), writing]);
  assert.equal(received.length, data.length);
  assert.ok(sameBytes(received, data), "cat returned different bytes");
  assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
}

Deno.test("UsermodeHelper round-trips 1 byte through the cat blob", async () => {
  await catRoundTrip(new Uint8Array([0x2a]), 1);
});

Deno.test("UsermodeHelper round-trips 1 MiB through the cat blob", async () => {
  await catRoundTrip(randomBytes(MiB), 100_000);
});

Deno.test("UsermodeHelper round-trips 64 MiB through the cat blob", async () => {
  await catRoundTrip(randomBytes(64 * MiB), 4 * MiB);
});

/** The largest chunk a reader of `mode` got from cat for 16 MiB written in 1 MiB writes. */
async function largestCatChunk(mode: "byob" | "default"): Promise<number> {
  await using helper = forkUsermodeBlob(blobFor("cat"));
  const data = new Uint8Array(16 * MiB).fill(0x61);
  const writing = (async (): Promise<void> => {
    const writer = helper.stdin.getWriter();
    for (let offset = 0; offset < data.length; offset += MiB) await writer.write(data.subarray(offset, offset + MiB));
    await writer.close();
  })();
  let largest = 0;
  let total = 0;
  if (mode === "byob") {
    const reader = helper.stdout.getReader({ mode: "byob" });
    let buffer = new Uint8Array(4 * MiB);
    for (;;) {
      const { value, done } = await reader.read(buffer);
      if (done) break;
      largest = Math.max(largest, value.length);
      total += value.length;
      buffer = new Uint8Array(value.buffer);
    }
  } else {
    for await (const chunk of helper.stdout) {
      largest = Math.max(largest, chunk.length);
      total += chunk.length;
    }
  }
  await writing;
  assert.equal(total, data.length);
  assert.equal((await helper.status).code, 0);
  return largest;
}

// Bulk data grows the pipe past the kernel's default 64 KiB, so a reader gets
// up to 1 MiB per wake-up instead of 64 KiB (16x fewer trips through the poller).
for (const mode of ["default", "byob"] as const) {
  Deno.test(`UsermodeHelper.stdout grows its pipe under bulk data for a ${mode} reader`, async () => {
    const largest = await largestCatChunk(mode);
    assert.ok(largest > 64 * 1024, `largest chunk ${largest} bytes: the pipe stayed at the default 64 KiB`);
  });
}

Deno.test("UsermodeHelper child holds only fds 0, 1 and 2", async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"));
  const talk = new Conversation(helper);
  assert.equal(await talk.request("!pid"), String(helper.pid)); // answered: exec and CLOEXEC are done
  assert.deepEqual(childFds(helper.pid), [0, 1, 2]);
  await talk.close();
  assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
});

Deno.test('UsermodeHelper.kill("SIGKILL") reports code 137 and signal SIGKILL', async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"));
  helper.kill("SIGKILL");
  assert.deepEqual({ ...await helper.status }, { success: false, code: 137, signal: "SIGKILL" });
});

Deno.test("UsermodeHelper.kill() sends SIGTERM by default (code 143)", async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"));
  helper.kill();
  assert.deepEqual({ ...await helper.status }, { success: false, code: 143, signal: "SIGTERM" });
});

Deno.test("UsermodeHelper.status reports SIGSEGV (code 139) for a helper that crashes", async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"));
  await new Conversation(helper).send("!crash");
  assert.deepEqual({ ...await helper.status }, { success: false, code: 139, signal: "SIGSEGV" });
});

Deno.test('UsermodeHelper.status is exactly { success: false, code: 3, signal: null } after "!exit 3"', async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"));
  await new Conversation(helper).send("!exit 3");
  assert.deepEqual({ ...await helper.status }, { success: false, code: 3, signal: null });
});

Deno.test("UsermodeHelper.kill() throws TypeError after the helper exited", async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"));
  await helper.stdin.close();
  assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
  assert.throws(() => helper.kill(), TypeError);
  assert.throws(() => helper.kill("SIGKILL"), TypeError);
});

Deno.test("UsermodeHelper.status resolves when nobody reads the helper's pipes", async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"), { stderr: "piped" });
  await new Conversation(helper).send("!exit 0");
  assert.deepEqual({ ...await within(helper.status, 30_000, "status") }, { success: true, code: 0, signal: null });
});

Deno.test("UsermodeHelper dies of SIGPIPE when it writes to a closed pipe", async () => {
  await using helper = forkUsermodeBlob(blobFor("cat"));
  await helper.stdout.cancel(); // our read end is closed: cat's next write gets SIGPIPE
  const writer = helper.stdin.getWriter();
  const chunk = new Uint8Array(64 * 1024);
  let writes = 0;
  try {
    for (; writes < 10_000; writes++) await writer.write(chunk);
  } catch {
    // EPIPE once cat is gone: expected
  }
  assert.ok(writes < 10_000, "cat kept reading: it did not die of SIGPIPE");
  assert.deepEqual({ ...await helper.status }, { success: false, code: 141, signal: "SIGPIPE" });
});

Deno.test("UsermodeHelper.stdin rejects with SyscallError EPIPE once the helper died", async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"));
  const writer = helper.stdin.getWriter();
  helper.kill("SIGKILL");
  await helper.status;
  const error = await writer.write(bytes("too late")).then(() => null, (e) => e);
  assert.ok(error instanceof SyscallError, `expected SyscallError, got ${error}`);
  assert.equal(error.code, "EPIPE");
  assert.equal(error.syscall, "write");
  assert.match(error.message, /stdin/);
  assert.ok(Deno.pid > 0); // still here: Deno ignores SIGPIPE and the write only rejected
});

Deno.test("UsermodeHelper.stdin rejects a write pending on a full pipe with EPIPE when the helper is killed", async () => {
  await using helper = forkUsermodeBlob(blobFor("cat"));
  // Nobody reads cat's stdout, so both pipes fill and the 32 MiB write waits for room.
  const pending = helper.stdin.getWriter().write(new Uint8Array(32 * MiB)).then(() => null, (error) => error);
  await new Promise((resolve) => setTimeout(resolve, 100));
  helper.kill("SIGKILL");
  const error = await within(pending, 30_000, "the pending write to settle");
  assert.ok(error instanceof SyscallError, `expected SyscallError, got ${error}`);
  assert.equal(error.code, "EPIPE");
  assert.deepEqual({ ...await helper.status }, { success: false, code: 137, signal: "SIGKILL" });
});

Deno.test("UsermodeHelper.kill() sends any named signal and refuses unknown names with TypeError", async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"));
  assert.throws(() => helper.kill("SIGNOPE" as Deno.Signal), TypeError);
  helper.kill("SIGUSR1");
  assert.deepEqual({ ...await helper.status }, { success: false, code: 138, signal: "SIGUSR1" });
});

Deno.test("UsermodeHelper.output() collects stdout and stderr of reqrep", async () => {
  await using helper = forkUsermodeBlob(blobFor("reqrep"), { stderr: "piped" });
  const writer = helper.stdin.getWriter();
  await writer.write(encodeFrame(bytes("!stderr to stderr")));
  await writer.write(encodeFrame(bytes("echo")));
  await writer.close();
  const output = await helper.output();
  assert.equal(output.code, 0);
  assert.equal(output.success, true);
  assert.equal(text(output.stderr), "to stderr\n");
  assert.deepEqual([...output.stdout], [2, 0, 0, 0, ...bytes("ok"), 4, 0, 0, 0, ...bytes("echo")]);
});

Deno.test("UsermodeHelper.output() a second time throws TypeError (locked), as Deno.ChildProcess.output() does", async () => {
  const script = bytes("#!/bin/sh\necho out\n");
  const helper = new BlobCommand(script, { stdout: "piped", stderr: "piped" }).spawn();
  assert.equal(text((await helper.output()).stdout), "out\n");
  await assert.rejects(helper.output(), (error: unknown) => error instanceof TypeError && /locked/.test(error.message));
});

Deno.test("UsermodeHelper.output() collects a #! script's stdout and stderr", async () => {
  const script = bytes("#!/bin/sh\necho out; echo err >&2; echo more\nexit 4\n");
  await using helper = new BlobCommand(script, { stdout: "piped", stderr: "piped" }).spawn();
  const output = await helper.output();
  assert.equal(text(output.stdout), "out\nmore\n");
  assert.equal(text(output.stderr), "err\n");
  assert.equal(output.code, 4);
  assert.equal(output.success, false);
  assert.equal(output.signal, null);
});

Deno.test("UsermodeHelper[Symbol.asyncDispose] reaps the helper and closes every fd", async () => {
  // Warm up the poller and /dev/null so their long-lived fds are not counted.
  await (async (): Promise<void> => {
    await using warm = forkUsermodeBlob(blobFor("reqrep"), { stderr: "piped" });
    await new Conversation(warm).request("hi");
  })();
  const before = fdCount();
  let pid = 0;
  {
    await using helper = forkUsermodeBlob(blobFor("reqrep"), { stderr: "piped" });
    pid = helper.pid;
    assert.equal(await new Conversation(helper).request("hi"), "hi");
    assert.ok(fdCount() > before, "the helper's pipes should be open while it runs");
  }
  assert.equal(fdCount(), before);
  assert.equal(processState(pid), null, "the helper was not reaped");
});

Deno.test("UsermodeHelper[Symbol.asyncDispose] SIGKILLs a helper that ignores SIGTERM", async () => {
  const script = bytes("#!/bin/sh\ntrap '' TERM\necho ready\nexec sleep 60\n");
  let helper: UsermodeHelper | undefined;
  {
    await using h = new BlobCommand(script, { stdout: "piped" }).spawn();
    helper = h;
    const reader = h.stdout.getReader();
    const { value } = await reader.read();
    assert.equal(text(value!), "ready\n");
    reader.releaseLock();
  }
  assert.deepEqual({ ...await helper.status }, { success: false, code: 137, signal: "SIGKILL" });
});

/** Runs a small Deno program that starts a `!hang` helper, `ref`'d or `unref`'d. */
async function hangingOwner(mode: "ref" | "unref"): Promise<{ exited: boolean; helperPid: number }> {
  const dir = await Deno.makeTempDir({ prefix: "umh_unref_" });
  try {
    const file = `${dir}/owner.ts`;
    await Deno.writeTextFile(
      file,
      `import { encodeFrame, forkUsermodeBlob } from "${ROOT}/lib/mod.ts";
import { blobFor } from "${ROOT}/blobs/mod.ts";
const helper = forkUsermodeBlob(blobFor("reqrep"));
await helper.stdin.getWriter().write(encodeFrame(new TextEncoder().encode("!hang")));
void helper.stdout.getReader().read(); // a pending read on the helper's stdout
if (Deno.args[0] === "unref") helper.unref();
console.log(helper.pid);
`,
    );
    const owner = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-raw-imports", file, mode],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = owner.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let line = "";
    while (!line.includes("\n")) {
      const { value, done } = await within(reader.read(), 60_000, "the owner printing the helper's pid");
      if (done) break;
      line += value;
    }
    reader.releaseLock();
    const helperPid = Number(line.trim());
    assert.ok(helperPid > 0, `owner printed ${JSON.stringify(line)}`);
    // The unref'd owner should exit by itself; give either a generous while.
    const limit = mode === "unref" ? 60_000 : 3_000;
    const status = await within(owner.status, limit, "owner exit").catch(() => null);
    if (status === null) owner.kill("SIGKILL");
    await owner.status;
    await owner.stdout.cancel().catch(() => {});
    if (status === null) {
      try {
        Deno.kill(helperPid, "SIGKILL"); // the owner was killed before it could stop its helper
      } catch {
        // already gone
      }
    }
    if (status !== null) assert.equal(status.code, 0);
    return { exited: status !== null, helperPid };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("UsermodeHelper.unref() lets the owner exit while the helper hangs, and the helper is stopped", async () => {
  const { exited, helperPid } = await hangingOwner("unref");
  assert.ok(exited, "the owner did not exit with an unref'd helper");
  // The owner stops its helpers at exit; init reaps them.
  await eventually(() => processState(helperPid) !== "S", 10_000, "the hung helper to be killed");
});

Deno.test("UsermodeHelper keeps the owner alive while ref'd", async () => {
  const { exited } = await hangingOwner("ref");
  assert.ok(!exited, "the owner exited although its helper was ref'd and hung");
});
