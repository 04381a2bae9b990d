/**
 * A supervised helper: `UsermodeDriver` starts a request/reply helper from
 * memory, sends it framed requests one at a time, and restarts it (with
 * backoff, within a budget) when it dies, the way the kernel's
 * `usermode_driver.c` looks after bpfilter. Here the helper is made to crash
 * once, and the next request is served by its replacement.
 *
 * Run it:  deno run --allow-ffi examples/supervised_helper.ts
 *
 * Your helper must speak the framing of `blobs/reqrep.c`: each message is a
 * 4-byte little-endian length and that many bytes, on stdin and stdout; it
 * exits 0 at EOF on stdin and logs only to stderr.
 *
 * @module
 */

import { HelperDiedError, UsermodeDriver } from "@umh/umh";
import { blobFor } from "../blobs/mod.ts"; // your own bytes imports, picked by Deno.build.arch

const encoder = new TextEncoder();
const decoder = new TextDecoder();

await using driver = new UsermodeDriver(blobFor("reqrep"), {
  name: "reqrep",
  requestTimeoutMs: 5_000, // a request with no reply by then kills the helper
  maxRestarts: 3, // more restarts than this within restartWindowMs: the driver stays down
  backoffInitialMs: 10, // doubled for each consecutive failure
});
for (const type of ["start", "exit", "restart"]) {
  driver.addEventListener(type, (event) => {
    const { pid, status } = (event as CustomEvent).detail;
    console.log(`[${type}] pid ${pid}${status ? `, code ${status.code} signal ${status.signal}` : ""}`);
  });
}

async function ask(text: string): Promise<string> {
  return decoder.decode(await driver.request(encoder.encode(text)));
}

await driver.start();
console.log(`reply: ${await ask("hello")}`);
try {
  await ask("!crash"); // the helper kills itself with SIGSEGV
} catch (error) {
  if (!(error instanceof HelperDiedError)) throw error;
  console.log(`request failed: ${error.message}`);
}
console.log(`reply: ${await ask("hello again")} (after ${driver.restarts} restart)`);
