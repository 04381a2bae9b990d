// ffi/libc.ts prefault(): the fresh read buffers of bulk pipes get their pages
// mapped in one call instead of one page fault each (checked with mincore(2)).

import assert from "node:assert/strict";
import { prefault } from "../ffi/libc.ts";

const PAGE = 4096n;
const libc = Deno.dlopen("libc.so.6", {
  mincore: { parameters: ["pointer", "usize", "buffer"], result: "i32" },
});

/** How many of the whole pages inside `buffer` are resident. */
function residentPages(buffer: Uint8Array): { resident: number; total: number } {
  const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
  const start = (address + PAGE - 1n) & ~(PAGE - 1n);
  const end = (address + BigInt(buffer.byteLength)) & ~(PAGE - 1n);
  const total = Number((end - start) / PAGE);
  const vector = new Uint8Array(total);
  assert.equal(libc.symbols.mincore(Deno.UnsafePointer.create(start), end - start, vector), 0, "mincore failed");
  return { resident: vector.reduce((sum, flags) => sum + (flags & 1), 0), total };
}

Deno.test("prefault maps every whole page of a fresh buffer and leaves its bytes zero", () => {
  // Larger than glibc's largest mmap threshold (32 MiB): fresh pages nobody has touched.
  const buffer = new Uint8Array(64 * 1024 * 1024 + 100);
  const before = residentPages(buffer);
  assert.ok(before.resident < before.total / 2, `${before.resident} of ${before.total} pages resident before`);
  prefault(buffer);
  const after = residentPages(buffer);
  assert.equal(after.resident, after.total);
  for (let i = 0; i < buffer.length; i += 4093) assert.equal(buffer[i], 0, `byte ${i}`);
});

Deno.test("prefault of a buffer smaller than a page does nothing and does not throw", () => {
  const small = new Uint8Array(100);
  prefault(small);
  assert.ok(small.every((byte) => byte === 0));
});
