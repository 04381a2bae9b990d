// Issue 4, "helpers tested the way the seed promised": blobs/reqrep.c and
// blobs/cat.c built with -fsanitize=address,undefined, loaded and run through
// umh like the shipped binaries, pass their protocol checks with no sanitizer
// report on stderr. A deliberate "!crash" is the control that proves a report
// would be seen.

import assert from "node:assert/strict";
import { encodeFrame, FrameReader, loadBlob, MAX_FRAME_BYTES, type UsermodeBlob } from "../lib/mod.ts";
import { forkUsermodeBlob, type HelperStatus } from "../lib/mod.ts";

const BLOBS = new URL("../blobs/", import.meta.url).pathname;
const REPORT = /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|SUMMARY:/;
const CFLAGS = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-g", "-O1", "-fno-omit-frame-pointer"];
const SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"];
const ENV = {
  ASAN_OPTIONS: "detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1",
  UBSAN_OPTIONS: "print_stacktrace=1",
};
const compiler = findCompiler();
if (!compiler.cc) console.log(`sanitizer_test: skipping the sanitizer builds: ${compiler.why}`);

/** gcc, else clang, provided it links an ASan+UBSan program (Debian: libasan and libubsan come with gcc). */
function findCompiler(): { cc: string | null; why: string } {
  const tried: string[] = [];
  const probe =
    'd=$(mktemp -d) && printf "int main(void) { return 0; }\\n" > "$d/p.c" && "$0" "$@" -o "$d/p" "$d/p.c"; ' +
    'rc=$?; rm -rf "$d"; exit $rc';
  for (const cc of [Deno.env.get("UMH_SANITIZER_CC"), "gcc", "clang"]) {
    if (!cc) continue;
    try {
      const out = new Deno.Command("sh", { args: ["-c", probe, cc, ...SANITIZE], stdout: "null", stderr: "null" })
        .outputSync();
      if (out.success) return { cc, why: "" };
      tried.push(`${cc} cannot link -fsanitize=address,undefined`);
    } catch {
      return { cc: null, why: "sh not found" };
    }
  }
  return { cc: null, why: tried.join("; ") || "no C compiler" };
}

/** Builds blobs/<name>.c with the sanitizers into `dir` and loads the result. */
async function buildSanitized(cc: string, name: string, dir: string): Promise<UsermodeBlob> {
  const out = `${dir}/${name}.asan`;
  const build = await new Deno.Command(cc, { args: [...CFLAGS, ...SANITIZE, "-o", out, `${BLOBS}${name}.c`] }).output();
  assert.equal(build.code, 0, `${cc} failed: ${new TextDecoder().decode(build.stderr)}`);
  return loadBlob(await Deno.readFile(out), { name: `${name}.asan` });
}

