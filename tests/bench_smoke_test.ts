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

Deno.test("bench/c_floor.c times the helper alone and one CPUID, and fails on a helper that fails", async (t) => {
  const { buildCFloor, cpuidMicros, helperStartLatencies } = await import("../bench/contenders.ts");
  const { blobFor } = await import("../blobs/mod.ts");
  const dir = await Deno.makeTempDir({ prefix: "umh_cfloor_" });
  try {
    const floor = await buildCFloor(dir);
    if (floor.path === null) {
      console.log(`skipped: ${floor.reason}`);
      return;
    }
    const reqrep = `${dir}/reqrep`;
    await Deno.writeFile(reqrep, blobFor("reqrep"), { mode: 0o755 });

    await t.step("startup: one positive sample per spawn of a helper that exits 0 at EOF", async () => {
      const samples = await helperStartLatencies(floor.path, reqrep, 5);
      assert.equal(samples.length, 5);
      for (const us of samples) assert.ok(us > 0 && us < 10_000_000, `sample ${us}`);
    });

    await t.step("startup: a helper that exits 1 fails the run", async () => {
      await assert.rejects(helperStartLatencies(floor.path, "/bin/false", 1), /c_floor startup \/bin\/false 1 failed/);
    });

    await t.step("cpuid: a positive time on x86_64, null elsewhere", async () => {
      const us = await cpuidMicros(floor.path);
      if (Deno.build.arch === "x86_64") assert.ok(typeof us === "number" && us > 0, `cpuid ${us}`);
      else assert.equal(us, null);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bench's balanced orders put every contender after every other equally often", async () => {
  const { balancedOrders } = await import("../bench/stats.ts");
  for (let n = 1; n <= 7; n++) {
    const orders = balancedOrders(n);
    assert.equal(orders.length, n === 1 ? 1 : n % 2 === 0 ? n : 2 * n, `orders for ${n}`);
    const after = new Map<string, number>();
    const leads = new Array<number>(n).fill(0);
    for (const order of orders) {
      assert.deepEqual([...order].sort((a, b) => a - b), [...Array(n).keys()], `each of ${n} once per order`);
      leads[order[0]!]!++;
      for (let i = 1; i < n; i++) {
        const pair = `${order[i - 1]}>${order[i]}`;
        after.set(pair, (after.get(pair) ?? 0) + 1);
      }
    }
    assert.equal(after.size, n * (n - 1), `every ordered pair of ${n} occurs`);
    assert.equal(new Set(after.values()).size <= 1, true, `pairs of ${n} equally often: ${[...after.values()]}`);
    assert.equal(new Set(leads).size, 1, `each of ${n} leads equally often`);
  }
});
