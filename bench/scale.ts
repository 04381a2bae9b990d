// Scale section of bench/compare.ts (runScale), run in a fresh Deno process (with
// --v8-flags=--expose-gc) so that its RSS is not the rest of the benchmark's:
// RSS and threads after 100 and after N spawns, then a request/reply round
// trip and a full spawn with 1 and with 500 other helpers alive. Prints one
// JSON object on stdout.
//
//   deno run --allow-ffi --allow-read --v8-flags=--expose-gc bench/scale.ts [--spawns N] [--live N]
//
// With --deno-command PATH (and --allow-run=PATH) it measures only the RSS
// growth, of Deno.Command starting PATH in the same pattern: the runtime's own
// growth over the same spawns, beside which umh's is read.

import { parseArgs } from "node:util";
import { blobFor } from "../blobs/mod.ts";
import { forkUsermodeBlob, loadBlob, type UsermodeHelper } from "../lib/mod.ts";
import { ownerStatus, trimMalloc } from "./proc.ts";
import { summarize, type Summary } from "./stats.ts";
import { drain, latencies, readAtLeast, REPLY_BYTES, REQUEST, spawnRate, type Start } from "./workloads.ts";

/** RSS of the owner (KiB) along a run of spawns. */
export interface Growth {
  readonly gcAvailable: boolean;
  readonly spawns: number;
  readonly rssAfter100: number;
  /** RSS after min(1000, spawns): the growth from here on is what a leak would add. */
  readonly rssAfter1000: number;
  readonly rssAfterAll: number;
  /** The same three, anonymous memory only (RssAnon): without the executable's code pages. */
  readonly rssAnonAfter100: number;
  readonly rssAnonAfter1000: number;
  readonly rssAnonAfterAll: number;
}

/** What the scale run measured. Memory in KiB, latencies in µs. */
export interface ScaleResult extends Growth {
  readonly threadsBefore: number;
  readonly threadsAfter100: number;
  readonly threadsAfterAll: number;
  readonly live: number;
  readonly threadsWith1Live: number;
  readonly threadsWithManyLive: number;
  readonly rssWithManyLive: number;
  readonly requestWith1Live: Summary;
  readonly requestWithManyLive: Summary;
  readonly spawnWith1Live: Summary;
  readonly spawnWithManyLive: Summary;
}

type Gc = (options?: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;
const gc = (globalThis as { gc?: Gc }).gc;
const BENCH_DIR = new URL(".", import.meta.url).pathname;

interface OwnerStats {
  readonly threads: number;
  readonly rss: number;
  readonly rssAnon: number;
}

/**
 * Threads, VmRSS and RssAnon (KiB) of this process, after V8's
 * memory-reducing full GC when --expose-gc gave us one (a plain gc() leaves
 * the young generation at whatever size the allocation rate grew it to, tens
 * of MiB after a burst of spawns) and after malloc_trim: capacity kept for
 * later is not a leak.
 */
function ownerStats(): OwnerStats {
  gc?.({ type: "major", execution: "sync", flavor: "last-resort" });
  trimMalloc();
  return ownerStatus();
}

/** A started reqrep helper that answered once and keeps a read pending on its stdout, as a real client would. */
interface Live {
  readonly helper: UsermodeHelper;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
}

async function request(live: Live): Promise<number> {
  const t0 = performance.now();
  await live.writer.write(REQUEST);
  await readAtLeast(live.reader, REPLY_BYTES);
  return (performance.now() - t0) * 1000;
}

async function startLive(start: () => UsermodeHelper): Promise<Live> {
  const helper = start();
  const live = { helper, writer: helper.stdin.getWriter(), reader: helper.stdout.getReader() };
  await request(live);
  return live;
}

async function stopLive(live: Live): Promise<void> {
  await live.writer.close();
  await drain(live.reader);
  await live.helper.status;
}

async function requests(live: Live, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await request(live));
  return samples;
}

