// Issue 3: every helper's whole life is owned — exit watching at scale, no
// leaks over many cycles, and helpers killed when the owner goes.

import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import { encodeFrame, forkUsermodeBlob, FrameReader, loadBlob } from "../lib/mod.ts";
import { fdCount, processState, threadCount } from "./test_util.ts";

/**
 * The parent-death signal is the trampoline's: through glibc's posix_spawn
 * (UMH_SPAWN=posix_spawn) helpers have none, as the README says.
 */
const KERNEL_KILLS = Deno.env.get("UMH_SPAWN") !== "posix_spawn";
function kernelTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: !KERNEL_KILLS, fn });
}

const REQREP = blobFor("reqrep");

/** True while `pid` exists and is not a zombie. */
function running(pid: number): boolean {
  const state = processState(pid);
  return state !== null && state !== "Z";
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = performance.now() + ms;
  let left = pids.filter(running);
  while (left.length > 0 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    left = left.filter(running);
  }
  return left;
}

/** Asserts every pid is gone within `ms`; SIGKILLs survivors first, so a failing run leaves no orphan. */
async function assertGone(pids: number[], ms: number, message?: string): Promise<void> {
  const left = await waitGone(pids, ms);
  for (const pid of left) Deno.kill(pid, "SIGKILL");
  assert.deepEqual(left, [], message);
}

Deno.test("forkUsermodeBlob() 10,000 start/exit cycles end with the same fd and thread counts", async () => {
  using blob = loadBlob(REQREP, { name: "cycle" });
  // Warm up: the poller, its eventfd and the /dev/null fd are made once.
  for (let i = 0; i < 20; i++) {
    const helper = forkUsermodeBlob(blob, { stdout: "null" });
    await helper.stdin.close();
    await helper.status;
  }
  const fds = fdCount();
  const threads = threadCount();
  const inFlight = 8;
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < 10_000) {
      started++;
      const helper = forkUsermodeBlob(blob, { stdout: "null" });
      await helper.stdin.close(); // EOF: reqrep exits 0
      assert.equal((await helper.status).code, 0);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  assert.equal(fdCount(), fds);
  assert.ok(threadCount() <= threads + 1, `threads grew from ${threads} to ${threadCount()}`);
});

Deno.test("forkUsermodeBlob() watches and reaps 500 helpers alive at once", async () => {
  using blob = loadBlob(REQREP, { name: "many" });
  const fds = fdCount();
  const threadsBefore = threadCount();
  const helpers = Array.from({ length: 500 }, () => forkUsermodeBlob(blob));
  // Every one answers while all are alive, through the one poller.
  const replies = await Promise.all(helpers.map(async (helper) => {
    const writer = helper.stdin.getWriter();
    await writer.write(encodeFrame(new TextEncoder().encode("!pid")));
    const reply = await new FrameReader(helper.stdout).next();
    await writer.close();
    return Number(new TextDecoder().decode(reply!));
  }));
  assert.deepEqual(replies, helpers.map((h) => h.pid));
  assert.ok(threadCount() <= threadsBefore + 2, `threads: ${threadsBefore} → ${threadCount()} with 500 helpers`);
  const statuses = await Promise.all(helpers.map((h) => h.status));
  assert.ok(statuses.every((s) => s.success));
  for (const helper of helpers) await helper[Symbol.asyncDispose]();
  assert.deepEqual(helpers.map((h) => h.pid).filter(running), []);
  assert.equal(fdCount(), fds);
});

