// encodeFrame and FrameReader: 4-byte little-endian length framing.

import assert from "node:assert/strict";
import { encodeFrame, FrameReader, MAX_FRAME_BYTES } from "../lib/mod.ts";
import { bytes, randomBytes, text } from "./test_util.ts";

/** A stream that yields `data` cut at `cuts` (offsets), one chunk per piece. */
function chunked(data: Uint8Array, cuts: number[]): ReadableStream<Uint8Array> {
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const cut of [...cuts, data.length]) {
    if (cut > start) pieces.push(data.slice(start, cut));
    start = Math.max(start, cut);
  }
  return ReadableStream.from(pieces);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

async function readFrames(stream: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const reader = new FrameReader(stream);
  const frames: Uint8Array[] = [];
  for (let frame = await reader.next(); frame !== null; frame = await reader.next()) frames.push(frame);
  return frames;
}

Deno.test("encodeFrame() prefixes the payload with its length, little-endian", () => {
  assert.deepEqual([...encodeFrame(new Uint8Array([7]))], [1, 0, 0, 0, 7]);
  assert.deepEqual([...encodeFrame(new Uint8Array(0))], [0, 0, 0, 0]);
  const big = encodeFrame(new Uint8Array(0x010203));
  assert.deepEqual([...big.subarray(0, 4)], [0x03, 0x02, 0x01, 0x00]);
  assert.equal(big.length, 4 + 0x010203);
});

Deno.test("encodeFrame() refuses a payload over MAX_FRAME_BYTES with a RangeError", () => {
  assert.equal(MAX_FRAME_BYTES, 16 * 1024 * 1024);
  assert.equal(encodeFrame(new Uint8Array(MAX_FRAME_BYTES)).length, MAX_FRAME_BYTES + 4);
  assert.throws(() => encodeFrame(new Uint8Array(MAX_FRAME_BYTES + 1)), RangeError);
});

Deno.test("FrameReader reads frames however the stream is chunked", async () => {
  const payloads = [bytes("hello"), new Uint8Array(0), bytes("x"), randomBytes(1000)];
  const wire = concat(...payloads.map((payload) => encodeFrame(payload)));
  // Every single cut point, then one byte per chunk, then everything in one chunk.
  const cutSets: number[][] = [[], [...Array(wire.length).keys()]];
  for (let cut = 1; cut < wire.length; cut += 1 + (cut >> 4)) cutSets.push([cut]);
  cutSets.push([2, 3, 9, 10, 11, 12, 13, 14, 500]);
  for (const cuts of cutSets) {
    const frames = await readFrames(chunked(wire, cuts));
    assert.deepEqual(frames, payloads, `cuts ${cuts.slice(0, 10).join(",")}`);
  }
});

Deno.test("FrameReader returns null at a clean end of stream, and keeps returning it", async () => {
  const reader = new FrameReader(ReadableStream.from([encodeFrame(bytes("only"))]));
  assert.equal(text((await reader.next())!), "only");
  assert.equal(await reader.next(), null);
  assert.equal(await reader.next(), null);
  const empty = new FrameReader(ReadableStream.from<Uint8Array>([]));
  assert.equal(await empty.next(), null);
});

Deno.test("FrameReader throws on a stream that ends inside a frame header", async () => {
  const reader = new FrameReader(ReadableStream.from([encodeFrame(bytes("ok")), new Uint8Array([5, 0])]));
  assert.equal(text((await reader.next())!), "ok");
  await assert.rejects(reader.next(), /Truncated frame/);
});

Deno.test("FrameReader throws on a stream that ends inside a frame payload", async () => {
  const frame = encodeFrame(bytes("truncated payload"));
  const reader = new FrameReader(chunked(frame.subarray(0, frame.length - 3), [4, 8]));
  await assert.rejects(reader.next(), /Truncated frame: the stream ended 3 bytes short/);
});

Deno.test("FrameReader refuses a length over MAX_FRAME_BYTES with a RangeError", async () => {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, MAX_FRAME_BYTES + 1, true);
  const reader = new FrameReader(ReadableStream.from([header, new Uint8Array(16)]));
  await assert.rejects(reader.next(), RangeError);
});

Deno.test("FrameReader.release() unlocks the stream", async () => {
  const stream = ReadableStream.from([encodeFrame(bytes("a")), encodeFrame(bytes("b"))]);
  const reader = new FrameReader(stream);
  assert.ok(stream.locked);
  assert.equal(text((await reader.next())!), "a");
  reader.release();
  assert.equal(stream.locked, false);
});
