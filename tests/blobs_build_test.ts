// tools/build_blobs.sh --check: the committed helper binaries match their sources.

import assert from "node:assert/strict";
import { hasCommand, ROOT, text } from "./test_util.ts";

const HAS_CC = hasCommand("cc") || hasCommand("gcc");
if (!HAS_CC) console.log("skipping blobs_build_test: no C compiler (cc or gcc) on PATH");
const HAS_BASH = hasCommand("bash");
if (!HAS_BASH) console.log("skipping blobs_build_test: bash is missing");

Deno.test({
  name: "tools/build_blobs.sh --check finds the committed binaries up to date",
  ignore: !HAS_CC || !HAS_BASH,
  fn: async () => {
    const env: Record<string, string> = {};
    if (!hasCommand("cc") && hasCommand("gcc")) env.CC = "gcc";
    const output = await new Deno.Command("bash", {
      args: ["tools/build_blobs.sh", "--check"],
      cwd: ROOT,
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const report = `${text(output.stdout)}${text(output.stderr)}`;
    if (report.includes("not found")) console.log(report.trim()); // e.g. no aarch64 cross compiler
    assert.equal(output.code, 0, report);
    assert.match(text(output.stdout), /blobs up to date/);
  },
});
