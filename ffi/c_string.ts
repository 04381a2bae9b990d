// C strings: NUL-terminated UTF-8 bytes, sized by encoded length.

const encoder = new TextEncoder();

/**
 * `s` as a NUL-terminated C string. An embedded NUL would silently cut the
 * string in C, so it is a `TypeError` naming `what` (e.g. `args[2]`).
 */
export function cString(s: string, what: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) {
    throw new TypeError(`Invalid ${what}: it contains a NUL byte`);
  }
  return encoder.encode(s + "\0");
}

/** Reads the NUL-terminated string at `pointer`, or `""` for null. */
export function readCString(pointer: Deno.PointerValue): string {
  return pointer === null ? "" : new Deno.UnsafePointerView(pointer).getCString();
}
