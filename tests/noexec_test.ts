// Issue 4, vm.memfd_noexec: with executable memfds forbidden (2), loadBlob()
// falls back to an unnamed O_TMPFILE on a tmpfs that allows exec; where that
// is impossible too, it throws one error listing what it tried.
//
// The sysctl is per pid namespace (Linux 6.3+), so each case runs a child
// Deno in a new pid namespace (`unshare --pid --fork --mount-proc`, as root)
// and the machine's own setting is never touched. The child program is piped
// to `deno run -` on stdin, so it needs no file under /tmp, which one case
// hides behind a noexec tmpfs.

import assert from "node:assert/strict";

const LIB = new URL("../lib/mod.ts", import.meta.url).href;
const REQREP = new URL(`../blobs/reqrep.${Deno.build.arch}`, import.meta.url).pathname;
const SYSCTL = "/proc/sys/vm/memfd_noexec";
const skip = whyUnsupported();
if (skip) console.log(`noexec_test: skipping the vm.memfd_noexec tests: ${skip}`);

function whyUnsupported(): string | null {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "needs root (unshare --pid, writing the sysctl)";
  try {
    Deno.statSync(SYSCTL);
  } catch {
    return `this kernel (${Deno.osRelease()}) has no ${SYSCTL} (Linux 6.3+)`;
  }
  try {
    const probe = new Deno.Command("unshare", {
      args: ["--mount", "--pid", "--fork", "--mount-proc", "true"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return probe.success ? null : "unshare --pid --mount fails here (no namespace permission)";
  } catch {
    return "unshare not found (util-linux)";
  }
}

/** Runs `program` with `deno run -A -` in a new pid (and mount) namespace after `setup` (sh). */
async function inNamespace(setup: string, program: string): Promise<Record<string, unknown>> {
  const child = new Deno.Command("unshare", {
    args: ["--mount", "--pid", "--fork", "--mount-proc", "sh", "-ec", `${setup}\nexec "$0" run -A -`, Deno.execPath()],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(program));
  await writer.close();
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `child failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The child: loads and runs reqrep, reports where the blob lives, or the error. */
const PROGRAM = `
import { encodeFrame, forkUsermodeBlob, FrameReader, loadBlob } from "${LIB}";
const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
const bytes = Deno.readFileSync("${REQREP}");
const noexec = Deno.readTextFileSync("${SYSCTL}").trim();
const fdsBefore = fds();
try {
  using blob = loadBlob(bytes, { name: "umh-noexec" });
  const fdLink = Deno.readLinkSync("/proc/self/fd/" + blob.unsafeFd);
  const fdFlags = /flags:\\s+([0-7]+)/.exec(Deno.readTextFileSync("/proc/self/fdinfo/" + blob.unsafeFd))[1];
  await using helper = forkUsermodeBlob(blob, { stderr: "piped" });
  const writer = helper.stdin.getWriter();
  await writer.write(encodeFrame(new TextEncoder().encode("!pid")));
  const reply = new TextDecoder().decode(await new FrameReader(helper.stdout).next());
  const exe = Deno.readLinkSync("/proc/" + helper.pid + "/exe");
  await writer.close();
  const status = await helper.status;
  console.log(JSON.stringify({ noexec, fdLink, fdFlags, exe, pid: helper.pid, reply, status }));
} catch (error) {
  console.log(JSON.stringify({
    noexec,
    error: error.constructor.name,
    message: error.message,
    cause: error.cause?.code ?? null,
    fdsBefore,
    fdsAfter: fds(),
  }));
}
`;

const TMPFS_FILE = /^(\/dev\/shm|\/run\/user\/\d+|\/tmp|\/run)\/#\d+ \(deleted\)$/;

Deno.test({
  name: "loadBlob() with vm.memfd_noexec=2 falls back to an unnamed tmpfs file and the helper still runs",
  ignore: skip !== null,
  async fn(): Promise<void> {
    const hostSetting = Deno.readTextFileSync(SYSCTL);
    const result = await inNamespace(`echo 2 > ${SYSCTL}`, PROGRAM);
    assert.equal(result.noexec, "2");
    assert.equal(result.error, undefined, String(result.message));
    // Not a memfd: an O_TMPFILE, which never had a name ("#<inode>") and is gone ("(deleted)").
    assert.match(String(result.exe), TMPFS_FILE);
    assert.equal(result.exe, result.fdLink);
    // umh kept only a read-only descriptor (O_RDONLY is access mode 0).
    assert.equal(Number.parseInt(String(result.fdFlags), 8) & 3, 0);
    assert.equal(result.reply, String(result.pid));
    assert.deepEqual(result.status, { success: true, code: 0, signal: null });
    assert.equal(Deno.readTextFileSync(SYSCTL), hostSetting, "the machine's own setting is untouched");
  },
});

Deno.test({
  name: "loadBlob() with vm.memfd_noexec=1 still gets an executable memfd, because it asks with MFD_EXEC",
  ignore: skip !== null,
  async fn(): Promise<void> {
    const result = await inNamespace(`echo 1 > ${SYSCTL}`, PROGRAM);
    assert.equal(result.noexec, "1");
    assert.equal(result.exe, "/memfd:umh-noexec (deleted)");
    assert.deepEqual(result.status, { success: true, code: 0, signal: null });
  },
});

Deno.test({
  name: "loadBlob() throws one error listing every attempt when neither memfd nor an exec tmpfs is allowed",
  ignore: skip !== null,
  async fn(): Promise<void> {
    // Every candidate directory becomes noexec, in this mount namespace only:
    // a bind mount on itself, remounted noexec, keeps what it holds visible
    // (the repository may live under /tmp, and the child imports from it).
    // Deno itself may live there too (CI installs it under the clone): a bind
    // mount of its binary on itself, remounted exec, keeps it runnable.
    const setup = `echo 2 > ${SYSCTL}\nfor d in /dev/shm /tmp /run; do ` +
      `mount --bind "$d" "$d" && mount -o remount,bind,noexec "$d"; done\n` +
      `mount --bind "$0" "$0" && mount -o remount,bind,exec "$0"`;
    const result = await inNamespace(setup, PROGRAM);
    assert.equal(result.noexec, "2");
    assert.equal(result.error, "Error");
    assert.equal(result.cause, "EACCES");
    const message = String(result.message);
    assert.ok(!message.includes("\n"), "one line");
    assert.match(message, /^Cannot load blob "umh-noexec": /);
    assert.ok(message.includes("memfd_create(): EACCES"), message);
    // A tmpfs is refused as noexec; a directory on a disk filesystem as "not a tmpfs".
    for (const dir of ["/dev/shm", "/tmp", "/run"]) {
      const attempt = new RegExp(`O_TMPFILE in ${dir}: (mounted noexec|not a tmpfs \\(would be disk\\))`);
      assert.match(message, attempt, `the message lists ${dir}`);
    }
    assert.equal(result.fdsAfter, result.fdsBefore, "no fd left behind");
  },
});
