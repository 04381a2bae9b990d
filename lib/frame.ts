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
  #buffer: Uint8Array = new Uint8Array(0);

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
    let need = 4;
    for (;;) {
      if (this.#buffer.length >= 4) {
        const length = new DataView(this.#buffer.buffer, this.#buffer.byteOffset).getUint32(0, true);
        if (length > MAX_FRAME_BYTES) {
          throw new RangeError(`Invalid frame: length ${length} is over ${MAX_FRAME_BYTES}`);
        }
        need = 4 + length;
        if (this.#buffer.length >= need) {
          const payload = this.#buffer.slice(4, need);
          this.#buffer = this.#buffer.subarray(need);
          return payload;
        }
      }
      const { value, done } = await this.#reader.read();
      if (done) {
        if (this.#buffer.length === 0) return null;
        throw new Error(`Truncated frame: the stream ended ${need - this.#buffer.length} bytes short`);
      }
      this.#buffer = this.#buffer.length === 0 ? value : concat(this.#buffer, value);
    }
  }

  /** Releases the stream (it stays open). */
  release(): void {
    this.#reader.releaseLock();
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
