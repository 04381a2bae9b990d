// Byte arrays given to BlobCommand / forkUsermodeBlob: loaded once when reused.

import { loadBlob, type UsermodeBlob } from "./blob.ts";

/** Anything umh can run: bytes (loaded once per reused array) or a loaded blob. */
export type BlobSource = Uint8Array | UsermodeBlob;

// An array seen a second time is kept loaded for as long as it lives, so a
// compiled-in blob started again and again is copied into a memfd twice in
// all. An array seen once gets a memfd for that one spawn only: a program
// that reads a fresh array per spawn (`await Deno.readFile(p)` each time)
// must not pile up descriptors until the garbage collector runs.
const seen = new WeakSet<Uint8Array>();
const loaded = new WeakMap<Uint8Array, UsermodeBlob>();
const closeWhenCollected = new FinalizationRegistry<UsermodeBlob>((blob) => blob.close());

/** A loaded blob to spawn from; `temporary` ones are closed by the caller right after the spawn. */
export interface ResolvedBlob {
  readonly blob: UsermodeBlob;
  readonly temporary: boolean;
}

/** The loaded blob for `source`. */
export function resolveBlob(source: BlobSource): ResolvedBlob {
  if (!(source instanceof Uint8Array)) {
    if (source.closed) throw new TypeError(`Cannot spawn "${source.name}": the blob is closed`);
    return { blob: source, temporary: false };
  }
  const cached = loaded.get(source);
  if (cached !== undefined && !cached.closed) return { blob: cached, temporary: false };
  if (!seen.has(source)) {
    seen.add(source);
    return { blob: loadBlob(source), temporary: true };
  }
  const blob = loadBlob(source);
  loaded.set(source, blob);
  closeWhenCollected.register(source, blob);
  return { blob, temporary: false };
}
