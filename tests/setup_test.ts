// Child-side setup (issue 5): every option checked from outside the helper
// through /proc, the owner's death, refused privilege drops, and signals
// arriving while helpers are spawned. The BlobCommand tests skip (with a
// printed reason) until lib/spawn.ts passes the options to trampolineSpawn.

import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import { O_RDONLY } from "../ffi/constants.ts";
import { cStringArray } from "../ffi/pointer.ts";
import { close, libc, waitid, type WaitResult } from "../ffi/libc.ts";
import { resourceLimits, RLIM_INFINITY, RLIMIT, trampolineSpawn } from "../ffi/trampoline.ts";
import { BlobCommand, type HelperOptions, loadBlob, SpawnError, type UsermodeHelper } from "../lib/mod.ts";
import { bytes, Conversation, eventually, hasCommand, processState, ROOT, text } from "./test_util.ts";

/** The setup options as issue 5 adds them to HelperOptions. */
type SetupOptions = HelperOptions & {
  parentDeathSignal?: Deno.Signal;
  uid?: number;
  gid?: number;
  groups?: number[];
  noNewPrivileges?: boolean;
  limits?: Record<string, number | { soft: number; hard: number }>;
  setsid?: boolean;
  processGroup?: number;
};

const REQREP = blobFor("reqrep");

function command(blob: Uint8Array, options: SetupOptions): BlobCommand {
  return new BlobCommand(blob, options as HelperOptions);
}

/** Spawns reqrep with `options` and waits for its first answer: it has exec'd and closed its CLOEXEC fds. */
async function running(options: SetupOptions): Promise<UsermodeHelper> {
  const helper = command(REQREP, { ...options, stdin: "piped", stdout: "piped" }).spawn();
  assert.equal(await new Conversation(helper).request("!pid"), String(helper.pid));
  return helper;
}

/** The value of `name:` in /proc/<pid>/status, whitespace-normalised. */
function statusField(pid: number | "self", name: string): string {
  const line = Deno.readTextFileSync(`/proc/${pid}/status`).split("\n").find((l) => l.startsWith(`${name}:`));
  return (line ?? "").slice(name.length + 1).trim().split(/\s+/).join(" ");
}

/** `{ ppid, pgrp, session }` from /proc/<pid>/stat. */
function statIds(pid: number | "self"): { ppid: number; pgrp: number; session: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  return { ppid: fields[1]!, pgrp: fields[2]!, session: fields[3]! };
}

/** "soft hard" of one row of /proc/<pid>/limits, e.g. `limitOf(pid, "Max open files")`. */
function limitOf(pid: number, row: string): string {
  const line = Deno.readTextFileSync(`/proc/${pid}/limits`).split("\n").find((l) => l.startsWith(row))!;
  return line.slice(row.length).trim().split(/\s+/).slice(0, 2).join(" ");
}

async function wired(): Promise<boolean> {
  await using helper = await running({ limits: { nofile: 77 } });
  return limitOf(helper.pid, "Max open files") === "77 77";
}

const WIRED = await wired();
const IS_ROOT = Deno.uid() === 0;
const HAS_SETPRIV = hasCommand("setpriv");
if (!WIRED) {
  console.log("setup_test: BlobCommand ignores the setup options (lib/spawn.ts not wired yet): skipping those");
}
if (!IS_ROOT) console.log("setup_test: not root: skipping the uid/gid/groups and capability tests");
if (!HAS_SETPRIV) console.log("setup_test: no setpriv (util-linux): skipping the owner-without-capabilities tests");

