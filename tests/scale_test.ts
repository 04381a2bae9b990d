// Many helpers at once: no fd crosses between them, no thread is held per
// helper, and nothing leaks over a thousand spawn/dispose cycles.

import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import { forkUsermodeBlob, loadBlob, type UsermodeHelper } from "../lib/mod.ts";
import { roundTrips } from "./round_trips.ts";
import { childFds, Conversation, openFds, ourZombies, processState, within } from "./test_util.ts";

Deno.test("forkUsermodeBlob() children hold only fds 0, 1 and 2 with 50 helpers started at once", async () => {
  using blob = loadBlob(blobFor("reqrep"), { name: "reqrep" });
  const helpers: UsermodeHelper[] = [];
  try {
    // Start them all before any answers, so each spawn happens while the others' pipes are open.
    for (let i = 0; i < 50; i++) helpers.push(forkUsermodeBlob(blob));
    const talks = helpers.map((helper) => new Conversation(helper));
    const pids = await within(Promise.all(talks.map((talk) => talk.request("!pid"))), 60_000, "50 replies");
    assert.deepEqual(pids, helpers.map((helper) => String(helper.pid)));
    for (const helper of helpers) assert.deepEqual(childFds(helper.pid), [0, 1, 2], `fds of pid ${helper.pid}`);
    await Promise.all(talks.map((talk) => talk.close()));
    const statuses = await Promise.all(helpers.map((helper) => helper.status));
    for (const status of statuses) assert.deepEqual({ ...status }, { success: true, code: 0, signal: null });
  } finally {
    await Promise.all(helpers.map((helper) => helper[Symbol.asyncDispose]()));
  }
});

Deno.test("forkUsermodeBlob() keeps 200 helpers with pending reads answering while file I/O and timers work", async () => {
  using blob = loadBlob(blobFor("reqrep"), { name: "reqrep" });
  const helpers: UsermodeHelper[] = [];
  try {
    for (let i = 0; i < 200; i++) helpers.push(forkUsermodeBlob(blob));
    const talks = helpers.map((helper) => new Conversation(helper));
    // 200 reads pending on 200 stdouts, none of which has anything to say yet.
    let settled = 0;
    const replies = talks.map((talk) => talk.receive().finally(() => settled++));

    // The event loop and Deno's blocking pool must still serve everyone else.
    const timerFired = await within(
      new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 20)),
      30_000,
      "a timer",
    );
    assert.ok(timerFired);
    const config = await within(Deno.readTextFile(new URL("../deno.json", import.meta.url)), 30_000, "readTextFile");
    assert.match(config, /"name"/);
    const opened = await within(Deno.open(new URL("../deno.json", import.meta.url)), 30_000, "Deno.open");
    opened.close();
    assert.equal(settled, 0, "a read completed although no helper had written anything");

    await Promise.all(talks.map((talk, i) => talk.send(`hello ${i}`)));
    const answers = await within(Promise.all(replies), 120_000, "200 replies");
    assert.deepEqual(answers, talks.map((_, i) => `hello ${i}`));

    await Promise.all(talks.map((talk) => talk.close()));
    const statuses = await within(Promise.all(helpers.map((helper) => helper.status)), 120_000, "200 exits");
    for (const status of statuses) assert.deepEqual({ ...status }, { success: true, code: 0, signal: null });
  } finally {
    await Promise.all(helpers.map((helper) => helper[Symbol.asyncDispose]()));
  }
});

Deno.test("UsermodeHelper leaves /proc/self/fd as it was and no zombie after 1,000 spawn-and-dispose cycles", async () => {
  using blob = loadBlob(blobFor("reqrep"), { name: "reqrep" });
  const bytes = blobFor("cat");
  // One warm-up of each path, so the poller, /dev/null and the Uint8Array's memfd already exist.
  // Two uses of `bytes`: a reused array stays loaded from its second spawn on.
  for (let i = 0; i < 2; i++) {
    await using warm = forkUsermodeBlob(bytes, { stderr: "piped" });
    await using other = forkUsermodeBlob(blob, { stderr: "null" });
    await new Conversation(other).request("warm");
    await warm.stdin.close();
  }
  const before = openFds();
  const pids: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const kind = i % 4;
    if (kind === 0) {
      // Disposed while running: SIGTERM path.
      await using helper = forkUsermodeBlob(blob);
      pids.push(helper.pid);
    } else if (kind === 1) {
      // Disposed after a clean exit, all three pipes in use.
      await using helper = forkUsermodeBlob(blob, { stderr: "piped" });
      pids.push(helper.pid);
      const talk = new Conversation(helper);
      assert.equal(await talk.request(`n${i}`), `n${i}`);
      await talk.close();
      await helper.status;
    } else if (kind === 2) {
      // From a Uint8Array (loaded once), killed, then disposed.
      await using helper = forkUsermodeBlob(bytes);
      pids.push(helper.pid);
      helper.kill("SIGKILL");
      assert.equal((await helper.status).signal, "SIGKILL");
    } else {
      // Streams never touched, stdin never closed by us.
      await using helper = forkUsermodeBlob(bytes, { stdin: "null", stdout: "null" });
      pids.push(helper.pid);
      assert.equal((await helper.status).code, 0);
    }
  }
  assert.deepEqual(openFds(), before, "fds changed over 1,000 cycles");
  assert.deepEqual(ourZombies(pids), [], "zombies left behind");
  const alive = pids.filter((pid) => {
    const state = processState(pid);
    return state !== null && state !== "Z";
  });
  // A pid may have been recycled by an unrelated process: only our own children count.
  for (const pid of alive) {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    assert.notEqual(ppid, Deno.pid, `helper pid ${pid} is still running`);
  }
});

// The trampoline keeps everything per call in its own frame (the child's
// stack, the word the kernel clears at the exec): three Workers and the main
// thread spawning at the same moment must each get their own helpers back.
Deno.test("helpers spawned at once from three Workers and the main thread all answer their own owner", async () => {
  const dir = await Deno.makeTempDir({ prefix: "umh_workers_" });
  try {
    const shared = new URL("./round_trips.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/worker.js`,
      `import { roundTrips } from "${shared}"; self.onmessage = async (e) => postMessage(await roundTrips(e.data));`,
    );
    const workers = [0, 1, 2].map(() => new Worker(`file://${dir}/worker.js`, { type: "module" }));
    try {
      const answered = workers.map((worker) =>
        new Promise<number>((resolve, reject) => {
          worker.onmessage = (event) => resolve(event.data);
          worker.onerror = (event) => reject(new Error(event.message));
        })
      );
      for (const worker of workers) worker.postMessage(100);
      const counts = await within(
        Promise.all([roundTrips(100), ...answered]),
        120_000,
        "400 round trips from 4 threads",
      );
      assert.deepEqual(counts, [100, 100, 100, 100]);
    } finally {
      for (const worker of workers) worker.terminate();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
