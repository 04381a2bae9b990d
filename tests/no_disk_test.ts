// Issue 4, "no disk, proven": the whole load-and-spawn path runs under
// `strace -f`, and between two markers no file is created, opened for
// writing, renamed or unlinked on any filesystem, by the owner or the helpers.
//
// The child program marks the window by stat()ing two paths that do not exist
// (`/umh-marker-start`, `/umh-marker-end`): each shows in the trace as one
// failed stat, so only the syscalls of the load-and-spawn path (from every
// thread and every helper) fall between them, and Deno's own start-up (module
// cache, DENO_DIR) stays outside.

import assert from "node:assert/strict";
import { straceDeno, whyNoStrace } from "./test_util.ts";

const ROOT = new URL("../", import.meta.url);
const noStrace = whyNoStrace();
if (noStrace) console.log(`no_disk_test: skipping the traced load-and-spawn test: ${noStrace}`);

const CHILD = `
import { BlobCommand, encodeFrame, forkUsermodeBlob, FrameReader, loadBlob } from "${new URL("lib/mod.ts", ROOT)}";
import { createHash } from "node:crypto";
const reqrep = Deno.readFileSync(Deno.args[0]);
const cat = Deno.readFileSync(Deno.args[1]);
const script = new TextEncoder().encode('#!/bin/sh\\necho "script $1"\\n');
const integrity = "sha256-" + createHash("sha256").update(reqrep).digest("base64");
const decoder = new TextDecoder();
const marker = (path) => { try { Deno.statSync(path); } catch { /* ENOENT is the point */ } };
const results = [];
marker("/umh-marker-start");
{
  using blob = loadBlob(reqrep, { name: "umh-no-disk", integrity });
  await using helper = forkUsermodeBlob(blob, { stderr: "piped" });
  const writer = helper.stdin.getWriter();
  await writer.write(encodeFrame(new TextEncoder().encode("hello")));
  results.push(decoder.decode(await new FrameReader(helper.stdout).next()));
  await writer.close();
  results.push((await helper.status).code);
}
{
  const out = await new BlobCommand(cat, { stdin: "null" }).output();
  results.push(out.code, out.stdout.length);
}
{
  const out = await new BlobCommand(script, { args: ["ran"] }).output();
  results.push(decoder.decode(out.stdout).trim(), out.code);
}
marker("/umh-marker-end");
console.log(JSON.stringify(results));
`;

/** Syscalls that change a filesystem whatever their arguments. */
const MUTATING = new Set([
  "creat",
  "unlink",
  "unlinkat",
  "rename",
  "renameat",
  "renameat2",
  "mkdir",
  "mkdirat",
  "rmdir",
  "link",
  "linkat",
  "symlink",
  "symlinkat",
  "truncate",
  "mknod",
  "mknodat",
  "chmod",
  "fchmodat",
  "fchmodat2",
  "chown",
  "lchown",
  "fchownat",
  "utime",
  "utimes",
  "utimensat",
  "futimesat",
  "setxattr",
  "lsetxattr",
  "removexattr",
  "lremovexattr",
]);
const OPENS = new Set(["open", "openat", "openat2"]);
const WRITE_FLAGS = /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND|O_TMPFILE/;
/** The one writable open the path may make: the process-wide /dev/null for `stdin: "null"` (a device, no data). */
const ALLOWED_WRITE_OPENS = new Set(["/dev/null"]);
const EXEC_PATH = /^\/proc\/(self|\d+)\/fd\/\d+$/;

interface Call {
  readonly pid: string;
  readonly name: string;
  readonly args: string;
  readonly line: string;
}

/**
 * The syscalls between the markers, one per call. strace -f splits a call
 * that another thread's interrupts ("... <unfinished ...>", later
 * "PID <... name resumed>...): the halves are joined into one line again.
 */
