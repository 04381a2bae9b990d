import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import { DriverDownError, HelperDiedError, RequestTimeoutError, UsermodeDriver } from "../lib/mod.ts";
import type { DriverEventDetail } from "../lib/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (s: string): Uint8Array => encoder.encode(s);

function driver(options: ConstructorParameters<typeof UsermodeDriver>[1] = {}): UsermodeDriver {
  return new UsermodeDriver(blobFor("reqrep"), { name: "reqrep", backoffInitialMs: 5, ...options });
}

function events(d: UsermodeDriver): { type: string; detail: DriverEventDetail }[] {
  const seen: { type: string; detail: DriverEventDetail }[] = [];
  for (const type of ["start", "exit", "restart"]) {
    d.addEventListener(type, (e) => seen.push({ type, detail: (e as CustomEvent<DriverEventDetail>).detail }));
  }
  return seen;
}

function exists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

Deno.test("UsermodeDriver.request() answers through the framed protocol", async () => {
  await using d = driver();
  assert.equal(decoder.decode(await d.request(text("hello"))), "hello");
  assert.equal(decoder.decode(await d.request(text("!pid"))), String(d.pid));
});

Deno.test("UsermodeDriver.request() serves concurrent callers in order, each its own reply", async () => {
  await using d = driver();
  const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => d.request(text(`message ${i}`))));
  assert.deepEqual(replies.map((r) => decoder.decode(r)), Array.from({ length: 50 }, (_, i) => `message ${i}`));
});

Deno.test("UsermodeDriver rejects with SIGKILL when an admin kills the helper mid-request, then answers from a new pid", async () => {
  await using d = driver();
  const seen = events(d);
  const pid = Number(decoder.decode(await d.request(text("!pid"))));
  const inFlight = d.request(text("!sleep 2000"));
  await new Promise((resolve) => setTimeout(resolve, 100));
  Deno.kill(pid, "SIGKILL"); // the admin, from outside
  const error = await inFlight.then(() => null, (e) => e);
  assert.ok(error instanceof HelperDiedError, String(error));
  assert.equal(error.pid, pid);
  assert.deepEqual({ ...error.status }, { success: false, code: 137, signal: "SIGKILL" });
  assert.match(error.message, /SIGKILL/);
  const newPid = Number(decoder.decode(await d.request(text("!pid"))));
  assert.notEqual(newPid, pid);
  assert.equal(d.restarts, 1);
  const restart = seen.find((e) => e.type === "restart")!;
  assert.equal(restart.detail.previousPid, pid);
  assert.equal(restart.detail.pid, newPid);
  const exit = seen.find((e) => e.type === "exit")!;
  assert.equal(exit.detail.cause, "died");
  assert.equal(exit.detail.status?.signal, "SIGKILL");
});

Deno.test("UsermodeDriver reports a segfault mid-request as SIGSEGV and recovers", async () => {
  await using d = driver();
  const error = await d.request(text("!crash")).then(() => null, (e) => e);
  assert.ok(error instanceof HelperDiedError);
  assert.deepEqual({ ...error.status }, { success: false, code: 139, signal: "SIGSEGV" });
  assert.equal(decoder.decode(await d.request(text("back"))), "back");
});

Deno.test("UsermodeDriver reports exit code 3 and recovers", async () => {
  await using d = driver();
  const error = await d.request(text("!exit 3")).then(() => null, (e) => e);
  assert.ok(error instanceof HelperDiedError);
  assert.deepEqual({ ...error.status }, { success: false, code: 3, signal: null });
  assert.match(error.message, /exited with code 3/);
  assert.equal(decoder.decode(await d.request(text("back"))), "back");
});

Deno.test("UsermodeDriver kills a helper that hangs past the request timeout and recovers", async () => {
  await using d = driver({ requestTimeoutMs: 200 });
  const seen = events(d);
  const pid = Number(decoder.decode(await d.request(text("!pid"))));
  const error = await d.request(text("!hang")).then(() => null, (e) => e);
  assert.ok(error instanceof RequestTimeoutError, String(error));
  assert.equal(error.pid, pid);
  assert.equal(error.timeoutMs, 200);
  assert.equal(exists(pid), false, "the hung helper was reaped before the rejection");
  assert.equal(seen.find((e) => e.type === "exit")?.detail.cause, "timeout");
  assert.notEqual(Number(decoder.decode(await d.request(text("!pid")))), pid);
});

