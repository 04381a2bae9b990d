// lib/reactor.ts and its use by lib/pipe.ts and lib/helper.ts: messages come
// through Deno's reactor, bulk and BYOB reads leave it, and a helper with a
// piped stdout is still reaped however its stdout ends.

import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import { BlobCommand, encodeFrame, forkUsermodeBlob } from "../lib/mod.ts";
import { thePoller } from "../lib/poller.ts";
import { loadReactor, reactorSocketsOpened } from "../lib/reactor.ts";
import { bytes, eventually, fdCount, processState, randomBytes, readAll, ROOT, sameBytes, text } from "./test_util.ts";

const cat = blobFor("cat");

// Loaded up front here, so that the first helper of this file reads through
// it already; tests/spawn_paths_test.ts runs this file again with the reactor
// turned off (UMH_READER=poller), when this is false.
const POLLER_ONLY = !loadReactor();

Deno.test("UsermodeHelper.stdout waits for a reply in Deno's reactor, not in the poller", async () => {
  await using helper = forkUsermodeBlob(cat);
  const reader = helper.stdout.getReader();
  const reply = reader.read();
  await new Promise((resolve) => setTimeout(resolve, 1)); // the stream's pull has run
  // The read is pending and the exit watch is lazy (10 ms): nothing waits in
  // the poller, unless the poller serves reads.
  assert.equal(thePoller().pending, POLLER_ONLY ? 1 : 0);
  const writer = helper.stdin.getWriter();
  await writer.write(bytes("ping"));
  const { value } = await reply;
  assert.equal(text(value!), "ping");
  await writer.close();
  assert.equal((await reader.read()).done, true);
  assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
});

Deno.test("UsermodeHelper.stdout leaves the reactor for bulk data, bytes in order and in chunks over 64 KiB", async () => {
  const data = randomBytes(8 * 1024 * 1024);
  await using helper = forkUsermodeBlob(cat);
  const reader = helper.stdout.getReader();
  const writer = helper.stdin.getWriter();
  // A small message first (through the reactor), then bulk data.
  await writer.write(data.subarray(0, 5));
  const first = await reader.read();
  assert.equal(first.value!.length, 5);
  const writing = (async (): Promise<void> => {
    await writer.write(data.subarray(5));
    await writer.close();
  })();
  const chunks = [first.value!];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  await writing;
  const received = new Uint8Array(data.length);
  let offset = 0;
  for (const chunk of chunks) {
    received.set(chunk, offset);
    offset += chunk.length;
  }
  assert.equal(offset, data.length);
  assert.ok(sameBytes(received, data), "cat returned different bytes");
  assert.ok(Math.max(...chunks.map((chunk) => chunk.length)) > 64 * 1024, "no read larger than the reactor's buffer");
  assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
});

Deno.test("UsermodeHelper.stdout serves a BYOB read after default reads from the reactor", async () => {
  await using helper = forkUsermodeBlob(cat);
  const writer = helper.stdin.getWriter();
  await writer.write(bytes("one"));
  const reader = helper.stdout.getReader();
  assert.equal(text((await reader.read()).value!), "one");
  reader.releaseLock();
  await writer.write(bytes("two"));
  await writer.close();
  const byob = helper.stdout.getReader({ mode: "byob" });
  let rest = "";
  for (;;) {
    const { value, done } = await byob.read(new Uint8Array(16));
    if (done) break;
    rest += text(value);
  }
  assert.equal(rest, "two");
  assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
});

Deno.test("UsermodeHelper is reaped when its stdout ends before it exits", async () => {
  const script = bytes("#!/bin/sh\nexec >&-\nsleep 0.2\nexit 4\n");
  await using helper = new BlobCommand(script, { stdout: "piped" }).spawn();
  assert.equal((await readAll(helper.stdout)).length, 0);
  assert.deepEqual({ ...await helper.status }, { success: false, code: 4, signal: null });
});

