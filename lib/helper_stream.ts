// A helper's stdout or stderr as the stream type Deno.ChildProcess hands
// out: a byte stream (default or BYOB readers) that can also be read whole.

import { joinChunks } from "./status.ts";

const utf8 = new TextDecoder();

/**
 * A helper's stdout or stderr, as `Deno.SubprocessReadableStream`: a byte
 * stream, plus `text()`, `json()`, `bytes()` and `arrayBuffer()`, each of
 * which reads it to its end (and keeps it locked, as Deno's do).
 */
export class HelperReadableStream extends ReadableStream<Uint8Array<ArrayBuffer>>
  implements Deno.SubprocessReadableStream {
  /** A byte stream over `source` (`type: "bytes"`). */
  constructor(source: UnderlyingByteSource) {
    // The byte-source constructor is not among the ones a subclass with a
    // type argument sees; at run time this is exactly `new ReadableStream(source)`.
    super(source as unknown as UnderlyingDefaultSource<Uint8Array<ArrayBuffer>>);
  }

  /** All of the stream in one `ArrayBuffer`. */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await readAll(this);
    return bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
  }

  /** All of the stream in one `Uint8Array`. */
  bytes(): Promise<Uint8Array<ArrayBuffer>> {
    return readAll(this);
  }

  /** All of the stream parsed as JSON; `SyntaxError` when it is not JSON. */
  // deno-lint-ignore no-explicit-any -- Deno.SubprocessReadableStream.json() returns any
  async json(): Promise<any> {
    return JSON.parse(await this.text());
  }

  /** All of the stream decoded as UTF-8 (a leading BOM dropped, bad bytes replaced), as `Response.text()` does. */
  async text(): Promise<string> {
    return utf8.decode(await readAll(this));
  }
}

/**
 * Reads `stream` to its end. The reader keeps the lock, as Deno's output()
 * and collectors do: a second read then throws that the stream is locked
 * instead of returning nothing.
 */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return joinChunks(chunks);
    chunks.push(value);
  }
}
