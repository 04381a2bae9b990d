// Where /proc is not mounted: importing umh must not take Deno down (a static
// node:crypto import used to make Deno 2.9.6 panic at start-up there), and a
// spawn, which cannot work without /proc, must say so.

import assert from "node:assert/strict";
import { hasCommand, text } from "./test_util.ts";

/** Why a private mount namespace without /proc cannot be made here, or null. */
function whyNoNamespace(): string | null {
  if (!hasCommand("unshare") || !hasCommand("umount")) return "unshare or umount is not installed";
  const probe = new Deno.Command("unshare", {
    args: ["--mount", "--fork", "sh", "-c", "umount -l /proc && ! test -e /proc/self"],
    stdout: "null",
    stderr: "null",
  });
  return probe.outputSync().success ? null : "cannot unmount /proc in a new mount namespace (needs root)";
}

const why = whyNoNamespace();
if (why) console.log(`no_proc_test: skipping: ${why}`);

const SCRIPT = `
import { BlobCommand } from ${JSON.stringify(new URL("../lib/mod.ts", import.meta.url).href)};
console.log("imported");
try {
  await new BlobCommand(await Deno.readFile(${
  JSON.stringify(new URL("../blobs/reqrep.x86_64", import.meta.url).pathname)
})).output();
  console.log("spawned");
} catch (error) {
  console.log(String(error));
}
`;

Deno.test({
  name: "without /proc, importing umh works and a spawn fails with an error that names /proc",
  ignore: why !== null || Deno.build.arch !== "x86_64",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "umh_noproc_" });
    try {
      await Deno.writeTextFile(`${dir}/main.ts`, SCRIPT);
      const { code, stdout, stderr } = await new Deno.Command("unshare", {
        args: [
          "--mount",
          "--fork",
          "sh",
          "-c",
          'umount -l /proc && exec "$0" run -A "$1"',
          Deno.execPath(),
          `${dir}/main.ts`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const lines = text(stdout).trim().split("\n");
      assert.equal(code, 0, text(stderr));
      assert.equal(lines[0], "imported");
      assert.match(lines[1] ?? "", /^NotFound: .*ENOENT.*\/proc/); // named as Deno names ENOENT
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