Deno.test("a helper dropped with its pipes unread and unclosed gives its fds back once collected", async () => {
  const program = `import { BlobCommand, loadBlob } from "${new URL("../lib/mod.ts", import.meta.url).href}";
    const count = () => [...Deno.readDirSync("/proc/self/fd")].length;
    const blob = loadBlob(new TextEncoder().encode("#!/bin/sh\\necho hi; echo there >&2\\n"));
    await new BlobCommand(blob, { stdout: "piped" }).output(); // the poller and reactor exist from here on
    const before = count();
    for (let i = 0; i < 200; i++) {
      // Three pipes, none read or closed: only the status is awaited.
      await new BlobCommand(blob, { stdin: "piped", stdout: "piped", stderr: "piped" }).spawn().status;
    }
    for (let i = 0; i < 5; i++) { gc(); await new Promise((resolve) => setTimeout(resolve, 10)); }
    console.log(JSON.stringify({ before, after: count() }));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-raw-imports", "--v8-flags=--expose-gc", program],
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0);
  const { before, after } = JSON.parse(new TextDecoder().decode(out.stdout));
  // Without collection all 600 stay open; GC may keep the last few helpers' pipes a while longer.
  assert.ok(after <= before + 12, `${after - before} fds still held after 200 dropped helpers (600 pipes)`);
});

Deno.test("forkUsermodeBlob() leaves Deno.Command children started alongside to Deno", async () => {
  using blob = loadBlob(REQREP, { name: "side" });
  const helpers = Array.from({ length: 20 }, () => forkUsermodeBlob(blob));
  const commands = Array.from(
    { length: 20 },
    (_, i) => new Deno.Command("/bin/sh", { args: ["-c", `sleep 0.0${i % 5}; exit ${i % 4}`] }).spawn(),
  );
  for (const helper of helpers) await helper.stdin.close();
  const [helperStatuses, commandStatuses] = await Promise.all([
    Promise.all(helpers.map((h) => h.status)),
    Promise.all(commands.map((c) => c.status)),
  ]);
  assert.ok(helperStatuses.every((s) => s.code === 0));
  assert.deepEqual(commandStatuses.map((s) => s.code), commands.map((_, i) => i % 4));
  for (const helper of helpers) await helper[Symbol.asyncDispose]();
});

// --- owner exit: a child Deno program starts five helpers, then ends in one way or another.

const OWNER = `
import { forkUsermodeBlob, handleOwnerSignals } from "${new URL("../lib/mod.ts", import.meta.url).href}";
import { blobFor } from "${new URL("../blobs/mod.ts", import.meta.url).href}";
const how = Deno.args[0];
const helpers = Array.from({ length: 5 }, () => forkUsermodeBlob(blobFor("reqrep"), { stderr: "null" }));
const ready = () => console.log(JSON.stringify(helpers.map((h) => h.pid)));
if (how !== "graceful") ready();
if (how === "throw") throw new Error("owner failed");
if (how === "reject") Promise.reject(new Error("owner rejected"));
if (how === "exit") Deno.exit(4);
if (how === "end") for (const h of helpers) h.unref();
if (how === "wait") setInterval(() => {}, 1000);
if (how === "graceful") {
  handleOwnerSignals(false);
  const timer = setInterval(() => {}, 1000);
  Deno.addSignalListener("SIGTERM", async () => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const alive = helpers.filter((h) => { try { h.kill("SIGCONT"); return true; } catch { return false; } });
    console.log("alive after SIGTERM: " + alive.length);
    clearInterval(timer);
    Deno.exit(0);
  });
  ready(); // only now may the test send SIGTERM
}
`;

/** Runs `main` (whose Worker prints its helper's pid first) and reads that pid. */
async function startWorkerProgram(main: string, args: string[], stderr: "inherit" | "null"): Promise<{
  child: Deno.ChildProcess;
  reader: ReadableStreamDefaultReader<string>;
  out: string;
  pid: number;
}> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-raw-imports", main, ...args],
    stdout: "piped",
    stderr,
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) out += (await reader.read()).value ?? "";
  return { child, reader, out, pid: Number(out.trim()) };
}

/** OWNER with helpers that `sleep` for `seconds` and never read stdin; `options` go into their options object. */
function sleeperOwner(seconds: number, options = ""): string {
  const sleeper = `new TextEncoder().encode('#!/bin/sh\\nexec sleep ${seconds}\\n')`;
  return OWNER.replace(
    'blobFor("reqrep"), { stderr: "null" }',
    `${sleeper}, { stdin: "null", stdout: "null", ${options} }`,
  );
}

async function owner(
  how: string,
  signal?: Deno.Signal,
  source = OWNER,
): Promise<{ pids: number[]; status: Deno.CommandStatus; rest: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/owner.ts`;
    await Deno.writeTextFile(script, source);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-raw-imports", script, how],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const pids = JSON.parse(text.split("\n")[0]!) as number[];
    if (signal) child.kill(signal);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    return { pids, status: await child.status, rest: text.split("\n").slice(1).join("\n") };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  Deno.test(`owner exit on ${signal} kills and reaps all five helpers, then dies of ${signal}`, async () => {
    const { pids, status } = await owner("wait", signal);
    assert.equal(pids.length, 5);
    assert.equal(status.code, 128 + { SIGTERM: 15, SIGINT: 2, SIGHUP: 1 }[signal]);
    assert.equal(status.signal, signal, "the owner dies of the signal itself, as it would without umh");
    assert.deepEqual(pids.filter(running), []);
  });
}

