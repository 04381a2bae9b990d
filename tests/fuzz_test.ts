// Issue 4, fuzzing: (1) a few thousand random and mutated-ELF blobs thrown at
// spawn() leave the owner alive with the same fds and no child; (2) a short
// libFuzzer run of reqrep's frame parser (tools/fuzz.sh) finds nothing; (3)
// every saved regression input still passes, in the libFuzzer build and in
// the shipped reqrep binary run through umh.
//
// The blob fuzzer is reproducible: UMH_FUZZ_SEED picks the seed (printed),
// UMH_FUZZ_COUNT the number of blobs.

import assert from "node:assert/strict";
import { blobFor } from "../blobs/mod.ts";
import { BlobCommand, FrameReader, loadBlob, SpawnError, type UsermodeHelper } from "../lib/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const REGRESSIONS = `${ROOT}blobs/fuzz/regressions`;
const SEED = Number(Deno.env.get("UMH_FUZZ_SEED") ?? 0x5eed_0004) >>> 0;
const COUNT = Number(Deno.env.get("UMH_FUZZ_COUNT") ?? 3000);
const HANG_MS = 2000;
const libFuzzer = whyNoLibFuzzer();
if (libFuzzer) console.log(`fuzz_test: skipping the libFuzzer run: ${libFuzzer}`);

function whyNoLibFuzzer(): string | null {
  try {
    const dir = new TextDecoder().decode(
      new Deno.Command(Deno.env.get("FUZZ_CC") ?? "clang", { args: ["-print-resource-dir"], stderr: "null" })
        .outputSync().stdout,
    ).trim();
    const arch = Deno.build.arch;
    for (
      const lib of [`lib/linux/libclang_rt.fuzzer-${arch}.a`, `lib/${arch}-unknown-linux-gnu/libclang_rt.fuzzer.a`]
    ) {
      try {
        Deno.statSync(`${dir}/${lib}`);
        return null;
      } catch {
        // try the other layout
      }
    }
    return `clang has no libFuzzer runtime under ${dir} (Debian: the clang package ships it)`;
  } catch {
    return "clang not found";
  }
}

/** mulberry32: small, fast, and the same sequence on every machine. */
function prng(seed: number): () => number {
  let a = seed;
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Blob number `i`: random bytes, a mutated or cut ELF, or garbage behind an ELF or `#!` magic. */
function makeBlob(random: () => number, elf: Uint8Array): { kind: string; bytes: Uint8Array } {
  const int = (n: number): number => Math.floor(random() * n);
  const fill = (bytes: Uint8Array, from: number): Uint8Array => {
    for (let i = from; i < bytes.length; i++) bytes[i] = int(256);
    return bytes;
  };
  const roll = random();
  if (roll < 0.25) return { kind: "random", bytes: fill(new Uint8Array(1 + int(8192)), 0) };
  if (roll < 0.35) {
    const bytes = fill(new Uint8Array(4 + int(4096)), 4);
    bytes.set([0x7f, 0x45, 0x4c, 0x46]);
    return { kind: "elf-magic", bytes };
  }
  if (roll < 0.4) {
    const bytes = fill(new Uint8Array(2 + int(512)), 2);
    bytes.set([0x23, 0x21]); // "#!" and a random interpreter path
    return { kind: "shebang", bytes };
  }
  // The ELF header (64 bytes) and program headers (from e_phoff) decide how exec goes.
  const length = random() < 0.3 ? 1 + int(elf.length) : elf.length;
  const bytes = elf.slice(0, length);
  const mutations = 1 + int(8);
  for (let m = 0; m < mutations; m++) {
    const at = int(Math.min(length, 512));
    bytes[at] = random() < 0.5 ? int(256) : bytes[at]! ^ (1 << int(8));
  }
  return { kind: length === elf.length ? "mutated-elf" : "cut-elf", bytes };
}

function snapshot(): { fds: string[]; children: number[] } {
  const fds: string[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      fds.push(`${entry.name} -> ${Deno.readLinkSync(`/proc/self/fd/${entry.name}`)}`);
    } catch {
      // the directory handle used for listing
    }
  }
  const children: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === Deno.pid) children.push(Number(entry.name));
    } catch {
      // exited while listing
    }
  }
  return { fds: fds.sort(), children };
}

