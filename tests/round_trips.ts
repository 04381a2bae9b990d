// One spawn -> "!pid" request -> stdin closed -> output, from whichever
// thread or process imports this: tests that need many owners (Workers, a
// process on one CPU) run the same round trip through it.

import { blobFor } from "../blobs/mod.ts";
import { encodeFrame, forkUsermodeBlob, loadBlob, type UsermodeBlob } from "../lib/mod.ts";

const REQUEST = encodeFrame(new TextEncoder().encode("!pid"));

/** True when a reqrep helper answered "!pid" with its own pid and exited 0. */
export async function roundTrip(blob: UsermodeBlob): Promise<boolean> {
  const helper = forkUsermodeBlob(blob);
  const writer = helper.stdin.getWriter();
  await writer.write(REQUEST);
  await writer.close();
  const { success, stdout } = await helper.output();
  return success && new TextDecoder().decode(stdout.subarray(4)) === String(helper.pid);
}

/** `count` round trips one after another, `inFlight` at a time; how many answered. */
export async function roundTrips(count: number, inFlight = 1): Promise<number> {
  using blob = loadBlob(blobFor("reqrep"), { name: "reqrep" });
  let ok = 0;
  for (let done = 0; done < count; done += inFlight) {
    const batch = Array.from({ length: Math.min(inFlight, count - done) }, () => roundTrip(blob));
    ok += (await Promise.all(batch)).filter(Boolean).length;
  }
  return ok;
}
