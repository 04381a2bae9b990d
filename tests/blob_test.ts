// loadBlob() and UsermodeBlob: a sealed memfd, loaded once, run many times.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { blobFor } from "../blobs/mod.ts";
import { BlobCommand, forkUsermodeBlob, loadBlob, SpawnError } from "../lib/mod.ts";
import { bytes, Conversation, fdCount, randomBytes, text } from "./test_util.ts";

/** Starts the poller and opens /dev/null once, so later fd counts only see what a test creates. */
async function warmUp(): Promise<void> {
  await using helper = forkUsermodeBlob(blobFor("reqrep"), { stderr: "piped" });
  await new Conversation(helper).request("warm");
  await new BlobCommand(blobFor("cat"), { stdout: "null", stderr: "null" }).output();
}

function linkOf(fd: number): string | null {
  try {
    return Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null; // closed
  }
}

Deno.test("loadBlob() reports name, size, isScript and elfMachine", () => {
  using elf = loadBlob(blobFor("reqrep"), { name: "reqrep" });
  assert.equal(elf.name, "reqrep");
  assert.equal(elf.size, blobFor("reqrep").length);
  assert.equal(elf.isScript, false);
  assert.equal(elf.elfMachine, Deno.build.arch);
  using script = loadBlob(bytes("#!/bin/sh\necho hi\n"));
  assert.equal(script.name, "umh-blob");
  assert.equal(script.isScript, true);
  assert.equal(script.elfMachine, null);
});

Deno.test("loadBlob() holds the bytes in a named memfd sealed against write and resize", async () => {
  using blob = loadBlob(blobFor("cat"), { name: "sealed-cat" });
  const path = `/proc/self/fd/${blob.unsafeFd}`;
  assert.equal(Deno.readLinkSync(path), "/memfd:sealed-cat (deleted)");
  assert.deepEqual(await Deno.readFile(path), blobFor("cat"));
  using file = await Deno.open(path, { read: true, write: true });
  assert.throws(() => file.writeSync(new Uint8Array([0])), Deno.errors.PermissionDenied); // F_SEAL_WRITE: EPERM
  assert.throws(() => file.truncateSync(1), Deno.errors.PermissionDenied); // F_SEAL_SHRINK
  assert.throws(() => file.truncateSync(blob.size + 4096), Deno.errors.PermissionDenied); // F_SEAL_GROW
  assert.deepEqual(await Deno.readFile(path), blobFor("cat"));
});

Deno.test("loadBlob() refuses an empty blob with a TypeError and leaves no fd behind", async () => {
  await warmUp();
  const before = fdCount();
  assert.throws(() => loadBlob(new Uint8Array(0)), TypeError);
  await assert.rejects(new BlobCommand(new Uint8Array(0)).output(), TypeError);
  assert.throws(() => forkUsermodeBlob(new Uint8Array(0)), TypeError);
  assert.equal(fdCount(), before);
});

Deno.test("loadBlob() refuses what is not a Uint8Array and names longer than memfd allows", () => {
  assert.throws(() => loadBlob("#!/bin/sh\n" as unknown as Uint8Array), TypeError);
  assert.throws(() => loadBlob(bytes("#!/bin/sh\n"), { name: "x".repeat(250) }), TypeError);
  assert.throws(() => loadBlob(bytes("#!/bin/sh\n"), { name: "bad\0name" }), TypeError);
});

Deno.test("loadBlob() checks an integrity digest before loading", () => {
  const data = blobFor("cat");
  const good = `sha256-${createHash("sha256").update(data).digest("base64")}`;
  using blob = loadBlob(data, { integrity: good });
  assert.equal(blob.size, data.length);
  const before = fdCount();
  const bad = `sha256-${createHash("sha256").update(bytes("other")).digest("base64")}`;
  assert.throws(() => loadBlob(data, { integrity: bad }), /integrity/);
  assert.throws(() => loadBlob(data, { integrity: "md5-abc" }), TypeError);
  assert.equal(fdCount(), before);
});