Deno.test("UsermodeDriver stays down with DriverDownError once the restart budget is spent", async () => {
  await using d = driver({ maxRestarts: 2 });
  for (const code of [1, 2, 3]) {
    const error = await d.request(text(`!exit ${code}`)).then(() => null, (e) => e);
    assert.ok(error instanceof HelperDiedError, String(error));
  }
  const down = await d.request(text("hello")).then(() => null, (e) => e);
  assert.ok(down instanceof DriverDownError, String(down));
  assert.match(down.message, /restart budget exhausted \(2 restarts/);
  assert.match(down.message, /exited with code 3/);
  assert.equal(d.pid, null);
  const again = await d.request(text("hello")).then(() => null, (e) => e);
  assert.ok(again instanceof DriverDownError, "it stays down");
  await d.start(); // an explicit start revives it
  assert.equal(decoder.decode(await d.request(text("revived"))), "revived");
});

Deno.test("UsermodeDriver backs off exponentially between consecutive restarts", async () => {
  await using d = driver({ backoffInitialMs: 20, backoffMaxMs: 50, maxRestarts: 10 });
  const seen = events(d);
  for (let i = 0; i < 4; i++) await d.request(text("!exit 1")).catch(() => {});
  const delays = seen.filter((e) => e.type === "restart").map((e) => e.detail.delayMs);
  assert.deepEqual(delays, [20, 40, 50]);
});

Deno.test("UsermodeDriver with restart: 'immediate' restarts without waiting for a request", async () => {
  await using d = driver({ restart: "immediate" });
  const pid = await d.start();
  const restarted = new Promise<DriverEventDetail>((resolve) =>
    d.addEventListener("restart", (e) => resolve((e as CustomEvent<DriverEventDetail>).detail), { once: true })
  );
  Deno.kill(pid, "SIGKILL");
  // An idle driver does not keep the program alive; this test must.
  const keepAlive = setInterval(() => {}, 1000);
  const detail = await restarted;
  clearInterval(keepAlive);
  assert.equal(detail.previousPid, pid);
  assert.equal(d.pid, detail.pid);
});

Deno.test("UsermodeDriver.kill() signals the running helper, which is then restarted", async () => {
  await using d = driver();
  const pid = await d.start();
  d.kill("SIGKILL");
  const next = Number(decoder.decode(await d.request(text("!pid"))));
  assert.notEqual(next, pid);
  assert.equal(d.restarts, 1);
  await d.stop();
  assert.throws(() => d.kill(), TypeError);
});

Deno.test("UsermodeDriver.stop() closes stdin so the helper exits cleanly, then refuses requests", async () => {
  const d = driver();
  const seen = events(d);
  const pid = await d.start();
  await d.stop();
  assert.equal(exists(pid), false);
  const exit = seen.find((e) => e.type === "exit")!;
  assert.equal(exit.detail.cause, "stop");
  assert.deepEqual({ ...exit.detail.status }, { success: true, code: 0, signal: null });
  const error = await d.request(text("x")).then(() => null, (e) => e);
  assert.ok(error instanceof DriverDownError);
  await d[Symbol.asyncDispose]();
});

Deno.test("UsermodeDriver.pid is null once the helper has exited, before any restart", async () => {
  await using d = driver();
  const pid = await d.start();
  assert.equal(d.pid, pid);
  const error = await d.request(text("!exit 3")).then(() => null, (e) => e);
  assert.ok(error instanceof HelperDiedError, String(error));
  assert.equal(d.pid, null, "no helper runs until the next request");
  assert.ok(!exists(pid));
});

Deno.test("stop() during a restart's backoff ends the wait: nothing keeps the program alive afterwards", async () => {
  // A separate program: only its exit time can tell whether a timer was left behind.
  const program = `import { UsermodeDriver } from "${new URL("../lib/mod.ts", import.meta.url).href}";
    import { blobFor } from "${new URL("../blobs/mod.ts", import.meta.url).href}";
    const d = new UsermodeDriver(blobFor("reqrep"), { restart: "immediate", backoffInitialMs: 5000, stderr: "null" });
    await d.start();
    await d.request(new TextEncoder().encode("!exit 3")).catch(() => {}); // dies: a restart waits 5 s
    await new Promise((resolve) => setTimeout(resolve, 100));
    await d[Symbol.asyncDispose]();`;
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-raw-imports", program],
    stderr: "inherit",
  }).output();
  assert.ok(out.success);
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 4000, `the program took ${elapsed.toFixed(0)} ms to exit: the 5 s backoff was waited out`);
});
