// Issue 4, "bad blobs never hurt the owner": each bad input gives a typed
// error (or, for the 1 GiB blob, works) and leaves no fd, memfd or process.

import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import { BlobCommand, encodeFrame, forkUsermodeBlob, FrameReader, loadBlob, SpawnError } from "../lib/mod.ts";
import { ourChildren } from "./test_util.ts";

const OTHER_ARCH = Deno.build.arch === "x86_64" ? "aarch64" : "x86_64";

/** Everything this process holds that a bad blob could leak. */
interface Leftovers {
  readonly fds: number;
  readonly memfds: string[];
  readonly children: number[];
}

function leftovers(): Leftovers {
  const memfds: string[] = [];
  let fds = 0;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    fds++;
    try {
      const link = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
      if (link.startsWith("/memfd:") || link.includes("/#")) memfds.push(link);
    } catch {
      // the directory handle itself, closed by now
    }
  }
  return { fds, memfds, children: ourChildren() };
}

/** Runs `body`, then asserts the process holds exactly what it held before. */
async function leavesNothing(body: () => Promise<void> | void): Promise<void> {
  // Warm up first: the poller's epoll and eventfd, and the shared /dev/null, are opened once per process.
  await new BlobCommand(blobFor("cat"), { stdout: "null", stderr: "null" }).output();
  const before = leftovers();
  await body();
  assert.deepEqual(leftovers(), before);
}