// An owner program, run as a separate Deno process, for what the test process cannot do to itself.
const OWNER = String.raw`
import { BlobCommand, encodeFrame, FrameReader } from "__LIB__";
import { blobFor } from "__BLOBS__";
import { libc } from "__SYMBOLS__";
const { mode, options } = JSON.parse(Deno.args[0]);
const reqrep = blobFor("reqrep");
const frame = (s) => encodeFrame(new TextEncoder().encode(s));
const prctl = (option, arg) => Number(libc().syscall(Deno.build.arch === "aarch64" ? 167n : 157n, option, arg, 0n, 0n, 0n, 0n));
const status = (pid) => Object.fromEntries(["Uid", "Gid", "Groups"].map((k) => [k, Deno.readTextFileSync("/proc/" + pid + "/status").split("\n").find((l) => l.startsWith(k + ":")).slice(k.length + 1).trim().split(/\s+/).join(" ")]));
function children() {
  const out = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync("/proc/" + entry.name + "/stat");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === Deno.pid) out.push(Number(entry.name));
    } catch { /* exited meanwhile */ }
  }
  return out;
}
async function roundTrip(helper) {
  const writer = helper.stdin.getWriter();
  await writer.write(frame("!pid"));
  const reply = new TextDecoder().decode(await new FrameReader(helper.stdout).next());
  await writer.close();
  return reply === String(helper.pid);
}
const piped = { ...options, stdin: "piped", stdout: "piped" };
if (mode === "report") {
  const helper = new BlobCommand(reqrep, piped).spawn();
  const writer = helper.stdin.getWriter();
  await writer.write(frame("!pid"));
  await new FrameReader(helper.stdout).next();
  console.log(JSON.stringify({ owner: status("self"), helper: status(helper.pid) }));
  await writer.close();
  await helper.status;
} else if (mode === "hang") {
  const helper = new BlobCommand(reqrep, piped).spawn();
  await helper.stdin.getWriter().write(frame("!hang"));
  console.log(helper.pid);
  setInterval(() => {}, 1000);
  await new Promise(() => {}); // until killed: never reach Deno.exit, which would stop the helper
} else if (mode === "fail") {
  let error = null;
  try {
    new BlobCommand(reqrep, piped).spawn();
  } catch (e) {
    error = { name: e.name, syscall: e.syscall, code: e.code };
  }
  const dumpable = prctl(3n, 0n); // PR_GET_DUMPABLE
  console.log(JSON.stringify({ error, children: children(), dumpable }));
} else if (mode === "stress") {
  // The main thread's timer slack to 1 ns: the first time V8 needs the TSC's
  // frequency (and this VM has no tsc_freq_khz), it measures it on the calling
  // thread with nanosleep(1 ms, 2 ms, ...) retried on EINTR with the time left;
  // under a signal every few µs each retry adds the default 50 µs slack to that
  // time, so the sleep never ended (seen: 12 and 16 s left, growing) and the
  // owner stalled with a helper waiting on stdin. No umh code sleeps there.
  prctl(29n, 1n); // PR_SET_TIMERSLACK
  // The helpers join the group of a first helper, which the owner is not in.
  let usr1 = 0, urg = 0;
  Deno.addSignalListener("SIGUSR1", () => usr1++);
  Deno.addSignalListener("SIGURG", () => urg++);
  const leader = new BlobCommand(reqrep, { ...piped, processGroup: 0 }).spawn();
  console.log("ready " + Deno.pid + " " + leader.pid);
  while (usr1 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  const bad = [];
  for (let i = 0; i < options.count; i++) {
    const helper = new BlobCommand(reqrep, { ...piped, processGroup: leader.pid }).spawn();
    const answered = await roundTrip(helper);
    const s = await helper.status;
    if (!answered || !s.success) bad.push({ answered, ...s });
  }
  leader.kill("SIGKILL");
  await leader.status;
  console.log(JSON.stringify({ bad, usr1, urg }));
}
Deno.exit(0);
`;

let ownerPath: string | undefined;

/** Starts the owner program (behind `prefix`, e.g. setpriv) with stdout piped. */
function owner(mode: string, options: object, prefix: string[] = []): Deno.ChildProcess {
  if (ownerPath === undefined) {
    const path = ownerPath = Deno.makeTempFileSync({ prefix: "umh_owner_", suffix: ".ts" });
    globalThis.addEventListener("unload", () => Deno.removeSync(path));
    const url = (path: string): string => new URL(path, `file://${ROOT}/`).href;
    Deno.writeTextFileSync(
      ownerPath,
      OWNER.replace("__LIB__", url("lib/mod.ts")).replace("__BLOBS__", url("blobs/mod.ts"))
        .replace("__SYMBOLS__", url("ffi/symbols.ts")),
    );
  }
  const deno = [Deno.execPath(), "run", "-A", "--no-config", "--unstable-raw-imports", ownerPath];
  const argv = [...prefix, ...deno, JSON.stringify({ mode, options })];
  return new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "piped", stderr: "inherit" }).spawn();
}

