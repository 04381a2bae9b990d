// Multi-architecture helpers: blobFor() picks the build for Deno.build.arch,
// a build for another machine is refused before exec with an error naming
// both, and where qemu-user is installed the other build is shown to work by
// running it under qemu, itself started from memory.

import assert from "node:assert/strict";
import { blobFor, BLOBS } from "../blobs/mod.ts";
import { forkUsermodeBlob, loadBlob, SpawnError } from "../lib/mod.ts";
import { Conversation, fdCount } from "./test_util.ts";

const HOST = Deno.build.arch;
const OTHER = HOST === "x86_64" ? "aarch64" : "x86_64";

Deno.test("blobFor() picks the build for Deno.build.arch", () => {
  for (const name of ["reqrep", "cat"] as const) {
    assert.equal(blobFor(name), BLOBS[name][HOST]);
    using blob = loadBlob(blobFor(name));
    assert.equal(blob.elfMachine, HOST);
  }
});

Deno.test("blobFor() builds' ELF headers name their architecture", () => {
  for (const [name, builds] of Object.entries(BLOBS)) {
    for (const [arch, bytes] of Object.entries(builds)) {
      using blob = loadBlob(bytes, { name });
      assert.equal(blob.elfMachine, arch, `${name}.${arch}`);
    }
  }
});

Deno.test("blobFor() refuses an architecture umh has no build for, naming it", () => {
  assert.throws(() => blobFor("reqrep", "riscv64"), /No "reqrep" helper is built for riscv64/);
});

Deno.test(`forkUsermodeBlob() refuses an ${OTHER} blob on ${HOST} with ENOEXEC naming both, leaking no fd`, () => {
  const before = fdCount();
  {
    using blob = loadBlob(blobFor("reqrep", OTHER), { name: "reqrep-other" });
    assert.throws(() => forkUsermodeBlob(blob), (error: unknown) => {
      assert.ok(error instanceof SpawnError, String(error));
      assert.equal(error.code, "ENOEXEC");
      assert.equal(error.errno, 8);
      assert.match(error.message, new RegExp(`^Cannot spawn "reqrep-other": .*${OTHER}.*${HOST}`));
      return true;
    });
    assert.equal(blob.closed, false, "the blob stays usable after a refused spawn");
  }
  assert.equal(fdCount(), before);
});

Deno.test(`forkUsermodeBlob() refuses ${OTHER} bytes every time without piling up fds`, () => {
  // Bytes are loaded into one memfd per array and kept for the array's life
  // (lib/spawn.ts), so the first refusal may keep that memfd; later ones add nothing.
  const bytes = blobFor("cat", OTHER);
  assert.throws(() => forkUsermodeBlob(bytes), SpawnError);
  const after = fdCount();
  for (let i = 0; i < 3; i++) assert.throws(() => forkUsermodeBlob(bytes), /ENOEXEC/);
  assert.equal(fdCount(), after);
});

const QEMU = `/usr/bin/qemu-${OTHER}-static`;
const hasQemu = await Deno.stat(QEMU).then((info) => info.isFile, () => false);
if (!hasQemu) {
  console.log(`arch_test: skipping the ${OTHER} run: ${QEMU} is not installed (apt-get install qemu-user-static)`);
}

Deno.test({
  name: `forkUsermodeBlob() runs the ${OTHER} reqrep helper under ${QEMU}, itself loaded from memory`,
  ignore: !hasQemu,
  fn: async () => {
    // qemu-user is a static ELF for this machine: load it as the blob, and
    // give it the other build's path (qemu opens its guest program by path).
    const guest = await Deno.makeTempFile({ prefix: `reqrep-${OTHER}-` });
    try {
      await Deno.writeFile(guest, blobFor("reqrep", OTHER), { mode: 0o755 });
      using qemu = loadBlob(await Deno.readFile(QEMU), { name: `qemu-${OTHER}` });
      assert.equal(qemu.elfMachine, HOST);
      await using helper = forkUsermodeBlob(qemu, { args: [guest] });
      const talk = new Conversation(helper);
      assert.equal(await talk.request("hello from the other side"), "hello from the other side");
      assert.equal(await talk.request("!pid"), String(helper.pid), "qemu-user runs the guest in its own process");
      await talk.close();
      assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
    } finally {
      await Deno.remove(guest);
    }
  },
});