for (const how of ["throw", "reject", "exit", "end"]) {
  Deno.test(`owner exit by ${how} kills and reaps all five helpers`, async () => {
    const { pids, status } = await owner(how);
    assert.equal(pids.length, 5);
    assert.equal(status.success, how === "end", `owner status ${JSON.stringify(status)}`);
    if (how === "exit") assert.equal(status.code, 4);
    assert.deepEqual(pids.filter(running), []);
  });
}

Deno.test("handleOwnerSignals(false) leaves SIGTERM to the program's own handler, and its helpers running", async () => {
  const { pids, status, rest } = await owner("graceful", "SIGTERM");
  assert.equal(status.code, 0);
  assert.match(rest, /alive after SIGTERM: 5/);
  assert.deepEqual(pids.filter(running), [], "Deno.exit() afterwards still reaps them");
});

kernelTest("owner killed with SIGKILL: the kernel kills its helpers, even ones that never read stdin", async () => {
  const { pids, status } = await owner("wait", "SIGKILL");
  assert.equal(status.signal, "SIGKILL");
  assert.deepEqual(await waitGone(pids, 5000), []);
  // Helpers that would outlive an EOF on stdin: only the parent-death signal stops them.
  const sleepers = await owner("wait", "SIGKILL", sleeperOwner(1000));
  assert.equal(sleepers.status.signal, "SIGKILL");
  await assertGone(sleepers.pids, 5000);
});

kernelTest(
  "the program's own SIGINT listener and preventDefault() keep it and its helpers running, as without umh",
  async () => {
    const program = `import { BlobCommand } from "${new URL("../lib/mod.ts", import.meta.url).href}";
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    const helper = new BlobCommand(new TextEncoder().encode("#!/bin/sh\\nexec sleep 0.6\\n")).spawn();
    // Both listeners come after the spawn, so after anything umh might bind.
    let heard = 0;
    Deno.addSignalListener("SIGINT", () => heard++);
    addEventListener("unhandledrejection", (event) => event.preventDefault());
    addEventListener("error", (event) => event.preventDefault());
    Deno.kill(Deno.pid, "SIGINT");
    Promise.reject(new Error("handled"));
    setTimeout(() => { throw new Error("also handled"); }, 0);
    await sleep(200);
    console.log(JSON.stringify({ heard, status: { ...await helper.status } }));
    Deno.exit(0);`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--unstable-raw-imports", program],
      stderr: "inherit",
    }).output();
    assert.deepEqual([out.code, out.signal], [0, null]);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
      heard: 1,
      status: { success: true, code: 0, signal: null }, // it ran to its own end, never signalled
    });
  },
);

Deno.test("a helper whose parentDeathSignal is not SIGKILL is still stopped by umh when the owner throws", async () => {
  // SIGWINCH does not end a process: the kernel's signal alone would leave it running.
  const { pids, status } = await owner("throw", undefined, sleeperOwner(30, 'parentDeathSignal: "SIGWINCH"'));
  assert.equal(status.success, false);
  await assertGone(pids, 2000);
});

