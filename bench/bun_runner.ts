// The Bun side of bench/compare.ts: run by `bun bench/bun_runner.ts`, it
// starts the same helper binaries with Bun.spawn. It stays up for the whole
// benchmark so that its rounds interleave with the Deno side's, and takes one
// JSON command per stdin line, answering one JSON line on stdout:
//   {"op":"latency","count":30}                    → {"samples":[µs, ...]}
//   {"op":"latency","count":30,"path":"/x/reqrep"}  → the same, with another reqrep binary
//   {"op":"rate","count":300,"inFlight":8}          → {"perSecond":n}
//   {"op":"pipe","bytes":1073741824,"chunk":1048576} → {"bytesPerSecond":n}
// Its first line is {"ready":true,"version":"<bun version>"}. EOF on stdin ends it.
//
// The workloads mirror bench/workloads.ts step for step, with Bun's own
// stdin sink (FileSink) as idiomatic Bun code would use it.

import process from "node:process";
import { createInterface } from "node:readline";
// Plain TypeScript with no Deno API, so Bun runs the very same reads and frame.
import { drain, readAtLeast, REQUEST } from "./workloads.ts";

interface FileSink {
  write(chunk: Uint8Array): number;
  flush(): number | Promise<number>;
  end(): number | Promise<number>;
}

interface Subprocess {
  readonly stdin: FileSink;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
}

declare const Bun: {
  readonly version: string;
  spawn(cmd: string[], options: { stdin: "pipe"; stdout: "pipe"; stderr: "inherit" }): Subprocess;
};

interface Command {
  readonly op: "latency" | "rate" | "pipe";
  readonly count?: number;
  readonly inFlight?: number;
  readonly bytes?: number;
  readonly chunk?: number;
  /** latency only: another reqrep binary. */
  readonly path?: string;
}

const [reqrepPath, catPath] = process.argv.slice(2);

function start(path: string): Subprocess {
  return Bun.spawn([path], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
}

async function roundTrip(path = reqrepPath!): Promise<number> {
  const t0 = performance.now();
  const child = start(path);
  const reader = child.stdout.getReader();
  child.stdin.write(REQUEST);
  await child.stdin.flush();
  const got = await readAtLeast(reader, REQUEST.length);
  await child.stdin.end();
  const rest = await drain(reader);
  const code = await child.exited;
  const elapsed = performance.now() - t0;
  if (code !== 0 || got + rest !== REQUEST.length) {
    throw new Error(`Round trip failed: exit code ${code}, ${got + rest} reply bytes`);
  }
  return elapsed * 1000;
}

async function latency(count: number, path?: string): Promise<{ samples: number[] }> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await roundTrip(path));
  return { samples };
}

async function rate(count: number, inFlight: number): Promise<{ perSecond: number }> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next++ < count) await roundTrip();
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { perSecond: count / ((performance.now() - t0) / 1000) };
}

async function pipe(bytes: number, chunkBytes: number): Promise<{ bytesPerSecond: number }> {
  const chunk = new Uint8Array(chunkBytes).fill(0x61);
  const t0 = performance.now();
  const child = start(catPath!);
  const writing = (async (): Promise<void> => {
    for (let sent = 0; sent < bytes; sent += chunkBytes) {
      child.stdin.write(sent + chunkBytes <= bytes ? chunk : chunk.subarray(0, bytes - sent));
      await child.stdin.flush();
    }
    await child.stdin.end();
  })();
  const received = await drain(child.stdout.getReader());
  await writing;
  const code = await child.exited;
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0 || received !== bytes) {
    throw new Error(`Pipe run failed: exit code ${code}, ${received} of ${bytes} bytes came back`);
  }
  return { bytesPerSecond: bytes / seconds };
}

function run(command: Command): Promise<object> {
  switch (command.op) {
    case "latency":
      return latency(command.count ?? 30, command.path);
    case "rate":
      return rate(command.count ?? 100, command.inFlight ?? 1);
    case "pipe":
      return pipe(command.bytes ?? 1 << 30, command.chunk ?? 1 << 20);
  }
}

function answer(value: object): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

answer({ ready: true, version: Bun.version });
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "") continue;
  try {
    answer(await run(JSON.parse(line) as Command));
  } catch (error) {
    answer({ error: error instanceof Error ? error.message : String(error) });
  }
}