/** Loads `bytes` and spawns them with every stdio piped; returns the error it throws. */
function spawnError(bytes: Uint8Array, name: string): unknown {
  try {
    using blob = loadBlob(bytes, { name });
    const helper = new BlobCommand(blob, { stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
    helper.kill("SIGKILL"); // it should not have started; stop it so the leftover check reports only that
    void helper.status;
    return new Error(`spawned pid ${helper.pid}`);
  } catch (error) {
    return error;
  }
}

function assertSpawnError(error: unknown, code: string): SpawnError {
  assert.ok(error instanceof SpawnError, `expected SpawnError ${code}, got ${error}`);
  assert.equal(error.code, code, error.message);
  return error;
}

/** xorshift32: a fixed, reproducible byte stream. */
function pseudoRandom(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

Deno.test("BlobCommand.spawn() of random bytes throws SpawnError ENOEXEC and leaves no fd, memfd or process", async () => {
  await leavesNothing(() => {
    for (const length of [1, 3, 64, 4096, 100_000]) {
      const bytes = pseudoRandom(length, length);
      bytes[0] = 0x00; // neither "\x7fELF" nor "#!"
      assertSpawnError(spawnError(bytes, `random-${length}`), "ENOEXEC");
    }
  });
});

Deno.test("BlobCommand.spawn() of a truncated ELF (first 100 bytes) throws SpawnError ENOEXEC and leaves nothing", async () => {
  const truncated = {
    "/bin/true": (await Deno.readFile("/bin/true")).slice(0, 100),
    reqrep: blobFor("reqrep").slice(0, 100),
    "reqrep header only": blobFor("reqrep").slice(0, 64),
  };
  await leavesNothing(() => {
    for (const [name, bytes] of Object.entries(truncated)) {
      const error = assertSpawnError(spawnError(bytes, name), "ENOEXEC");
      // The exec call of whichever spawn path ran (see tests/spawn_paths_test.ts).
      assert.ok(["posix_spawn", "execveat"].includes(error.syscall), error.syscall);
      assert.match(error.message, new RegExp(`${error.syscall}\\(\\) failed with ENOEXEC`));
    }
  });
});

Deno.test(`BlobCommand.spawn() of an ELF for ${OTHER_ARCH} throws SpawnError ENOEXEC naming both architectures`, async () => {
  await leavesNothing(() => {
    const error = assertSpawnError(spawnError(blobFor("reqrep", OTHER_ARCH), "foreign"), "ENOEXEC");
    assert.ok(error.message.includes(OTHER_ARCH), error.message);
    assert.ok(error.message.includes(Deno.build.arch), error.message);
    assert.match(error.message, /^Cannot spawn "foreign": /);
  });
});

Deno.test("BlobCommand.spawn() of a #! script whose interpreter is missing throws SpawnError ENOENT and leaves nothing", async () => {
  await leavesNothing(() => {
    const script = new TextEncoder().encode("#!/nonexistent/umh-interpreter\necho never\n");
    const error = assertSpawnError(spawnError(script, "orphan-script"), "ENOENT");
    assert.ok(
      error.message.includes('its "#!" interpreter "/nonexistent/umh-interpreter" does not exist'),
      error.message,
    );
  });
});

Deno.test("a dynamically linked blob whose loader is missing throws SpawnError ENOENT naming the loader, and leaves nothing", async () => {
  const bytes = Deno.readFileSync("/bin/true"); // dynamically linked, as Debian builds it
  using real = loadBlob(bytes, { name: "true" });
  assert.equal(real.interpreter?.startsWith("/lib"), true, `PT_INTERP ${real.interpreter}`);
  {
    using cat = loadBlob(blobFor("cat"));
    assert.equal(cat.interpreter, null, "a static blob has no loader");
  }
  // The same ELF with its PT_INTERP pointed at a loader this machine lacks (same length, so nothing moves).
  const loader = real.interpreter!;
  const missing = loader.slice(0, -3) + "zzz";
  const at = new TextDecoder("latin1").decode(bytes).indexOf(loader + "\0");
  assert.ok(at > 0);
  const patched = bytes.slice();
  patched.set(new TextEncoder().encode(missing), at);
  await leavesNothing(() => {
    const error = assertSpawnError(spawnError(patched, "no-loader"), "ENOENT");
    assert.ok(error.message.includes(`its loader "${missing}" does not exist`), error.message);
  });
});

Deno.test("without --allow-read a missing #! interpreter is still named, and nothing asks for permission", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "umh_noread_" });
  try {
    const program = `${dir}/owner.ts`;
    Deno.writeTextFileSync(
      program,
      `import { BlobCommand } from ${JSON.stringify(new URL("../lib/mod.ts", import.meta.url).href)};
       try {
         new BlobCommand(new TextEncoder().encode("#!/nonexistent/umh-sh\\n")).spawn();
       } catch (error) {
         console.log(String(error));
       }`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", "--no-prompt", "--unstable-raw-imports", program],
      stdin: "null",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(text, /its "#!" interpreter "\/nonexistent\/umh-sh" does not exist/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("loadBlob(), BlobCommand and forkUsermodeBlob() throw TypeError for a 0-byte blob and leave nothing", async () => {
  await leavesNothing(async () => {
    assert.throws(() => loadBlob(new Uint8Array(0)), TypeError);
    assert.throws(() => new BlobCommand(new Uint8Array(0)).spawn(), TypeError);
    await assert.rejects(new BlobCommand(new Uint8Array(0)).output(), TypeError);
    assert.throws(() => forkUsermodeBlob(new Uint8Array(0)), TypeError);
  });
});

Deno.test("loadBlob() of a 1 GiB blob (an ELF padded with zeros) runs, and closing it frees the memfd", async () => {
  await leavesNothing(async () => {
    const elf = blobFor("reqrep");
    let bytes: Uint8Array | null = new Uint8Array(1024 * 1024 * 1024); // the only JS copy; the memfd holds the other
    bytes.set(elf);
    {
      using blob = loadBlob(bytes, { name: "one-gib" });
      bytes = null; // let the array go: from here only the memfd holds the bytes
      assert.equal(blob.size, 1024 * 1024 * 1024);
      assert.equal(Deno.statSync(`/proc/self/fd/${blob.unsafeFd}`).size, 1024 * 1024 * 1024);
      await using helper = forkUsermodeBlob(blob, { stderr: "piped" });
      const writer = helper.stdin.getWriter();
      await writer.write(encodeFrame(new TextEncoder().encode("big")));
      assert.equal(new TextDecoder().decode((await new FrameReader(helper.stdout).next())!), "big");
      await writer.close();
      assert.deepEqual({ ...await helper.status }, { success: true, code: 0, signal: null });
    }
  });
});

Deno.test("a bad string option is refused before the bytes are loaded: no memfd is made or cached", async () => {
  const bytes = blobFor("cat").slice(); // an array of our own: the blob cache keeps one memfd per array spawned twice
  await leavesNothing(() => {
    for (const options of [{ argv0: "a\0b" }, { args: ["x\0"] }, { cwd: "/tmp\0" }, { env: { A: "\0" } }]) {
      for (let i = 0; i < 2; i++) {
        assert.throws(
          () => new BlobCommand(bytes, { ...options, stdout: "null" }).spawn(),
          TypeError,
          JSON.stringify(options),
        );
      }
    }
  });
});
