// Running out of fds (EMFILE) at the worst moments: the spawn that meets it
// fails and names the call, and nothing after it is lost or leaked.

import assert from "node:assert/strict";

const LIB = new URL("../lib/mod.ts", import.meta.url).href;
const BLOBS = new URL("../blobs/mod.ts", import.meta.url).href;

// A program of its own, so that using up every fd cannot disturb the test runner.
const PROGRAM = `
import { BlobCommand, loadBlob } from ${JSON.stringify(LIB)};
import { blobFor } from ${JSON.stringify(BLOBS)};
const files = [];
const fill = (keep) => {
  for (;;) {
    try { files.push(Deno.openSync("/dev/null")); } catch { break; }
  }
  for (let i = 0; i < keep; i++) files.pop().close();
};
const free = () => { while (files.length > 0) files.pop().close(); };
const out = {};
// 1. The first spawn, which loads the trampoline, meets EMFILE.
const first = loadBlob(blobFor("cat"), { name: "cat" });
fill(0);
try { new BlobCommand(first, { stdin: "null" }).spawn(); out.first = "spawned"; } catch (e) { out.first = String(e); }
free();
// 2. ... and does not make umh give the trampoline up: this one goes through it.
const cat = new BlobCommand(first, { stdin: "piped", stdout: "piped" }).spawn();
out.comm = Deno.readTextFileSync("/proc/" + cat.pid + "/comm").trim();
// 3. stdin.close() while no fd is left for the poller: the pipe still closes.
fill(0);
try { await cat.stdin.close(); out.close = "closed"; } catch (e) { out.close = String(e); }
free();
out.catStatus = { ...await cat.status };
// 4. An exit to watch while the poller cannot be made: polled until it is seen.
const exit3 = loadBlob(new TextEncoder().encode("#!/bin/sh\\nexit 3\\n"));
fill(2);
const helper = new BlobCommand(exit3, { stdin: "null", stdout: "null", stderr: "null" }).spawn();
const status = await helper.status;
free();
out.watched = { ...status };
console.log(JSON.stringify(out));
`;

Deno.test("EMFILE: a first spawn fails naming memfd_create, the next still takes the trampoline, close() and the exit watch survive", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-raw-imports", PROGRAM],
    env: { UMH_SPAWN: "trampoline" },
    signal: AbortSignal.timeout(30_000), // a lost EOF or exit would hang it
  }).output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, decoder.decode(stderr));
  const out = JSON.parse(decoder.decode(stdout));
  assert.match(out.first, /^SpawnError: Cannot load the spawn trampoline: memfd_create\(\) failed with EMFILE/);
  assert.equal(out.comm, "memfd:cat", "started from its memfd by the trampoline, not through posix_spawn");
  assert.equal(out.close, "closed");
  assert.deepEqual(out.catStatus, { success: true, code: 0, signal: null }, "cat saw EOF on stdin");
  assert.deepEqual(out.watched, { success: false, code: 3, signal: null });
});
