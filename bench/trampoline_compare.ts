// The two spawn paths side by side (issue 5): posix_spawn (ffi/spawn.ts)
// against the trampoline (ffi/trampoline.ts), bare and with every cheap setup
// option, interleaved, each run as spawn -> one framed round trip -> EOF ->
// reaped, synchronously on this thread, so only the spawn path differs.
//
//   deno run --allow-ffi --allow-read bench/trampoline_compare.ts [--runs 300]

import { parseArgs } from "node:util";
import { blobFor } from "../blobs/mod.ts";
import { O_CLOEXEC } from "../ffi/constants.ts";
import { lastErrno, SyscallError } from "../ffi/errno.ts";
import { close, libc, pipe2, writeAll } from "../ffi/libc.ts";
import { cStringArray } from "../ffi/pointer.ts";
import { posixSpawn, type PosixSpawnRequest } from "../ffi/spawn.ts";
import { loadTrampoline, resourceLimits, trampolineSpawn } from "../ffi/trampoline.ts";
import { encodeFrame, loadBlob } from "../lib/mod.ts";

const { values } = parseArgs({ args: Deno.args, options: { runs: { type: "string", default: "300" } } });
const RUNS = Number(values.runs);
const WARMUP = 20;
const SYS_wait4 = BigInt(Deno.build.arch === "aarch64" ? 260 : 61);

using blob = loadBlob(blobFor("reqrep"), { name: "reqrep" });
const argv = cStringArray(["reqrep"], String);
const request = encodeFrame(new TextEncoder().encode("ping"));
const reply = new Uint8Array(64);

type Spawn = (request: PosixSpawnRequest, action: string) => number;
const SETUP = {
  parentDeathSignal: 9,
  noNewPrivileges: true,
  limits: resourceLimits({ core: 0, nofile: 1024 }),
  processGroup: 0,
};
const PATHS: [string, Spawn][] = [
  ["posix_spawn", posixSpawn],
  ["trampoline", trampolineSpawn],
  ["trampoline + setup", (r, action) => trampolineSpawn({ ...r, ...SETUP }, action)],
];

/** One helper's life in milliseconds: pipes, spawn, "ping" and its reply, EOF, reaped. */
function once(spawn: Spawn): number {
  const start = performance.now();
  const [stdinRead, stdinWrite] = pipe2(O_CLOEXEC, "pipe");
  const [stdoutRead, stdoutWrite] = pipe2(O_CLOEXEC, "pipe");
  const pid = spawn({
    blobFd: blob.unsafeFd,
    isScript: false,
    argv,
    envp: null,
    stdio: [stdinRead, stdoutWrite, "inherit"],
    cwd: null,
    extraFlags: 0,
    pgroup: 0,
  }, "Cannot spawn reqrep");
  close(stdinRead);
  close(stdoutWrite);
  writeAll(stdinWrite, request, "write");
  let got = 0;
  while (got < request.length) {
    const n = Number(libc().read(stdoutRead, reply.subarray(got), BigInt(reply.length - got)));
    if (n <= 0) throw new Error(`reqrep ended its reply early (read returned ${n})`);
    got += n;
  }
  close(stdinWrite); // EOF: reqrep exits 0
  if (libc().syscall(SYS_wait4, BigInt(pid), 0n, 0n, 0n, 0n, 0n) < 0n) {
    throw new SyscallError("Cannot reap reqrep", "wait4", lastErrno());
  }
  close(stdoutRead);
  return performance.now() - start;
}

function quantile(sorted: number[], q: number): number {
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  return sorted[lower]! + (sorted[Math.ceil(position)]! - sorted[lower]!) * (position - lower);
}

loadTrampoline();
const samples = new Map<string, number[]>(PATHS.map(([name]) => [name, []]));
for (let i = 0; i < WARMUP + RUNS; i++) {
  // Rotate the order every round, so no path always runs right after another.
  for (let k = 0; k < PATHS.length; k++) {
    const [name, spawn] = PATHS[(i + k) % PATHS.length]!;
    const ms = once(spawn);
    if (i >= WARMUP) samples.get(name)!.push(ms);
  }
}

console.log(
  `spawn -> round trip -> reaped, ${RUNS} runs each, interleaved (${Deno.build.arch}, Deno ${Deno.version.deno})`,
);
console.log("path                 median     p10     p90   (µs)");
for (const [name, values] of samples) {
  const sorted = values.sort((a, b) => a - b);
  const us = (q: number): string => (quantile(sorted, q) * 1000).toFixed(0).padStart(7);
  console.log(`${name.padEnd(19)} ${us(0.5)} ${us(0.1)} ${us(0.9)}`);
}