Deno.test("forkUsermodeBlob() with detached: true outlives its owner, in a session of its own as Deno.Command detaches", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/detached.ts`;
    const sleeper = "new TextEncoder().encode('#!/bin/sh\\nexec sleep 30\\n')";
    await Deno.writeTextFile(
      script,
      OWNER.replace(
        'blobFor("reqrep"), { stderr: "null" }',
        `${sleeper}, { stdin: "null", stdout: "null", detached: true }`,
      )
        .replace("Array.from({ length: 5 }", "Array.from({ length: 1 }"),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-raw-imports", script, "end"],
      stderr: "inherit",
    }).output();
    assert.ok(out.success);
    const [pid] = JSON.parse(new TextDecoder().decode(out.stdout)) as number[];
    try {
      assert.ok(running(pid!), "the detached helper still runs after its owner exited");
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const [pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ").slice(2, 4).map(Number);
      assert.equal(pgrp, pid, "it leads its own process group");
      assert.equal(session, pid, "and its own session (setsid), as a detached Deno.Command child");
    } finally {
      Deno.kill(pid!, "SIGKILL");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const signal of ["SIGHUP", "SIGINT"] as const) {
  Deno.test(`an owner started with ${signal} ignored (nohup, a & job) keeps ignoring it, and its own listener still hears it`, async () => {
    const program = `import { forkUsermodeBlob } from "${new URL("../lib/mod.ts", import.meta.url).href}";
      import { blobFor } from "${new URL("../blobs/mod.ts", import.meta.url).href}";
      const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
      const helper = forkUsermodeBlob(blobFor("reqrep"), { stderr: "null" });
      Deno.kill(Deno.pid, "${signal}");
      await sleep(200);
      await helper.stdin.close();
      const status = { ...await helper.status };
      await sleep(1500); // umh's own listeners are gone by now
      let heard = 0;
      Deno.addSignalListener("${signal}", () => heard++);
      Deno.kill(Deno.pid, "${signal}");
      await sleep(200);
      console.log(JSON.stringify({ alive: true, status, heard }));`;
    const trap = signal.replace("SIG", "");
    const out = await new Deno.Command("/bin/sh", {
      args: ["-c", `trap '' ${trap}; exec "$0" eval --unstable-raw-imports "$1"`, Deno.execPath(), program],
      stderr: "inherit",
    }).output();
    assert.equal(out.signal, null, `the owner died of ${out.signal}`);
    assert.equal(out.code, 0);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
      alive: true,
      status: { success: true, code: 0, signal: null },
      heard: 1, // and a listener of the program's own still hears it
    });
  });
}

Deno.test("SIGTERM with helpers in a Worker leaves the program's own graceful shutdown alone; the helper goes with it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/worker.ts`,
      `import { forkUsermodeBlob } from "${new URL("../lib/mod.ts", import.meta.url).href}";
       import { blobFor } from "${new URL("../blobs/mod.ts", import.meta.url).href}";
       const helper = forkUsermodeBlob(blobFor("reqrep"), { stderr: "null" });
       postMessage(helper.pid);`,
    );
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      `Deno.addSignalListener("SIGTERM", () => setTimeout(() => { console.log("graceful"); Deno.exit(0); }, 300));
       const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
       worker.onmessage = (event) => console.log(event.data);`,
    );
    const { child, reader, out: first, pid } = await startWorkerProgram(`${dir}/main.ts`, [], "inherit");
    let out = first;
    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const status = await child.status;
    assert.deepEqual([status.code, status.signal], [0, null], "the main thread's handler ran to its own exit");
    assert.match(out, /graceful/);
    assert.deepEqual(await waitGone([pid], 2000), [], "the Worker's helper was stopped");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const how of ["exit", "throw", "terminate"] as const) {
  kernelTest(`a Worker's helper goes with its Worker or the program (${how})`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(
        `${dir}/worker.ts`,
        `import { BlobCommand } from "${new URL("../lib/mod.ts", import.meta.url).href}";
         const sleeper = new TextEncoder().encode("#!/bin/sh\\nexec sleep 1000\\n");
         const helper = new BlobCommand(sleeper, { stdin: "null" }).spawn();
         postMessage(helper.pid);`,
      );
      await Deno.writeTextFile(
        `${dir}/main.ts`,
        `const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
         worker.onmessage = (event) => {
           console.log(event.data);
           if (Deno.args[0] === "exit") Deno.exit(0);
           if (Deno.args[0] === "throw") throw new Error("the program failed");
           worker.terminate(); // and the program goes on a while
           setTimeout(() => {}, 1500);
         };`,
      );
      const { child, reader, pid } = await startWorkerProgram(`${dir}/main.ts`, [how], "null");
      assert.ok(pid > 0);
      await assertGone([pid], 1000, `the Worker's helper outlived ${how}`); // "terminate": while the program runs
      await reader.cancel();
      await child.status;
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("detached with processGroup joins that group and stays in the owner's session", async () => {
  const { BlobCommand } = await import("../lib/mod.ts");
  const helper = new BlobCommand(REQREP, { stdin: "piped", stdout: "null", detached: true, processGroup: 0 }).spawn();
  try {
    const stat = Deno.readTextFileSync(`/proc/${helper.pid}/stat`);
    const [pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ").slice(2, 4).map(Number);
    const own = Deno.readTextFileSync("/proc/self/stat");
    const ownSession = Number(own.slice(own.lastIndexOf(")") + 2).split(" ")[3]);
    assert.deepEqual([pgrp, session], [helper.pid, ownSession]);
  } finally {
    await helper.stdin.close();
    await helper.status;
  }
});
