// `deno bench` view of the spawn latency (issue 6): one spawn → framed
// request/reply → stdin closed → EOF → reaped, for umh and Deno.Command of
// the same binary. bench/compare.ts is the full side-by-side comparison.
//
//   deno bench --allow-ffi --allow-read --allow-write --allow-run bench/spawn_bench.ts

import { blobFor } from "../blobs/mod.ts";
import { forkUsermodeBlob, loadBlob } from "../lib/mod.ts";
import { pipeThroughput, roundTrip } from "./workloads.ts";

const reqrep = loadBlob(blobFor("reqrep"), { name: "reqrep" });
const cat = loadBlob(blobFor("cat"), { name: "cat" });
const dir = Deno.makeTempDirSync({ prefix: "umh-bench-" });
const reqrepPath = `${dir}/reqrep`;
const catPath = `${dir}/cat`;
Deno.writeFileSync(reqrepPath, blobFor("reqrep"), { mode: 0o755 });
Deno.writeFileSync(catPath, blobFor("cat"), { mode: 0o755 });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const PIPE_BYTES = 16 * 2 ** 20;
const piped = { stdin: "piped", stdout: "piped", stderr: "inherit" } as const;

Deno.bench({ name: "umh forkUsermodeBlob", group: "spawn round trip", baseline: true }, async () => {
  await roundTrip(() => forkUsermodeBlob(reqrep));
});

Deno.bench({ name: "Deno.Command", group: "spawn round trip" }, async () => {
  await roundTrip(() => new Deno.Command(reqrepPath, piped).spawn());
});

Deno.bench({ name: "umh 16 MiB through cat", group: "pipe", baseline: true }, async () => {
  await pipeThroughput(() => forkUsermodeBlob(cat), PIPE_BYTES, 2 ** 20);
});

Deno.bench({ name: "Deno.Command 16 MiB through cat", group: "pipe" }, async () => {
  await pipeThroughput(() => new Deno.Command(catPath, piped).spawn(), PIPE_BYTES, 2 ** 20);
});
