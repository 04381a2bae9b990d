// Both spawn paths pass the core tests: the trampoline (the default where it
// loads) and glibc's posix_spawn (the fallback, chosen with UMH_SPAWN).

import assert from "node:assert/strict";

const CORE_TESTS = ["helper_test.ts", "command_test.ts", "bad_blob_test.ts", "blob_test.ts"]
  .map((name) => new URL(name, import.meta.url).pathname);

Deno.test("posix_spawn path (UMH_SPAWN=posix_spawn) passes the core helper, command and bad-blob tests", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--unstable-raw-imports", ...CORE_TESTS],
    env: { UMH_SPAWN: "posix_spawn", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, out.slice(-4000));
  assert.match(out, /ok \| \d+ passed \| 0 failed/);
});

Deno.test("the spawn path in use reports its own exec call for an unexecutable blob", async () => {
  const script = `
    import { BlobCommand } from "${new URL("../lib/mod.ts", import.meta.url).href}";
    try { new BlobCommand(new Uint8Array([1, 2, 3, 4])).spawn(); } catch (e) { console.log(e.syscall); }
  `;
  for (const [path, syscall] of [["posix_spawn", "posix_spawn"], ["default", "execveat"]] as const) {
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--unstable-raw-imports", script],
      env: { UMH_SPAWN: path, NO_COLOR: "1" },
      stderr: "inherit",
    }).output();
    assert.equal(new TextDecoder().decode(stdout).trim(), syscall, `UMH_SPAWN=${path}`);
  }
});