/** One reqrep session: sends `input` (frames or raw bytes), closes stdin, collects replies, status, stderr. */
async function session(
  blob: UsermodeBlob,
  input: Uint8Array[],
): Promise<{ replies: string[]; status: HelperStatus; stderr: string }> {
  await using helper = forkUsermodeBlob(blob, { stderr: "piped", env: ENV });
  const stderr = new Response(helper.stderr).text();
  const writer = helper.stdin.getWriter();
  const frames = new FrameReader(helper.stdout);
  const replies: string[] = [];
  const reading = (async (): Promise<void> => {
    for (let frame = await frames.next(); frame !== null; frame = await frames.next()) {
      replies.push(
        frame.length > 64 ? `<${frame.length} bytes, sum ${frame.reduce((a, b) => a + b, 0)}>` : text(frame),
      );
    }
  })();
  try {
    for (const chunk of input) await writer.write(chunk);
    await writer.close();
  } catch {
    // EPIPE: the helper stopped reading (an exit request); its status says the rest
  }
  await reading;
  return { replies, status: await helper.status, stderr: await stderr };
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

function frame(message: string | Uint8Array): Uint8Array {
  return encodeFrame(typeof message === "string" ? new TextEncoder().encode(message) : message);
}

const OK = { success: true, code: 0, signal: null };
const PROTOCOL_ERROR = { success: false, code: 2, signal: null };

Deno.test({
  name:
    "reqrep built with -fsanitize=address,undefined passes the protocol checks through umh with no sanitizer report",
  ignore: !compiler.cc,
  async fn(): Promise<void> {
    const dir = await Deno.makeTempDir({ prefix: "umh-asan-" });
    try {
      using blob = await buildSanitized(compiler.cc!, "reqrep", dir);
      const large = new Uint8Array(MAX_FRAME_BYTES).map((_, i) => i * 7);
      const largeSum = large.reduce((a, b) => a + b, 0);
      const cases: [string, Uint8Array[], (r: { replies: string[]; status: HelperStatus }) => void][] = [
        ["echo", [frame("hello"), frame(""), frame("again")], (r) => {
          assert.deepEqual(r.replies, ["hello", "", "again"]);
          assert.deepEqual({ ...r.status }, OK);
        }],
        ["!pid, !sleep, !stderr", [frame("!pid"), frame("!sleep 1"), frame("!stderr note")], (r) => {
          assert.match(r.replies[0]!, /^\d+$/);
          assert.deepEqual(r.replies.slice(1), ["ok", "ok"]);
          assert.deepEqual({ ...r.status }, OK);
        }],
        [
          "!exit 3",
          [frame("!exit 3")],
          (r) => assert.deepEqual({ ...r.status }, { success: false, code: 3, signal: null }),
        ],
        ["EOF at a frame boundary", [], (r) => assert.deepEqual({ ...r.status }, OK)],
        ["truncated header", [new Uint8Array([5, 0])], (r) => assert.deepEqual({ ...r.status }, PROTOCOL_ERROR)],
        [
          "truncated payload",
          [frame("truncated").subarray(0, 7)],
          (r) => assert.deepEqual({ ...r.status }, PROTOCOL_ERROR),
        ],
        ["frame over 16 MiB", [new Uint8Array([1, 0, 0, 1])], (r) => assert.deepEqual({ ...r.status }, PROTOCOL_ERROR)],
        ["malformed !exit", [frame("!exit 3x")], (r) => assert.deepEqual({ ...r.status }, PROTOCOL_ERROR)],
        ["largest frame (16 MiB)", [frame(large)], (r) => {
          assert.deepEqual(r.replies, [`<${large.length} bytes, sum ${largeSum}>`]);
          assert.deepEqual({ ...r.status }, OK);
        }],
      ];
      for (const [name, input, check] of cases) {
        const result = await session(blob, input);
        assert.doesNotMatch(result.stderr, REPORT, `${name}: sanitizer report:\n${result.stderr}`);
        check(result);
      }
      // The control: the deliberate null store of "!crash" is reported (by UBSan or ASan), so a report
      // anywhere above would have been seen.
      const crash = await session(blob, [frame("!crash")]);
      assert.match(crash.stderr, REPORT);
      assert.match(crash.stderr, /SEGV|null pointer/, "the report names the fault");
      assert.equal(crash.status.success, false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cat built with -fsanitize=address,undefined copies 8 MiB unchanged through umh with no sanitizer report",
  ignore: !compiler.cc,
  async fn(): Promise<void> {
    const dir = await Deno.makeTempDir({ prefix: "umh-asan-" });
    try {
      using blob = await buildSanitized(compiler.cc!, "cat", dir);
      for (const size of [0, 1, 8 * 1024 * 1024 + 3]) {
        const data = new Uint8Array(size).map((_, i) => (i * 31) ^ (i >> 8));
        await using helper = forkUsermodeBlob(blob, { stderr: "piped", env: ENV });
        const stderr = new Response(helper.stderr).text();
        const stdout = new Response(helper.stdout).arrayBuffer();
        const writer = helper.stdin.getWriter();
        await writer.write(data);
        await writer.close();
        assert.deepEqual(new Uint8Array(await stdout), data);
        assert.deepEqual({ ...await helper.status }, OK);
        const report = await stderr;
        assert.doesNotMatch(report, REPORT, `sanitizer report:\n${report}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
