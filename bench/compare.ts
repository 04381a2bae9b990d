// `deno task bench`: umh against Deno.Command and Bun.spawn, side by side and
// interleaved, on the same helper binaries (issue 6). Progress goes to
// stderr; the table and the targets (its last lines) to stdout; all numbers
// to bench/results.json.
//
//   deno task bench [--quick] [--json PATH] [--no-bun] [--no-install] [--no-c] [--strict]
//
// --quick: a smoke run in well under 30 s (fewer spawns, 64 MiB through cat).
// The "C floor" column (bench/c_floor.c, built with the machine's cc when
// there is one) is the same work in plain C: what the machine allows, not a
// target. "C memfd" is the C floor running from memory (the helper in a
// sealed memfd, started with vfork + execveat as umh's trampoline starts it):
// its gap to "C floor" is what executing a memfd costs here.
// --strict: exit 1 when a target fails (by default only errors fail the run).
// Where musl-gcc is installed (and not --no-c), spawn latency is measured a
// second time with reqrep linked against musl (see buildMuslReqrep).

import { parseArgs } from "node:util";
import { blobFor } from "../blobs/mod.ts";
import { forkUsermodeBlob, loadBlob, type UsermodeBlob } from "../lib/mod.ts";
import { BunRunner, findBun } from "./bun.ts";
import {
  buildCFloor,
  buildMuslReqrep,
  type Built,
  bunContender,
  cFloorContender,
  cMemfdContender,
  type Contender,
  cpuidMicros,
  denoContender,
  helperStartLatencies,
  umhContender,
} from "./contenders.ts";
import { loadAverage, machine } from "./proc.ts";
import { evaluate, formatReport, type Results } from "./report.ts";
import { runDenoCommandGrowth, runScale } from "./scale.ts";
import { balancedOrders, summarize } from "./stats.ts";
import { latencies } from "./workloads.ts";

const FULL = {
  // Round trips per contender before anything is timed. V8 is still compiling
  // the spawn path for the first ~250 (--trace-opt: 299 optimized compiles in
  // umh's first 250 round trips, 0-11 per 250 after), and the runs should
  // measure the steady state, not the tier-up.
  warmup: 300,
  latencyRounds: 10,
  latencyPerRound: 30,
  rateRounds: 3,
  ratePerRound: { 1: 100, 8: 200 },
  pipeBytes: 2 ** 30,
  pipeRuns: 5,
  blobRounds: 10,
  blobPerRound: 30,
  scaleSpawns: 10_000,
  scaleLive: 500,
};

const QUICK: typeof FULL = {
  warmup: 5,
  latencyRounds: 3,
  latencyPerRound: 10,
  rateRounds: 1,
  ratePerRound: { 1: 20, 8: 40 },
  pipeBytes: 64 * 2 ** 20,
  pipeRuns: 1,
  blobRounds: 3,
  blobPerRound: 10,
  scaleSpawns: 500,
  scaleLive: 500,
};

const PIPE_CHUNK = 2 ** 20;
const PIPE_WARMUP_BYTES = 64 * 2 ** 20;
const PADDED_BYTES = 64 * 2 ** 20;
const BENCH_DIR = new URL(".", import.meta.url).pathname;

function progress(message: string): void {
  console.error(`bench: ${message}`);
}

/** The order of `items` for `round`: the rounds cycle through {@linkcode balancedOrders}. */
function inOrder<T>(items: readonly T[], round: number): T[] {
  const orders = balancedOrders(items.length);
  return orders[round % orders.length]!.map((i) => items[i]!);
}

async function writeExecutable(dir: string, name: string, bytes: Uint8Array): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, bytes, { mode: 0o755 });
  return path;
}

/**
 * Spawn latency of every contender in at least `minRounds` interleaved
 * rounds (whole cycles of the balanced orders), reported to the progress
 * line as `what`: the samples' summary, and the median over rounds of umh's
 * round median over each contender's (robust to load that drifts between
 * rounds).
 */
async function latencyRounds(
  what: string,
  contenders: Contender[],
  minRounds: number,
  perRound: number,
): Promise<Pick<Results, "latency" | "latencyRoundRatio">> {
  const cycle = balancedOrders(contenders.length).length;
  const rounds = Math.ceil(minRounds / cycle) * cycle;
  progress(`${what}: ${rounds} interleaved rounds of ${perRound}`);
  const names = contenders.map((c) => c.name);
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const pairedRatios: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < rounds; round++) {
    const roundMedian: Record<string, number> = {};
    for (const c of inOrder(contenders, round)) {
      const got = await c.latency(perRound);
      samples[c.name]!.push(...got);
      roundMedian[c.name] = summarize(got).median;
    }
    for (const n of names) pairedRatios[n]!.push(roundMedian.umh! / roundMedian[n]!);
  }
  return {
    latency: Object.fromEntries(names.map((n) => [n, summarize(samples[n]!)])),
    latencyRoundRatio: Object.fromEntries(names.map((n) => [n, summarize(pairedRatios[n]!).median])),
  };
}

