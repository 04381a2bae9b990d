/**
 * Embedding a helper in your own tool: the helper's bytes are imported into
 * the program (so `deno compile` puts them inside the one executable), the
 * build for this machine is picked from `Deno.build.arch`, loaded once into a
 * sealed memfd, and started as many times as needed. Nothing is written to
 * disk and nothing is read from beside the program at run time.
 *
 * Run it:      deno run --allow-ffi examples/embed_helper.ts
 * Ship it:     deno compile --allow-ffi --output my-tool examples/embed_helper.ts
 *
 * In your own project, `deno add jsr:@umh/umh`, build your helper statically
 * for each architecture you ship (e.g. `gcc -static` and
 * `aarch64-linux-gnu-gcc -static`), and import those files instead of ours.
 * Imports `with { type: "bytes" }` need `"unstable": ["raw-imports"]` in
 * deno.json (or `--unstable-raw-imports`).
 *
 * @module
 */

import { forkUsermodeBlob, loadBlob } from "@umh/umh";
// Our `cat` helper (blobs/cat.c: copies stdin to stdout), built for both architectures.
import catX64 from "../blobs/cat.x86_64" with { type: "bytes" };
import catAarch64 from "../blobs/cat.aarch64" with { type: "bytes" };

const HELPER_BUILDS: Record<string, Uint8Array> = { x86_64: catX64, aarch64: catAarch64 };

const bytes = HELPER_BUILDS[Deno.build.arch];
if (bytes === undefined) throw new Error(`This tool carries no helper for ${Deno.build.arch}`);

// Load once: one sealed memfd, reused for every start. `/proc/<pid>/exe` of
// each helper reads "/memfd:my-cat (deleted)", so give it a meaningful name.
using blob = loadBlob(bytes, { name: "my-cat" });

const encoder = new TextEncoder();
const decoder = new TextDecoder();
for (const word of ["hello", "world"]) {
  // stdin and stdout are pipes; `await using` reaps the helper even if this throws.
  await using helper = forkUsermodeBlob(blob);
  const writer = helper.stdin.getWriter();
  await writer.write(encoder.encode(word));
  await writer.close(); // EOF: cat exits
  const { code, stdout } = await helper.output();
  console.log(`pid ${helper.pid} echoed ${JSON.stringify(decoder.decode(stdout))}, exit code ${code}`);
}