/** The owner's stdout, line by line. */
/** The pids whose parent is `parent`. */
function ourChildrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent) pids.push(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

async function* lines(child: Deno.ChildProcess): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let end: number;
    while ((end = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
    }
  }
}

async function ownerOutput(mode: string, options: object, prefix: string[] = []): Promise<unknown> {
  const out = await owner(mode, options, prefix).output();
  assert.equal(out.code, 0, `owner ${mode} exited with ${out.code}`);
  return JSON.parse(text(out.stdout));
}

const wiredTest = (name: string, fn: () => void | Promise<void>, needs = true): void => {
  Deno.test({ name, ignore: !WIRED || !needs, fn });
};

wiredTest("BlobCommand uid, gid and groups set every id of the helper", async () => {
  await using helper = await running({ uid: 65534, gid: 65534, groups: [65533, 100] });
  assert.equal(statusField(helper.pid, "Uid"), "65534 65534 65534 65534");
  assert.equal(statusField(helper.pid, "Gid"), "65534 65534 65534 65534");
  assert.equal(statusField(helper.pid, "Groups"), "100 65533");
}, IS_ROOT);

wiredTest("BlobCommand uid alone clears the owner's supplementary groups and keeps its gid", async () => {
  const report = await ownerOutput("report", { uid: 65534 }, ["setpriv", "--groups", "4,24", "--"]);
  assert.deepEqual(report, {
    owner: { Uid: "0 0 0 0", Gid: "0 0 0 0", Groups: "4 24" },
    helper: { Uid: "65534 65534 65534 65534", Gid: "0 0 0 0", Groups: "" },
  });
}, IS_ROOT && HAS_SETPRIV);

wiredTest("BlobCommand uid runs a #! script as that user", async () => {
  const output = await command(bytes("#!/bin/sh\nid -u; id -G\n"), { uid: 65534, gid: 65534 }).output();
  assert.equal(text(output.stdout), "65534\n65534\n");
  assert.equal(output.code, 0);
}, IS_ROOT);

wiredTest("BlobCommand noNewPrivileges sets NoNewPrivs in the helper only", async () => {
  const own = statusField("self", "NoNewPrivs");
  await using helper = await running({ noNewPrivileges: true });
  assert.equal(statusField(helper.pid, "NoNewPrivs"), "1");
  assert.equal(statusField("self", "NoNewPrivs"), own);
});

wiredTest("BlobCommand limits set soft and hard resource limits", async () => {
  const limits = { nofile: 64, core: 0, as: { soft: 2 ** 30, hard: 2 ** 31 }, cpu: 10, nproc: 100 };
  await using helper = await running({ limits });
  assert.equal(limitOf(helper.pid, "Max open files"), "64 64");
  assert.equal(limitOf(helper.pid, "Max core file size"), "0 0");
  assert.equal(limitOf(helper.pid, "Max address space"), `${2 ** 30} ${2 ** 31}`);
  assert.equal(limitOf(helper.pid, "Max cpu time"), "10 10");
  assert.equal(limitOf(helper.pid, "Max processes"), "100 100");
  assert.throws(() => command(REQREP, { limits: { files: 1 } }).spawn(), TypeError);
  assert.throws(() => command(REQREP, { limits: { nofile: { soft: 9, hard: 8 } } }).spawn(), TypeError);
});

wiredTest("BlobCommand setsid makes the helper a session and group leader", async () => {
  await using helper = await running({ setsid: true });
  assert.deepEqual(statIds(helper.pid), { ppid: Deno.pid, pgrp: helper.pid, session: helper.pid });
});

wiredTest("BlobCommand processGroup 0 creates a group that processGroup pgid joins", async () => {
  await using leader = await running({ processGroup: 0 });
  await using member = await running({ processGroup: leader.pid });
  const session = statIds("self").session;
  assert.deepEqual(statIds(leader.pid), { ppid: Deno.pid, pgrp: leader.pid, session });
  assert.deepEqual(statIds(member.pid), { ppid: Deno.pid, pgrp: leader.pid, session });
  Deno.kill(-leader.pid, "SIGTERM"); // one signal for the whole group
  assert.equal((await leader.status).signal, "SIGTERM");
  assert.equal((await member.status).signal, "SIGTERM");
});