type PipeRun = (c: Contender) => ((bytes: number, chunkBytes: number) => Promise<number>) | undefined;

/**
 * Pipe throughput of every contender `run` gives a way to measure: one
 * warm-up (the first run of each pays for growing its heaps), then `runs`
 * interleaved runs of `bytes`.
 */
async function pipeRounds(
  contenders: Contender[],
  run: PipeRun,
  runs: number,
  bytes: number,
): Promise<Results["pipe"]> {
  const measured = contenders.filter((c) => run(c) !== undefined);
  for (const c of measured) await run(c)!(Math.min(bytes, PIPE_WARMUP_BYTES), PIPE_CHUNK);
  const samples: Record<string, number[]> = Object.fromEntries(measured.map((c) => [c.name, []]));
  for (let round = 0; round < runs; round++) {
    for (const c of inOrder(measured, round)) samples[c.name]!.push(await run(c)!(bytes, PIPE_CHUNK));
  }
  return Object.fromEntries(measured.map((c) => [c.name, {
    bytes,
    bytesPerSecond: summarize(samples[c.name]!).median,
    runs: samples[c.name]!,
  }]));
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "string", default: `${BENCH_DIR}results.json` },
      "no-bun": { type: "boolean", default: false },
      "no-install": { type: "boolean", default: false },
      strict: { type: "boolean", default: false },
      "no-c": { type: "boolean", default: false },
    },
  });
  const cfg = values.quick ? QUICK : FULL;
  const reqrepBytes = blobFor("reqrep");
  const catBytes = blobFor("cat");
  const skipped: Record<string, string> = {};

  const tempDir = await Deno.makeTempDir({ prefix: "umh-bench-" });
  let runner: BunRunner | undefined;
  try {
    const paths = {
      reqrep: await writeExecutable(tempDir, "reqrep", reqrepBytes),
      cat: await writeExecutable(tempDir, "cat", catBytes),
    };
    using reqrep = loadBlob(reqrepBytes, { name: "reqrep" });
    using cat = loadBlob(catBytes, { name: "cat" });
    const contenders: Contender[] = [umhContender({ reqrep, cat }), denoContender(paths)];

    let bunVersion: string | undefined;
    if (values["no-bun"]) {
      skipped["Bun.spawn"] = "--no-bun was given";
    } else {
      const bun = await findBun(!values["no-install"]);
      if (bun.path === null) {
        skipped["Bun.spawn"] = bun.reason;
      } else {
        progress(`using ${bun.path} (Bun ${bun.version})`);
        runner = await BunRunner.start(bun.path, paths.reqrep, paths.cat);
        bunVersion = bun.version;
        contenders.push(bunContender(runner));
      }
    }
    let floorPath: string | null = null;
    let musl: Built = { path: null, reason: "--no-c was given" };
    if (values["no-c"]) {
      skipped["C floor"] = "--no-c was given";
    } else {
      const floor = await buildCFloor(tempDir);
      if (floor.path === null) skipped["C floor"] = floor.reason;
      else contenders.push(cFloorContender(floorPath = floor.path, paths), cMemfdContender(floor.path, paths));
      musl = await buildMuslReqrep(tempDir);
    }
    if (musl.path === null) skipped["musl reqrep"] = musl.reason;
    for (const [name, reason] of Object.entries(skipped)) progress(`${name} skipped: ${reason}`);

    const info = machine(bunVersion);
    const names = contenders.map((c) => c.name);

    progress(`warm-up (${cfg.warmup} round trips each)`);
    for (const c of contenders) await c.latency(cfg.warmup);

    const latency = await latencyRounds("spawn latency", contenders, cfg.latencyRounds, cfg.latencyPerRound);

    let helperStart: Results["helperStart"];
    if (floorPath !== null) {
      progress("the helper alone: reqrep started with stdin at EOF, in C");
      const count = cfg.latencyRounds * cfg.latencyPerRound;
      helperStart = {
        glibc: summarize(await helperStartLatencies(floorPath, paths.reqrep, count)),
        musl: musl.path === null ? undefined : summarize(await helperStartLatencies(floorPath, musl.path, count)),
        cpuidMicros: await cpuidMicros(floorPath),
      };
    }

    let muslLatency: Results["muslLatency"];
    if (musl.path !== null) {
      const muslBytes = await Deno.readFile(musl.path);
      using muslBlob = loadBlob(muslBytes, { name: "reqrep" });
      const muslPaths = { reqrep: musl.path, cat: paths.cat };
      const muslContenders = [umhContender({ reqrep: muslBlob, cat }), denoContender(muslPaths)];
      if (runner) muslContenders.push(bunContender(runner, musl.path));
      if (floorPath !== null) {
        muslContenders.push(cFloorContender(floorPath, muslPaths), cMemfdContender(floorPath, muslPaths));
      }
      for (const c of muslContenders) await c.latency(cfg.warmup);
      muslLatency = {
        bytes: muslBytes.length,
        ...await latencyRounds(
          "spawn latency, reqrep linked against musl",
          muslContenders,
          cfg.latencyRounds,
          cfg.latencyPerRound,
        ),
      };
    }

    progress("spawn rate, 1 and 8 in flight");
    const rateRuns: Record<string, { 1: number[]; 8: number[] }> = Object.fromEntries(
      names.map((n) => [n, { 1: [], 8: [] }]),
    );
    for (const inFlight of [1, 8] as const) {
      for (let round = 0; round < cfg.rateRounds; round++) {
        for (const c of inOrder(contenders, round)) {
          if (c.rate) rateRuns[c.name]![inFlight].push(await c.rate(cfg.ratePerRound[inFlight], inFlight));
        }
      }
    }

    progress(`pipe throughput: ${cfg.pipeRuns} x ${cfg.pipeBytes / 2 ** 20} MiB through cat each, after a warm-up`);
    const pipe = await pipeRounds(contenders, (c) => c.pipe?.bind(c), cfg.pipeRuns, cfg.pipeBytes);
    progress(`pipe throughput with a BYOB reader (one ${PIPE_CHUNK / 2 ** 20} MiB buffer), where stdout supports it`);
    const pipeByob = await pipeRounds(contenders, (c) => c.pipeByob?.bind(c), cfg.pipeRuns, cfg.pipeBytes);
    if (runner) skipped["Bun.spawn BYOB"] = "Bun's stdout is not a byte stream: no BYOB reader";

    progress(`blob size: reqrep unpadded and padded to ${PADDED_BYTES / 2 ** 20} MiB`);
    const padded = new Uint8Array(PADDED_BYTES);
    padded.set(reqrepBytes);
    using bigBlob = loadBlob(padded, { name: "reqrep-padded" });
    const blobStarts: [string, UsermodeBlob][] = [["unpadded", reqrep], ["padded", bigBlob]];
    const blobSamples: Record<string, number[]> = { unpadded: [], padded: [] };
    await latencies(() => forkUsermodeBlob(bigBlob), cfg.warmup);
    for (let round = 0; round < cfg.blobRounds; round++) {
      for (const [name, blob] of inOrder(blobStarts, round)) {
        blobSamples[name]!.push(...await latencies(() => forkUsermodeBlob(blob), cfg.blobPerRound));
      }
    }

    progress(`scale: ${cfg.scaleSpawns} spawns, then ${cfg.scaleLive} live helpers (in a fresh Deno process)`);
    const scale = await runScale(cfg.scaleSpawns, cfg.scaleLive);
    progress(`scale: Deno.Command's RSS over the same ${cfg.scaleSpawns} spawns (in a fresh Deno process)`);
    const denoCommandGrowth = await runDenoCommandGrowth(paths.reqrep, cfg.scaleSpawns);

    info.loadAfter = loadAverage();
    const median = (xs: number[]): number => summarize(xs).median;
    const results: Results = {
      machine: info,
      mode: values.quick ? "quick" : "full",
      contenders: names,
      skipped,
      latency: latency.latency,
      latencyRoundRatio: latency.latencyRoundRatio,
      muslLatency,
      helperStart,
      rate: Object.fromEntries(
        names.filter((n) => rateRuns[n]![1].length > 0).map((n) => [n, {
          inFlight1: median(rateRuns[n]![1]),
          inFlight8: median(rateRuns[n]![8]),
        }]),
      ),
      pipe,
      pipeByob,
      blobSize: {
        unpadded: summarize(blobSamples.unpadded!),
        padded: summarize(blobSamples.padded!),
        paddedBytes: PADDED_BYTES,
      },
      scale,
      denoCommandGrowth,
    };
    results.targets = evaluate(results);
    await Deno.writeTextFile(values.json, JSON.stringify(results, null, 2) + "\n");
    progress(`wrote ${values.json}`);
    console.log(formatReport(results));
    return values.strict && results.targets.some((t) => t.pass === false) ? 1 : 0;
  } finally {
    if (runner) await runner[Symbol.asyncDispose]();
    await Deno.remove(tempDir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main());