/** 100 spawns one at a time, then up to 1000 and up to `spawns` four at a time; stats after each leg. */
async function growth(
  start: Start,
  spawns: number,
): Promise<{ growth: Growth; after100: OwnerStats; afterAll: OwnerStats }> {
  await latencies(start, 100);
  const after100 = ownerStats();
  const middle = Math.min(1000, spawns);
  await spawnRate(start, middle - 100, 4);
  const after1000 = ownerStats();
  await spawnRate(start, spawns - middle, 4);
  const afterAll = ownerStats();
  return {
    growth: {
      gcAvailable: gc !== undefined,
      spawns,
      rssAfter100: after100.rss,
      rssAfter1000: after1000.rss,
      rssAfterAll: afterAll.rss,
      rssAnonAfter100: after100.rssAnon,
      rssAnonAfter1000: after1000.rssAnon,
      rssAnonAfterAll: afterAll.rssAnon,
    },
    after100,
    afterAll,
  };
}

/** Runs the scale measurements in this process. */
export async function measureScale(spawns: number, liveCount: number, samples: number): Promise<ScaleResult> {
  const blob = loadBlob(blobFor("reqrep"), { name: "reqrep" });
  const start = (): UsermodeHelper => forkUsermodeBlob(blob);
  const before = ownerStats();
  const { growth: grown, after100, afterAll } = await growth(start, spawns);

  const keep = await startLive(start);
  const with1 = ownerStats();
  const requestWith1Live = summarize(await requests(keep, samples * 4));
  const spawnWith1Live = summarize(await latencies(start, samples));

  const others: Live[] = [];
  for (let i = 0; i < liveCount; i++) others.push(await startLive(start));
  const pending = others.map((live) => live.reader.read()); // every stdout watched, as in real use
  const withMany = ownerStats();
  const requestWithManyLive = summarize(await requests(keep, samples * 4));
  const spawnWithManyLive = summarize(await latencies(start, samples));
  // EOF on stdin ends each helper; the pending reads then see EOF too.
  await Promise.all(others.map((live) => live.writer.close()));
  await Promise.all(pending);
  await Promise.all(others.map((live) => live.helper.status));
  await stopLive(keep);
  blob.close();

  return {
    ...grown,
    threadsBefore: before.threads,
    threadsAfter100: after100.threads,
    threadsAfterAll: afterAll.threads,
    live: liveCount,
    threadsWith1Live: with1.threads,
    threadsWithManyLive: withMany.threads,
    rssWithManyLive: withMany.rss,
    requestWith1Live,
    requestWithManyLive,
    spawnWith1Live,
    spawnWithManyLive,
  };
}

/** The RSS growth of Deno.Command starting `path` (stdin and stdout piped), in the same pattern as umh's. */
export async function measureDenoCommandGrowth(path: string, spawns: number): Promise<Growth> {
  const start = (): Deno.ChildProcess =>
    new Deno.Command(path, { stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn();
  ownerStats(); // the same GC and malloc_trim before the first spawn as measureScale's "before"
  return (await growth(start, spawns)).growth;
}

/** Runs this file in a fresh Deno process with --expose-gc and returns the JSON it printed. */
async function runFresh<T>(permissions: string[], args: string[]): Promise<T> {
  const { success, stdout } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...permissions,
      "--v8-flags=--expose-gc",
      "--config",
      `${BENCH_DIR}../deno.json`,
      `${BENCH_DIR}scale.ts`,
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`bench/scale.ts ${args.join(" ")} failed`);
  return JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
}

/** The scale measurements of umh, in a fresh process. */
export function runScale(spawns: number, live: number): Promise<ScaleResult> {
  return runFresh(["--allow-ffi", "--allow-read"], ["--spawns", String(spawns), "--live", String(live)]);
}

/** Deno.Command's RSS growth over the same spawns of `path`, in a fresh process. */
export function runDenoCommandGrowth(path: string, spawns: number): Promise<Growth> {
  return runFresh(
    ["--allow-ffi", "--allow-read", `--allow-run=${path}`],
    ["--spawns", String(spawns), "--deno-command", path],
  );
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      spawns: { type: "string", default: "10000" },
      live: { type: "string", default: "500" },
      "deno-command": { type: "string" },
    },
  });
  const spawns = Number(values.spawns);
  const path = values["deno-command"];
  const result = path === undefined
    ? await measureScale(spawns, Number(values.live), 50)
    : await measureDenoCommandGrowth(path, spawns);
  console.log(JSON.stringify(result));
}
