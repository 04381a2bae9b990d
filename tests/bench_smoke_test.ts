// The benchmark still runs: a --quick pass of bench/compare.ts without Bun,
// the network or a C compiler. It asserts that every measurement is there,
// not how fast anything was (timing targets belong in bench/, not in tests).

import assert from "node:assert/strict";

Deno.test("deno task bench --quick measures every workload and prints the targets", async () => {
  const dir = await Deno.makeTempDir({ prefix: "umh_bench_" });
  try {
    const json = `${dir}/results.json`;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "bench/compare.ts", "--quick", "--no-bun", "--no-install", "--no-c", "--json", json],
      cwd: new URL("..", import.meta.url),
      env: { NO_COLOR: "1" },
    }).output();
    const out = new TextDecoder().decode(stdout);
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.match(out, /targets \(issue 6\):/);
    assert.match(out, /spawn latency umh \/ Deno\.Command/);
    const results = JSON.parse(await Deno.readTextFile(json));
    for (const key of ["latency", "rate", "pipe", "pipeByob", "blobSize", "scale", "denoCommandGrowth"]) {
      assert.ok(key in results, `results.${key}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