Deno.test("UsermodeHelper is reaped while a grandchild still holds its stdout open", async () => {
  // The helper prints its background sleep's pid and exits at once; the sleep keeps stdout open.
  const script = bytes("#!/bin/sh\nsleep 5 &\necho $!\nexit 0\n");
  await using helper = new BlobCommand(script, { stdout: "piped", stdin: "null" }).spawn();
  const reader = helper.stdout.getReader();
  let line = "";
  while (!line.includes("\n")) line += text((await reader.read()).value!);
  const grandchild = Number(line.trim());
  try {
    const pending = reader.read(); // waits for an EOF that only the grandchild's exit brings
    // Nobody asks for the status: the lazy watch alone must reap the helper.
    await eventually(() => processState(helper.pid) === null, 2_000, "the helper to be reaped");
    assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
    await reader.cancel();
    assert.equal((await pending).done, true);
  } finally {
    Deno.kill(grandchild, "SIGKILL");
  }
});

/** One helper read through the reactor, then ended by EOF (0), cancel and dispose (1) or dispose alone (2). */
async function readAndEnd(how: number): Promise<void> {
  const helper = forkUsermodeBlob(blobFor("reqrep"));
  const writer = helper.stdin.getWriter();
  await writer.write(encodeFrame(bytes("x")));
  const reader = helper.stdout.getReader();
  await reader.read();
  if (how === 0) {
    await writer.close();
    while (!(await reader.read()).done);
    await helper.status;
  } else if (how === 1) {
    await reader.cancel();
    await helper[Symbol.asyncDispose]();
  } else {
    reader.releaseLock();
    await helper[Symbol.asyncDispose]();
  }
}

Deno.test("UsermodeHelper reads through the reactor leave no fd behind: EOF, cancel and dispose", async () => {
  for (let how = 0; how < 3; how++) await readAndEnd(how); // what is opened once per process
  const before = fdCount();
  for (let i = 0; i < 30; i++) await readAndEnd(i % 3);
  assert.equal(fdCount(), before);
});

// Run as a child program: reads one helper, then a second, printing whether
// node:net was loaded after each.
const TWO_HELPERS = `
import { forkUsermodeBlob } from "${ROOT}/lib/mod.ts";
import { reactorLoaded } from "${ROOT}/lib/reactor.ts";
import { blobFor } from "${ROOT}/blobs/mod.ts";
const seen = [];
for (let i = 0; i < 2; i++) {
  const helper = forkUsermodeBlob(blobFor("cat"));
  const output = helper.output(); // stdout is read before cat has anything to say: the read must wait
  const writer = helper.stdin.getWriter();
  await writer.write(new Uint8Array([1]));
  await writer.close();
  await output;
  await new Promise((resolve) => setTimeout(resolve, 1)); // a turn of the event loop
  seen.push(reactorLoaded());
}
console.log(JSON.stringify(seen));
`;

Deno.test({
  name:
    "a program that waits on one helper's pipe never loads node:net; waiting on a second loads it in the background",
  ignore: POLLER_ONLY,
  fn: async () => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--unstable-raw-imports", TWO_HELPERS],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, text(stderr));
    assert.deepEqual(JSON.parse(text(stdout).trim()), [false, true]);
  },
});

Deno.test({
  name: "output already waiting is read without a reactor socket; a read that must wait gets one",
  ignore: POLLER_ONLY,
  fn: async () => {
    const script = bytes("#!/bin/sh\necho done\necho oops >&2\n");
    const exited = new BlobCommand(script, { stdout: "piped", stderr: "piped" }).spawn();
    await exited.status; // gone: its output and both EOFs are in the pipes
    const before = reactorSocketsOpened();
    assert.deepEqual([await exited.stdout.text(), await exited.stderr.text()], ["done\n", "oops\n"]);
    assert.equal(reactorSocketsOpened(), before, "no socket for what was already there");

    const waiting = forkUsermodeBlob(blobFor("cat"));
    const reply = waiting.stdout.text(); // nothing there yet: this read waits in the reactor
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(reactorSocketsOpened(), before + 1);
    const writer = waiting.stdin.getWriter();
    await writer.write(bytes("late"));
    await writer.close();
    assert.equal(await reply, "late");
    assert.equal((await waiting.status).success, true);
  },
});
