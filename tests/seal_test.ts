// Issue 4, "seals that hold": once loadBlob() returns, nobody (this process, or
// another process with the same uid going through /proc/<pid>/fd/N) can change
// the bytes a helper will run, and a running helper's /proc/<pid>/exe is the
// memfd, not a file on disk.

import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import {
  F_ADD_SEALS,
  F_GET_SEALS,
  F_SEAL_EXEC,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
} from "../ffi/constants.ts";
import { fcntl } from "../ffi/libc.ts";
import { encodeFrame, forkUsermodeBlob, FrameReader, loadBlob, SpawnError, SyscallError } from "../lib/mod.ts";
import { fdCount } from "./test_util.ts";

const REQUIRED = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
const python = Deno.build.os === "linux" && which("python3");
if (!python) console.log("seal_test: python3 not found; skipping the cross-process seal test");
const [major = 0, minor = 0] = Deno.osRelease().split(".").map(Number);
const sealExec = major > 6 || (major === 6 && minor >= 3);
if (!sealExec) console.log(`seal_test: kernel ${Deno.osRelease()} has no F_SEAL_EXEC (6.3+); skipping the chmod test`);

function which(tool: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

function seals(fd: number): number {
  return fcntl(fd, F_GET_SEALS, 0, "Cannot read seals");
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
  return "succeeded";
}

Deno.test("loadBlob() seals: a new descriptor from /proc/<pid>/fd/N cannot write, truncate, append or resize", async () => {
  const bytes = blobFor("reqrep");
  using blob = loadBlob(bytes, { name: "seal-write" });
  const path = `/proc/${Deno.pid}/fd/${blob.unsafeFd}`;
  {
    // Opening for write succeeds (seals act on the inode, not on open), but every change fails.
    using file = Deno.openSync(path, { read: true, write: true });
    assert.equal(errorCode(() => file.writeSync(new Uint8Array([0x90]))), "EPERM"); // F_SEAL_WRITE
    assert.equal(errorCode(() => file.truncateSync(0)), "EPERM"); // F_SEAL_SHRINK
    assert.equal(errorCode(() => file.truncateSync(bytes.length + 4096)), "EPERM"); // F_SEAL_GROW
  }
  {
    using file = Deno.openSync(path, { append: true });
    assert.equal(errorCode(() => file.writeSync(new Uint8Array([0x90]))), "EPERM");
  }
  assert.equal(errorCode(() => Deno.openSync(path, { write: true, truncate: true }).close()), "EPERM"); // O_TRUNC
  assert.deepEqual(await Deno.readFile(path), bytes);
});

Deno.test("a blob whose memfd is open for writing fails with ETXTBSY saying so, and starts again once it is closed", async () => {
  using blob = loadBlob(blobFor("cat"), { name: "cat" });
  const catOnce = async (): Promise<void> => {
    await using helper = forkUsermodeBlob(blob);
    await helper.stdin.close();
    assert.equal((await helper.status).code, 0);
  };
  await catOnce(); // the spawn path's process-wide fds (the trampoline, the poller) exist from here on
  const before = fdCount();
  // Allowed despite the seals (writes would fail), and enough to make exec refuse the file.
  const writer = Deno.openSync(`/proc/self/fd/${blob.unsafeFd}`, { write: true });
  try {
    assert.throws(() => forkUsermodeBlob(blob), (error: unknown) => {
      assert.ok(error instanceof SpawnError, `expected SpawnError, got ${error}`);
      assert.equal(error.code, "ETXTBSY");
      assert.match(error.message, /open for writing/);
      return true;
    });
    assert.equal(fdCount(), before + 1, "the failed spawn left an fd behind");
  } finally {
    writer.close();
  }
  await catOnce();
  assert.equal(fdCount(), before);
});

Deno.test("loadBlob() seals: adding a seal fails with EPERM and the seal set never shrinks", () => {
  using blob = loadBlob(blobFor("reqrep"), { name: "seal-seal" });
  const before = seals(blob.unsafeFd);
  assert.equal(before & REQUIRED, REQUIRED);
  // F_SEAL_SEAL: no seal can be added, not even a weaker one or none at all.
  // Linux has no call that removes a seal; F_GET_SEALS shows the set unchanged.
  for (const seal of [F_SEAL_FUTURE_WRITE, F_SEAL_EXEC, F_SEAL_WRITE, 0]) {
    assert.throws(() => fcntl(blob.unsafeFd, F_ADD_SEALS, seal, "add"), (error: unknown) => {
      assert.ok(error instanceof SyscallError);
      assert.equal(error.code, "EPERM");
      return true;
    });
    assert.equal(seals(blob.unsafeFd), before);
  }
});

Deno.test({
  name: "loadBlob() seals the exec bits: chmod through /proc/<pid>/fd/N cannot make the blob non-executable",
  ignore: !sealExec,
}, () => {
  using blob = loadBlob(blobFor("reqrep"), { name: "seal-exec" });
  const path = `/proc/self/fd/${blob.unsafeFd}`;
  const mode = Deno.statSync(path).mode! & 0o7777;
  assert.ok(seals(blob.unsafeFd) & F_SEAL_EXEC);
  assert.equal(errorCode(() => Deno.chmodSync(path, 0o600)), "EPERM"); // F_SEAL_EXEC
  assert.equal(Deno.statSync(path).mode! & 0o7777, mode);
});

Deno.test({
  name: "loadBlob() seals hold against another process: python3 through /proc/<pid>/fd/N gets EPERM for every change",
  ignore: !python,
  async fn(): Promise<void> {
    const bytes = blobFor("reqrep");
    using blob = loadBlob(bytes, { name: "seal-python" });
    const script = `
import errno, fcntl, json, mmap, os, sys
path, res = sys.argv[1], {}
fd = os.open(path, os.O_RDWR)
def attempt(name, f):
    try:
        f()
        res[name] = "succeeded"
    except OSError as e:
        res[name] = errno.errorcode[e.errno]
attempt("write", lambda: os.write(fd, b"\\x90"))
attempt("pwrite", lambda: os.pwrite(fd, b"\\x90", 64))
attempt("ftruncate_shrink", lambda: os.ftruncate(fd, 64))
attempt("ftruncate_grow", lambda: os.ftruncate(fd, os.fstat(fd).st_size + 4096))
attempt("fallocate", lambda: os.posix_fallocate(fd, 0, os.fstat(fd).st_size + 4096))
attempt("mmap_shared_write", lambda: mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_WRITE))
attempt("add_seal", lambda: fcntl.fcntl(fd, 1033, 0x10))
attempt("fchmod", lambda: os.fchmod(fd, 0o600))
attempt("open_trunc", lambda: os.close(os.open(path, os.O_WRONLY | os.O_TRUNC)))
res["seals"] = fcntl.fcntl(fd, 1034)
print(json.dumps(res))
`;
    const path = `/proc/${Deno.pid}/fd/${blob.unsafeFd}`;
    const out = await new Deno.Command("python3", { args: ["-c", script, path], stderr: "inherit" }).output();
    assert.equal(out.code, 0);
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(result, {
      write: "EPERM",
      pwrite: "EPERM",
      ftruncate_shrink: "EPERM",
      ftruncate_grow: "EPERM",
      fallocate: "EPERM",
      mmap_shared_write: "EPERM",
      add_seal: "EPERM",
      fchmod: "EPERM",
      open_trunc: "EPERM",
      seals: seals(blob.unsafeFd),
    });
    assert.deepEqual(await Deno.readFile(path), bytes);
  },
});

Deno.test("loadBlob() copies the bytes: changing the source array afterwards does not change what runs", async () => {
  const bytes = blobFor("reqrep").slice();
  using blob = loadBlob(bytes, { name: "seal-copy" });
  bytes.fill(0); // the caller's array is not the memfd
  await using helper = forkUsermodeBlob(blob, { stderr: "piped" });
  const writer = helper.stdin.getWriter();
  await writer.write(encodeFrame(new TextEncoder().encode("still reqrep")));
  assert.equal(new TextDecoder().decode((await new FrameReader(helper.stdout).next())!), "still reqrep");
  await writer.close();
  assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
  assert.deepEqual(await Deno.readFile(`/proc/self/fd/${blob.unsafeFd}`), blobFor("reqrep"));
});

Deno.test("forkUsermodeBlob() helper's /proc/<pid>/exe is /memfd:<name> (deleted), not a file on disk", async () => {
  using blob = loadBlob(blobFor("reqrep"), { name: "umh-exe-check" });
  await using helper = forkUsermodeBlob(blob, { stderr: "piped" });
  const writer = helper.stdin.getWriter();
  await writer.write(encodeFrame(new TextEncoder().encode("!pid")));
  // Read /proc only after the helper has answered: exec is complete by then.
  const reply = await new FrameReader(helper.stdout).next();
  assert.equal(new TextDecoder().decode(reply!), String(helper.pid));
  assert.equal(Deno.readLinkSync(`/proc/${helper.pid}/exe`), "/memfd:umh-exe-check (deleted)");
  const maps = Deno.readTextFileSync(`/proc/${helper.pid}/maps`);
  const mapped = new Set(maps.split("\n").map((line) => line.split(/\s+/).slice(5).join(" ")).filter((p) => p !== ""));
  assert.ok(mapped.has("/memfd:umh-exe-check (deleted)"), `the text is mapped from the memfd: ${[...mapped]}`);
  for (const path of mapped) {
    assert.ok(!path.startsWith("/") || path.startsWith("/memfd:"), `maps a disk file: ${path}`);
  }
  await writer.close();
  assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
});