function window(trace: string): Call[] {
  const lines = joinResumed(trace.split("\n"));
  const start = lines.findIndex((line) => line.includes('"/umh-marker-start"'));
  const end = lines.findIndex((line) => line.includes('"/umh-marker-end"'));
  assert.ok(start >= 0 && end > start, "both markers are in the trace");
  const calls: Call[] = [];
  for (const line of lines.slice(start + 1, end)) {
    const match = /^(\d+)\s+([a-z0-9_]+)\((.*)$/.exec(line);
    if (match) calls.push({ pid: match[1]!, name: match[2]!, args: match[3]!, line });
  }
  return calls;
}

function joinResumed(lines: string[]): string[] {
  const out: string[] = [];
  const pending = new Map<string, number>(); // pid -> index in `out` of its unfinished call
  for (const line of lines) {
    const unfinished = /^(\d+)\s.*\s<unfinished \.\.\.>$/.exec(line);
    const resumed = /^(\d+)\s+<\.\.\. [a-z0-9_]+ resumed>(.*)$/.exec(line);
    if (unfinished) {
      pending.set(unfinished[1]!, out.length);
      out.push(line.slice(0, -" <unfinished ...>".length));
    } else if (resumed && pending.has(resumed[1]!)) {
      const at = pending.get(resumed[1]!)!;
      pending.delete(resumed[1]!);
      out[at] += resumed[2]!;
    } else out.push(line);
  }
  return out;
}

/** An execveat of a descriptor (empty path, AT_EMPTY_PATH) that memfd_create returned. */
function execOfMemfd(call: Call, memfdFds: Set<string | undefined>): boolean {
  const match = /^(\d+), "", .*AT_EMPTY_PATH\)/.exec(call.args);
  return match !== null && memfdFds.has(match[1]);
}

function firstString(args: string): string {
  return /"((?:[^"\\]|\\.)*)"/.exec(args)?.[1] ?? "";
}

Deno.test({
  name: "loadBlob() and spawn create, write, rename or unlink no file on any filesystem (strace -f)",
  ignore: noStrace !== null,
  async fn(): Promise<void> {
    const { code, stdout, stderr, trace, denoDir } = await straceDeno(
      CHILD,
      "%file,unlink,unlinkat,rename,renameat,renameat2,memfd_create,execve,execveat,openat,open,creat",
      [
        new URL(`blobs/reqrep.${Deno.build.arch}`, ROOT).pathname,
        new URL(`blobs/cat.${Deno.build.arch}`, ROOT).pathname,
      ],
    );
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), ["hello", 0, 0, 0, "script ran", 0]);

    // Deno's own cache threads may write under DENO_DIR at any moment; that is Deno, not umh.
    const calls = window(trace);
    // The trampoline execs the memfd itself: execveat(fd, "", ..., AT_EMPTY_PATH).
    const memfdFds = new Set(
      calls.filter((call) => call.name === "memfd_create").map((call) => /= (\d+)$/.exec(call.line)?.[1]),
    );
    const offending = calls.filter((call) => {
      if (firstString(call.args).startsWith(denoDir)) return false;
      if (MUTATING.has(call.name)) return true;
      if (OPENS.has(call.name)) {
        return WRITE_FLAGS.test(call.args) && !ALLOWED_WRITE_OPENS.has(firstString(call.args));
      }
      if (call.name === "execveat") return !execOfMemfd(call, memfdFds);
      if (call.name === "execve") return !EXEC_PATH.test(firstString(call.args));
      return false;
    });
    assert.deepEqual(offending.map((call) => call.line), [], "no syscall in the window touched a filesystem");

    // And the window is not empty: it holds the memfds and the execs of them.
    // (The spawn trampoline's own memfd may be made here too, on first use.)
    const memfds = calls.filter((call) => call.name === "memfd_create" && !call.args.startsWith('"umh-trampoline"'));
    assert.equal(memfds.length, 3, calls.map((call) => call.line).join("\n"));
    assert.ok(memfds.some((call) => call.args.startsWith('"umh-no-disk"')));
    const execs = calls.filter((call) => call.name === "execve" || call.name === "execveat");
    assert.equal(execs.length, 3, calls.map((call) => call.line).join("\n"));
  },
});