wiredTest("BlobCommand with setup options leaves the helper only fds 0, 1 and 2", async () => {
  const inherited = libc().open(bytes("/dev/null\0"), O_RDONLY, 0); // no O_CLOEXEC: only close_range stops it
  assert.ok(inherited > 2);
  try {
    await using helper = await running({ noNewPrivileges: true });
    const fds = [...Deno.readDirSync(`/proc/${helper.pid}/fd`)].map((e) => Number(e.name)).sort();
    assert.deepEqual(fds, [0, 1, 2]);
  } finally {
    libc().close(inherited);
  }
});

/** Children of this process that are zombies (a failed spawn must reap its child). */
function zombieChildren(): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z" && Number(fields[1]) === Deno.pid) out.push(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

wiredTest("BlobCommand setup failure names the failed call and leaves no zombie", () => {
  const before = zombieChildren();
  let error: unknown;
  try {
    command(REQREP, { noNewPrivileges: true, cwd: "/nonexistent" }).spawn();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof SpawnError);
  assert.deepEqual([error.syscall, error.code], ["chdir", "ENOENT"]);
  assert.match(error.message, /^Cannot spawn "umh-blob": chdir\("\/nonexistent"\) failed with ENOENT/);
  assert.equal(error.name, "NotFound"); // as Deno names its ENOENT errors
  assert.deepEqual(zombieChildren(), before);
});

wiredTest(
  "a helper dies with its SIGKILLed owner (SIGKILL by default, or its parentDeathSignal), unless null",
  async () => {
    const cases: [Deno.Signal | null | undefined, number | null][] = [[undefined, 9], ["SIGKILL", 9], ["SIGTERM", 15], [
      null,
      null,
    ]];
    for (const [parentDeathSignal, signo] of cases) {
      const child = owner("hang", { parentDeathSignal });
      const output = lines(child);
      const pid = Number((await output.next()).value);
      assert.ok(pid > 0);
      child.kill("SIGKILL");
      await child.status;
      await output.return(undefined);
      const gone = (): boolean => ["Z", null].includes(processState(pid));
      if (signo !== null) {
        await eventually(gone, 1000, `helper ${pid} (parentDeathSignal ${parentDeathSignal}) to die with its owner`);
        // Where nobody reaps orphans (a minimal init), the zombie shows what killed it.
        if (processState(pid) === "Z") {
          assert.equal(Deno.readTextFileSync(`/proc/${pid}/stat`).trim().split(" ").at(-1), String(signo));
        }
      } else {
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(gone(), false, "with parentDeathSignal: null the helper outlives its owner");
        Deno.kill(pid, "SIGKILL");
      }
    }
  },
);

