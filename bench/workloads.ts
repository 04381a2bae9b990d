// The timed workloads, written once for anything shaped like Deno.ChildProcess
// (UsermodeHelper and Deno.ChildProcess both are), so umh and Deno.Command run
// the very same JavaScript and differ only in how the child is started.

/** The part of a child handle the workloads use. */
export interface Child {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly status: Promise<{ readonly success: boolean; readonly code: number }>;
}

/** Starts one child of the helper under test. */
export type Start = () => Child;

const PAYLOAD = new TextEncoder().encode("ping");

/** One request frame for blobs/reqrep (4-byte little-endian length, then the payload). */
export const REQUEST: Uint8Array<ArrayBuffer> = frame(PAYLOAD);

/** reqrep echoes the payload, so the reply is the request's bytes. */
export const REPLY_BYTES = REQUEST.length;

function frame(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(4 + payload.length);
  new DataView(bytes.buffer).setUint32(0, payload.length, true);
  bytes.set(payload, 4);
  return bytes;
}

/** Reads until `n` bytes came, throwing at an early EOF. */
export async function readAtLeast(reader: ReadableStreamDefaultReader<Uint8Array>, n: number): Promise<number> {
  let got = 0;
  while (got < n) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Helper closed stdout after ${got} of ${n} reply bytes`);
    got += value.length;
  }
  return got;
}

/** Reads to EOF, returning the byte count. */
export async function drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<number> {
  let got = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return got;
    got += value.length;
  }
}

/**
 * One spawn → framed request/reply → stdin closed → stdout at EOF → exit
 * reaped. Returns the wall time in microseconds.
 */
export async function roundTrip(start: Start): Promise<number> {
  const t0 = performance.now();
  const child = start();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  await writer.write(REQUEST);
  const got = await readAtLeast(reader, REPLY_BYTES);
  await writer.close();
  const rest = await drain(reader);
  const status = await child.status;
  const elapsed = performance.now() - t0;
  if (!status.success || got + rest !== REPLY_BYTES) {
    throw new Error(`Round trip failed: exit code ${status.code}, ${got + rest} reply bytes`);
  }
  return elapsed * 1000;
}

/** `count` sequential round trips: their latencies in microseconds. */
export async function latencies(start: Start, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await roundTrip(start));
  return samples;
}

/** Completed round trips per second with `inFlight` of them running at once. */
export async function spawnRate(start: Start, count: number, inFlight: number): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next++ < count) await roundTrip(start);
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return count / ((performance.now() - t0) / 1000);
}

/** Reads to EOF with a BYOB reader into one reused buffer of `size` bytes, returning the byte count. */
export async function drainInto(stream: ReadableStream<Uint8Array>, size: number): Promise<number> {
  const reader = stream.getReader({ mode: "byob" });
  let buffer = new Uint8Array(size);
  let got = 0;
  for (;;) {
    const { value, done } = await reader.read(buffer);
    if (done) return got;
    got += value.length;
    buffer = new Uint8Array(value.buffer); // the read transferred it: same memory, new object
  }
}

/** How the pipe workload reads stdout: chunks the stream allocates, or one buffer of the reader's own. */
export type ReaderMode = "default" | "byob";

/**
 * Pushes `bytes` through a cat helper in `chunkBytes` writes while reading
 * its stdout concurrently (a BYOB reader reads into one `chunkBytes` buffer);
 * from spawn to reaped. Returns bytes per second.
 */
export async function pipeThroughput(
  start: Start,
  bytes: number,
  chunkBytes: number,
  mode: ReaderMode = "default",
): Promise<number> {
  const chunk = new Uint8Array(chunkBytes).fill(0x61);
  const t0 = performance.now();
  const child = start();
  const writing = (async (): Promise<void> => {
    const writer = child.stdin.getWriter();
    for (let sent = 0; sent < bytes; sent += chunkBytes) {
      await writer.write(sent + chunkBytes <= bytes ? chunk : chunk.subarray(0, bytes - sent));
    }
    await writer.close();
  })();
  const received = mode === "byob" ? await drainInto(child.stdout, chunkBytes) : await drain(child.stdout.getReader());
  await writing;
  const status = await child.status;
  const seconds = (performance.now() - t0) / 1000;
  if (!status.success || received !== bytes) {
    throw new Error(`Pipe run failed: exit code ${status.code}, ${received} of ${bytes} bytes came back`);
  }
  return bytes / seconds;
}
