// The framing the shipped request/reply helpers speak: a 4-byte little-endian
// length, then that many bytes (see blobs/reqrep.c).

/** Largest payload a frame may carry (16 MiB), as blobs/reqrep.c enforces. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * One frame: 4-byte little-endian length, then `payload`.
 *
 * @param payload The message.
 * @returns A new array holding header and payload.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./mod.ts";
 * console.log(encodeFrame(new Uint8Array([7]))); // Uint8Array(5) [1, 0, 0, 0, 7]
 * ```
 */
export function encodeFrame(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  if (payload.length > MAX_FRAME_BYTES) {
    throw new RangeError(`Cannot frame ${payload.length} bytes: a frame holds at most ${MAX_FRAME_BYTES}`);
  }
  const frame = new Uint8Array(4 + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length, true);
  frame.set(payload, 4);
  return frame;
}

/**
 * Reads whole frames from a byte stream, however the bytes were chunked.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameReader } from "./mod.ts";
 * const stream = ReadableStream.from([encodeFrame(new Uint8Array([1, 2]))]);
 * const frames = new FrameReader(stream);
 * console.log(await frames.next()); // Uint8Array(2) [1, 2]
 * ```
 */
export class FrameReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Unconsumed chunks, oldest first; the first may be partly consumed (`#offset`). */
  #chunks: Uint8Array[] = [];
  #offset = 0;
  #buffered = 0;

  /**
   * Wraps `stream`, which this reader locks.
   *
   * @param stream The bytes to read.
   */
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /**
   * The next frame's payload, or `null` at a clean end of stream.
   * Throws when the stream ends inside a frame (a short read is fatal).
   */
  async next(): Promise<Uint8Array | null> {
    if (!await this.#fill(4)) return null;
    const header = this.#take(4);
    const length = new DataView(header.buffer, header.byteOffset, 4).getUint32(0, true);
    if (length > MAX_FRAME_BYTES) throw new RangeError(`Invalid frame: length ${length} is over ${MAX_FRAME_BYTES}`);
    if (!await this.#fill(length)) {
      throw new Error(`Truncated frame: the stream ended ${length - this.#buffered} bytes short`);
    }
    return this.#take(length);
  }

  /** Releases the stream (it stays open). */
  release(): void {
    this.#reader.releaseLock();
  }

  /** Reads until `n` bytes are buffered: false at a clean end with none, throws at an end mid-way. */
  async #fill(n: number): Promise<boolean> {
    while (this.#buffered < n) {
      const { value, done } = await this.#reader.read();
      if (done) {
        if (this.#buffered === 0) return false;
        if (n === 4) throw new Error(`Truncated frame: the stream ended ${n - this.#buffered} bytes short`);
        return false;
      }
      if (value.length === 0) continue;
      this.#chunks.push(value);
      this.#buffered += value.length;
    }
    return true;
  }

  /** Removes `n` buffered bytes into a new array (one copy). */
  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[0]!;
    if (first.length - this.#offset >= n) {
      const out = first.slice(this.#offset, this.#offset + n);
      this.#advance(n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const part = Math.min(n - filled, chunk.length - this.#offset);
      out.set(chunk.subarray(this.#offset, this.#offset + part), filled);
      filled += part;
      this.#advance(part);
    }
    return out;
  }

  #advance(n: number): void {
    this.#offset += n;
    this.#buffered -= n;
    if (this.#offset === this.#chunks[0]!.length) {
      this.#chunks.shift();
      this.#offset = 0;
    }
  }
}