Deno.test("BlobCommand.spawn() throws SpawnError ENOEXEC (posix_spawn) for random bytes and leaves no fd", async () => {
  await warmUp();
  const garbage = randomBytes(4096);
  garbage[0] = 0x00; // neither "\x7fELF" nor "#!"
  using blob = loadBlob(garbage, { name: "garbage" });
  const before = fdCount();
  for (const options of [{}, { stdin: "piped", stdout: "piped", stderr: "piped" }] as const) {
    const error = (() => {
      try {
        new BlobCommand(blob, options).spawn();
      } catch (error) {
        return error;
      }
      return null;
    })();
    assert.ok(error instanceof SpawnError, `expected SpawnError, got ${error}`);
    assert.equal(error.code, "ENOEXEC");
    // The exec call of whichever spawn path ran (see tests/spawn_paths_test.ts).
    assert.ok(["posix_spawn", "execveat"].includes(error.syscall), error.syscall);
    assert.match(error.message, new RegExp(`${error.syscall}\\(\\) failed with ENOEXEC`));
    assert.match(error.message, /garbage/);
    assert.match(error.message, /ENOEXEC/);
  }
  await assert.rejects(new BlobCommand(blob).output(), SpawnError);
  assert.equal(fdCount(), before);
});

Deno.test("BlobCommand.spawn() throws SpawnError ENOEXEC for an ELF of another architecture", () => {
  const other = Deno.build.arch === "x86_64" ? "aarch64" : "x86_64";
  using blob = loadBlob(blobFor("reqrep", other), { name: `reqrep-${other}` });
  assert.equal(blob.elfMachine, other);
  const before = fdCount();
  assert.throws(() => new BlobCommand(blob).spawn(), (error: unknown) => {
    assert.ok(error instanceof SpawnError);
    assert.equal(error.code, "ENOEXEC");
    return true;
  });
  assert.equal(fdCount(), before);
});

Deno.test("UsermodeBlob reused for many spawns runs the same memfd and does not grow /proc/self/fd", async () => {
  await warmUp();
  using blob = loadBlob(blobFor("reqrep"), { name: "reused" });
  const before = fdCount();
  for (let i = 0; i < 20; i++) {
    {
      await using helper = forkUsermodeBlob(blob);
      const talk = new Conversation(helper);
      assert.equal(await talk.request(`spawn ${i}`), `spawn ${i}`);
      // Runs the very memfd that was loaded: same inode, no copy.
      assert.equal(Deno.statSync(`/proc/${helper.pid}/exe`).ino, Deno.statSync(`/proc/self/fd/${blob.unsafeFd}`).ino);
      await talk.close();
      assert.equal((await helper.status).code, 0);
    }
    assert.equal(fdCount(), before, `after spawn ${i}`);
  }
});

Deno.test("BlobCommand gives a Uint8Array used once a one-off memfd, and keeps a reused one loaded", async () => {
  await warmUp();
  const script = bytes("#!/bin/sh\necho once\n");
  const before = fdCount();
  assert.equal(text((await new BlobCommand(script).output()).stdout), "once\n");
  assert.equal(fdCount(), before, "a first spawn closes its one-off memfd");
  assert.equal(text((await new BlobCommand(script).output()).stdout), "once\n");
  const loaded = fdCount();
  assert.equal(loaded, before + 1, "the second spawn keeps one memfd for the array");
  for (let i = 0; i < 10; i++) {
    const output = await new BlobCommand(script).output();
    assert.equal(text(output.stdout), "once\n");
    assert.equal(fdCount(), loaded, `spawn ${i} loaded the bytes again`);
  }
});

Deno.test("UsermodeBlob.close() closes the memfd once, and spawn() then throws TypeError", async () => {
  const blob = loadBlob(blobFor("reqrep"), { name: "closing" });
  const fd = blob.unsafeFd;
  await using running = forkUsermodeBlob(blob);
  const before = fdCount();
  blob.close();
  assert.equal(blob.closed, true);
  assert.equal(fdCount(), before - 1);
  blob.close(); // safe twice
  blob[Symbol.dispose]();
  assert.equal(fdCount(), before - 1);
  assert.throws(() => blob.unsafeFd, TypeError);
  assert.throws(() => forkUsermodeBlob(blob), TypeError);
  assert.throws(() => new BlobCommand(blob).spawn(), TypeError);
  await assert.rejects(new BlobCommand(blob).output(), TypeError);
  assert.notEqual(linkOf(fd), "/memfd:closing (deleted)");
  // A helper started before the close keeps running.
  assert.equal(await new Conversation(running).request("still here"), "still here");
});