wiredTest(
  "a non-root owner may start a helper as its own uid and gid, keeping its groups, as Deno.Command does",
  async () => {
    const dir = Deno.makeTempDirSync({ prefix: "umh_nonroot_" });
    try {
      Deno.chmodSync(dir, 0o777);
      const script = `${dir}/owner.ts`;
      Deno.writeTextFileSync(
        script,
        `import { BlobCommand } from ${JSON.stringify(new URL("lib/mod.ts", `file://${ROOT}/`).href)};
       const options = { uid: 65534, gid: 65534, stdout: "piped" };
       const ours = await new BlobCommand(Deno.readFileSync("/usr/bin/id"), options).output();
       const theirs = await new Deno.Command("/usr/bin/id", options).output();
       console.log(JSON.stringify([ours, theirs].map((o) => [o.code, new TextDecoder().decode(o.stdout).trim()])));`,
      );
      Deno.chmodSync(script, 0o644);
      const out = await new Deno.Command("setpriv", {
        args: [
          "--reuid",
          "65534",
          "--regid",
          "65534",
          "--groups",
          "65533",
          "--",
          Deno.execPath(),
          "run",
          "-A",
          "--no-config",
          script,
        ],
        env: { DENO_DIR: dir, HOME: dir },
        stderr: "inherit",
      }).output();
      assert.equal(out.code, 0);
      const [ours, theirs] = JSON.parse(text(out.stdout));
      assert.deepEqual(ours, theirs);
      assert.match(ours[1], /^uid=65534\b.*groups=.*65533/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
  IS_ROOT && HAS_SETPRIV && hasCommand("id"),
);

wiredTest("BlobCommand uid drop that is not permitted throws SpawnError and leaves no process", async () => {
  // A root owner without CAP_SETGID (fails at once) or without CAP_SETUID (fails after groups and gid).
  for (const [drop, syscall] of [["-setgid,-setuid", "setgroups"], ["-setuid", "setresuid"]]) {
    const report = await ownerOutput("fail", { uid: 65534, gid: 65534 }, ["setpriv", "--bounding-set", drop!, "--"]);
    assert.deepEqual(report, {
      error: { name: "PermissionDenied", syscall, code: "EPERM" },
      children: [],
      dumpable: 1,
    });
  }
}, IS_ROOT && HAS_SETPRIV);

wiredTest("BlobCommand signals arriving during spawns never run the owner's handlers in a helper", async () => {
  // SIGUSR1 streams to the owner while it spawns; SIGURG streams to the helpers' process group only,
  // so it reaches helpers still inside the trampoline. Had they kept the owner's handlers, the owner's
  // SIGURG listener would fire although the owner never got one.
  const child = owner("stress", { count: 200 });
  const output = lines(child);
  const [ownerPid, leaderPid] = (await output.next()).value!.split(" ").slice(1);
  const loop = 'while kill -USR1 "$1" 2>/dev/null; do kill -URG "-$2" 2>/dev/null; done';
  const killer = new Deno.Command("sh", { args: ["-c", loop, "sh", ownerPid!, leaderPid!] }).spawn();
  // 200 spawns take about a second; past a minute the owner is stuck (seen
  // once, not reproduced since): say where, instead of hanging the suite.
  let stuck = "";
  const watchdog = setTimeout(() => {
    const read = (path: string, missing = "-"): string => {
      try {
        return Deno.readTextFileSync(path).trim();
      } catch {
        return missing;
      }
    };
    const where = (pid: string): string => `${read(`/proc/${pid}/wchan`, "gone")}/${processState(Number(pid))}`;
    const threads = [...Deno.readDirSync(`/proc/${ownerPid}/task`)].map((t) =>
      `${t.name}:${where(`${ownerPid}/task/${t.name}`)}`
    );
    // The main thread's system call (or "running") and kernel stack, and where it is in user space.
    const main = `/proc/${ownerPid}/task/${ownerPid}`;
    const gdb = hasCommand("gdb")
      ? text(
        new Deno.Command("gdb", { args: ["-p", ownerPid!, "-batch", "-ex", "bt 12"], stdout: "piped", stderr: "null" })
          .outputSync().stdout,
      ).split("\n").filter((line) => line.startsWith("#")).join(" | ")
      : "no gdb";
    stuck = `owner stuck after 60 s; threads ${threads.join(" ")}; children ${
      ourChildrenOf(Number(ownerPid)).map((pid) => `${pid}:${where(String(pid))}`).join(" ")
    }; main thread syscall ${read(`${main}/syscall`)}; stack ${read(`${main}/stack`).split("\n").join(" < ")}; ${gdb}`;
    child.kill("SIGKILL");
  }, 60_000);
  const rest: string[] = [];
  for await (const line of output) rest.push(line);
  const { code } = await child.status;
  clearTimeout(watchdog);
  killer.kill("SIGKILL");
  await killer.status;
  assert.equal(stuck, "");
  assert.equal(code, 0);
  const result = JSON.parse(rest.at(-1)!);
  assert.deepEqual(result.bad, []);
  assert.ok(result.usr1 > 0);
  assert.equal(result.urg, 0);
});

wiredTest(
  "BlobCommand with setup options starts the helper with SIGPIPE reset, no handler and no blocked signal",
  async () => {
    // Deno ignores SIGPIPE, and an ignored signal stays ignored across exec
    // unless reset; what the owner was started with ignored stays so, as with
    // Deno.Command (tests/signal_reset_test.ts).
    await using helper = await running({ noNewPrivileges: true });
    const SIGPIPE_BIT = 1n << 12n;
    const ownerIgnored = BigInt(`0x${statusField("self", "SigIgn")}`);
    assert.equal(BigInt(`0x${statusField(helper.pid, "SigIgn")}`), ownerIgnored & ~SIGPIPE_BIT);
    assert.equal(statusField(helper.pid, "SigCgt"), "0000000000000000");
    assert.equal(statusField(helper.pid, "SigBlk"), "0000000000000000");
  },
);

// Straight through ffi: these do not need lib/spawn.ts wired.

async function reap(pid: number): Promise<WaitResult> {
  let result: WaitResult | null;
  while ((result = waitid(1, /* P_PID */ pid, 0, "reap")) === null) await new Promise((r) => setTimeout(r, 2));
  return result;
}

function spawnTrue(setup: object): number {
  using blob = loadBlob(bytes("#!/bin/sh\nexit 0\n"), { name: "true" });
  const { pid, pidfd } = trampolineSpawn({
    blobFd: blob.unsafeFd,
    isScript: true,
    argv: cStringArray(["true"], String),
    envp: null,
    stdio: ["null", "null", "inherit"],
    cwd: null,
    extraFlags: 0,
    pgroup: 0,
    ...setup,
  }, 'Cannot spawn "true"');
  if (pidfd >= 0) close(pidfd); // these tests reap by pid
  return pid;
}

Deno.test("trampolineSpawn() restores the caller's signal mask", async () => {
  const before = Deno.readTextFileSync("/proc/thread-self/status").match(/SigBlk:.*/)![0];
  assert.deepEqual(await reap(spawnTrue({ noNewPrivileges: true })), { how: 1, status: 0 });
  assert.equal(Deno.readTextFileSync("/proc/thread-self/status").match(/SigBlk:.*/)![0], before);
});

Deno.test({
  name: "trampolineSpawn() leaves the owner dumpable after a uid drop in the shared address space",
  ignore: !IS_ROOT,
  fn: async () => {
    const prctl = BigInt(Deno.build.arch === "aarch64" ? 167 : 157);
    const dumpable = (): bigint => libc().syscall(prctl, 3n, /* PR_GET_DUMPABLE */ 0n, 0n, 0n, 0n, 0n);
    assert.equal(dumpable(), 1n);
    assert.deepEqual(await reap(spawnTrue({ uid: 65534, gid: 65534 })), { how: 1, status: 0 });
    assert.equal(dumpable(), 1n);
  },
});

Deno.test("trampolineSpawn() rejects setsid with a processGroup and ids out of range", () => {
  assert.throws(() => spawnTrue({ setsid: true, processGroup: 0 }), TypeError);
  assert.throws(() => spawnTrue({ uid: -1 }), TypeError);
  assert.throws(() => spawnTrue({ uid: 0xffff_ffff }), TypeError);
  assert.throws(() => spawnTrue({ parentDeathSignal: 65 }), TypeError);
});

Deno.test("resourceLimits() converts names and values and rejects the rest", () => {
  assert.deepEqual(resourceLimits({ nofile: 64, as: { soft: 1, hard: Infinity } }), [
    { resource: RLIMIT.nofile, soft: 64n, hard: 64n },
    { resource: RLIMIT.as, soft: 1n, hard: RLIM_INFINITY },
  ]);
  assert.throws(() => resourceLimits({ files: 1 }), TypeError);
  assert.throws(() => resourceLimits({ core: -1 }), TypeError);
  assert.throws(() => resourceLimits({ core: 1.5 }), TypeError);
  assert.throws(() => resourceLimits({ core: { soft: 2, hard: 1 } }), TypeError);
});

Deno.test("loadTrampoline() works without raw imports: the objects are embedded as text", async () => {
  const program = [
    `import { loadTrampoline } from "${new URL("ffi/trampoline.ts", `file://${ROOT}/`).href}";`,
    `loadTrampoline(); console.log("loaded");`,
  ].join("\n");
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", "--ext=ts", program],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(output.code, 0);
  assert.equal(text(output.stdout).trim(), "loaded");
});

Deno.test("ffi/trampoline_objects.ts holds exactly the committed trampoline objects", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "tools/embed_trampoline.ts", "--check"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, text(output.stderr));
});

Deno.test({
  name: "tools/build_trampoline.sh --check finds the committed objects up to date and import-free",
  ignore: !hasCommand("gcc") || !hasCommand("bash"),
  fn: async () => {
    const output = await new Deno.Command("bash", {
      args: ["tools/build_trampoline.sh", "--check"],
      cwd: ROOT,
      env: hasCommand("cc") ? {} : { CC: "gcc" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const report = `${text(output.stdout)}${text(output.stderr)}`;
    assert.equal(output.code, 0, report);
    assert.match(text(output.stdout), /trampoline up to date/);
  },
});