async function settle(helper: UsermodeHelper): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), HANG_MS));
  const status = await Promise.race([helper.status, timeout]);
  clearTimeout(timer);
  if (status !== null) return status.signal ?? `exit ${status.code}`;
  helper.kill("SIGKILL"); // a mutated entry point can spin forever
  await helper.status;
  return "hung";
}

Deno.test("BlobCommand.spawn() survives thousands of random and mutated-ELF blobs: same fds, no child left", async () => {
  console.log(`blob fuzzer: seed ${SEED} (UMH_FUZZ_SEED), ${COUNT} blobs (UMH_FUZZ_COUNT)`);
  const random = prng(SEED);
  const elf = blobFor("reqrep");
  const cwd = await Deno.makeTempDir({ prefix: "umh-fuzz-" }); // any core dump lands here, not in the repo
  try {
    await new BlobCommand(elf, { stdout: "null", stderr: "null" }).output(); // warm up poller and /dev/null
    const before = snapshot();
    const outcomes = new Map<string, number>();
    for (let i = 0; i < COUNT; i++) {
      const { kind, bytes } = makeBlob(random, elf);
      let outcome: string;
      try {
        using blob = loadBlob(bytes, { name: `fuzz-${i}` });
        const helper = new BlobCommand(blob, { stdin: "null", stdout: "null", stderr: "null", cwd, clearEnv: true })
          .spawn();
        outcome = `ran: ${await settle(helper)}`;
      } catch (error) {
        if (!(error instanceof SpawnError)) {
          throw new Error(`blob ${i} (${kind}, seed ${SEED}) threw ${error}, not SpawnError`, { cause: error });
        }
        outcome = `SpawnError ${error.code}`;
      }
      const key = `${kind}: ${outcome}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    console.log([...outcomes].sort().map(([key, n]) => `  ${n} × ${key}`).join("\n"));
    assert.deepEqual(snapshot(), before, "no fd, memfd or child process left behind");
    assert.ok([...outcomes.keys()].some((key) => key.includes("ran: exit 0")), "some mutated ELF still ran");
    assert.ok([...outcomes.keys()].some((key) => key.includes("SpawnError ENOEXEC")), "some blob was refused");
    const output = await new BlobCommand(blobFor("cat"), { stdin: "null" }).output();
    assert.equal(output.code, 0, "the owner still spawns helpers");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test({
  name: "tools/fuzz.sh replays every saved input and fuzzes reqrep's frame parser for 10 s without a crash",
  ignore: libFuzzer !== null,
  async fn(): Promise<void> {
    const out = await new Deno.Command("bash", {
      args: [`${ROOT}tools/fuzz.sh`, "--seconds", "10", "--regressions", REGRESSIONS],
      stdin: "null",
    }).output();
    const log = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `the fuzzer found a failure; the input is in ${REGRESSIONS}:\n${log}`);
    assert.match(log, /replayed \d+ saved inputs: all pass/);
    assert.match(log, /no crash found/);
  },
});

Deno.test("reqrep replays every saved fuzz input through umh: exit 0, 1 or 2, whole frames only", async () => {
  const dirs = [REGRESSIONS, `${ROOT}blobs/fuzz/corpus`];
  let replayed = 0;
  for (const dir of dirs) {
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.isFile || entry.name.endsWith(".md")) continue;
      const input = await Deno.readFile(`${dir}/${entry.name}`);
      const text = new TextDecoder("latin1").decode(input);
      if (text.includes("!crash") || text.includes("!hang")) continue; // on purpose; see reqrep_fuzz.c
      await using helper = new BlobCommand(blobFor("reqrep"), { stdin: "piped", stdout: "piped", stderr: "piped" })
        .spawn();
      const writer = helper.stdin.getWriter();
      await writer.write(input).catch(() => {}); // EPIPE: reqrep may stop reading at a bad frame
      await writer.close().catch(() => {});
      const frames = new FrameReader(helper.stdout);
      const stderr = new Response(helper.stderr).text();
      while (await frames.next() !== null); // throws on a partial frame
      const status = await helper.status;
      assert.equal(status.signal, null, `${entry.name}: killed by ${status.signal}: ${await stderr}`);
      const requested = Number(/^!exit (\d+)$/.exec(text.slice(4))?.[1] ?? NaN); // a single "!exit N" frame
      if (requested <= 255) assert.equal(status.code, requested, entry.name);
      else assert.ok(status.code <= 2, `${entry.name}: exit ${status.code}`);
      replayed++;
    }
  }
  assert.ok(replayed >= 10, `replayed ${replayed} inputs`);
});
