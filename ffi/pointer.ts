// Pointer arrays for C (argv, envp), kept alive with the bytes they point at.

import { cString } from "./c_string.ts";

/** The address of `buffer`'s bytes, for a struct field or a raw syscall argument; 0 for an empty buffer. */
export function addressOf(buffer: BufferSource): bigint {
  if (buffer.byteLength === 0) return 0n;
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/**
 * A `char *const []` ending in NULL, and the one buffer that holds its strings.
 * Both must stay referenced until the C call that reads them returns: the
 * garbage collector does not see the raw addresses in `pointers`.
 */
export interface CStringArray {
  /** NULL-terminated array of pointers into `strings`; pass as `"buffer"`. */
  readonly pointers: BigUint64Array<ArrayBuffer>;
  /** Every string, NUL-terminated, back to back. */
  readonly strings: Uint8Array<ArrayBuffer>;
  /** The address of `pointers`, taken once: a buffer handed to C this way does not move. */
  readonly address: bigint;
}

/**
 * Packs `values` into one buffer and builds the pointer array over it.
 * `what(i)` names entry `i` in the `TypeError` for an embedded NUL.
 */
export function cStringArray(values: readonly string[], what: (i: number) => string): CStringArray {
  const encoded: Uint8Array[] = [];
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    const bytes = cString(values[i]!, what(i));
    encoded.push(bytes);
    total += bytes.length;
  }
  const strings = new Uint8Array(total || 1);
  const pointers = new BigUint64Array(values.length + 1);
  const base = total === 0 ? 0n : addressOf(strings);
  let offset = 0;
  for (let i = 0; i < encoded.length; i++) {
    const bytes = encoded[i]!;
    strings.set(bytes, offset);
    pointers[i] = base + BigInt(offset);
    offset += bytes.length;
  }
  pointers[values.length] = 0n;
  return { pointers, strings, address: addressOf(pointers) };
}

/** Reads a NULL-terminated `char **` (such as `environ`) into strings. */
export function readCStringArray(pointer: Deno.PointerValue): string[] {
  const out: string[] = [];
  if (pointer === null) return out;
  const view = new Deno.UnsafePointerView(pointer);
  for (let offset = 0;; offset += 8) {
    const entry = view.getPointer(offset);
    if (entry === null) return out;
    out.push(Deno.UnsafePointerView.getCString(entry));
  }
}
