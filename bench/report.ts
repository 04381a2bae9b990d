// The results of one bench/compare.ts run: their JSON shape, the targets of
// issue 6 checked against them, and the printed table.

import type { Growth, ScaleResult } from "./scale.ts";
import type { Summary } from "./stats.ts";

/** Per-contender numbers, keyed by contender name (`umh`, `Deno.Command`, `Bun.spawn`). */
export type ByContender<T> = Record<string, T>;

/** Everything one run measured. Latencies in µs, rates per second, throughput in bytes/s. */
export interface Results {
  readonly machine: Record<string, string | number>;
  readonly mode: "full" | "quick";
  readonly contenders: string[];
  readonly skipped: Record<string, string>;
  readonly latency: ByContender<Summary>;
  /** Median over the interleaved rounds of umh's round median / this contender's round median. */
  readonly latencyRoundRatio: ByContender<number>;
  /** The same latency rounds with reqrep linked against musl (bench/contenders.ts buildMuslReqrep), where built. */
  readonly muslLatency?: {
    readonly bytes: number;
    readonly latency: ByContender<Summary>;
    readonly latencyRoundRatio: ByContender<number>;
  };
  /** The helper's own start and exit in C (bench/c_floor.c startup), which every contender's round trip contains. */
  readonly helperStart?: {
    readonly glibc: Summary;
    readonly musl?: Summary;
    /** One CPUID instruction, µs: static glibc's start runs dozens, each trapped by a VM. Null off x86. */
    readonly cpuidMicros: number | null;
  };
  readonly rate: ByContender<{ readonly inFlight1: number; readonly inFlight8: number }>;
  /** Default readers: every chunk a buffer the stream allocated. */
  readonly pipe: ByContender<{ readonly bytes: number; readonly bytesPerSecond: number; readonly runs: number[] }>;
  /** BYOB readers into one reused buffer, for the contenders whose stdout is a byte stream. */
  readonly pipeByob?: Results["pipe"];
  readonly blobSize: { readonly unpadded: Summary; readonly padded: Summary; readonly paddedBytes: number };
  readonly scale: ScaleResult;
  /** Deno.Command's RSS over the same spawns, in a process of its own: the runtime's growth. */
  readonly denoCommandGrowth?: Growth;
  targets?: Target[];
}

/** One target of issue 6. `pass` is null when it could not be measured (no Bun). */
export interface Target {
  readonly name: string;
  readonly value: number | null;
  readonly limit: string;
  readonly pass: boolean | null;
  readonly note?: string;
}

/** Threads with many helpers alive may exceed threads with one by at most this. */
export const THREAD_ALLOWANCE = 2;

function ratio(a: number | undefined, b: number | undefined): number | null {
  return a === undefined || b === undefined ? null : a / b;
}

function atMost(name: string, value: number | null, limit: number, note?: string): Target {
  return { name, value, limit: `<= ${limit.toFixed(2)}`, pass: value === null ? null : value <= limit, note };
}

function atLeast(name: string, value: number | null, limit: number, note?: string): Target {
  return { name, value, limit: `>= ${limit.toFixed(2)}`, pass: value === null ? null : value >= limit, note };
}

/** The targets of issue 6, evaluated on `r`. */
export function evaluate(r: Results): Target[] {
  const pipe = (name: string): number | undefined => r.pipe[name]?.bytesPerSecond;
  const s = r.scale;
  const d = r.denoCommandGrowth;
  const threadsExtra = s.threadsWithManyLive - s.threadsWith1Live;
  const latencyTargets = (
    which: string,
    latency: ByContender<Summary>,
    roundRatio: ByContender<number>,
    denoCommandNote?: string,
  ): Target[] => {
    const lat = (name: string): number | undefined => latency[name]?.median;
    const paired = (name: string): string | undefined => {
      const x = roundRatio[name];
      return x === undefined ? undefined : `median of per-round ratios ${x.toFixed(2)}`;
    };
    return [
      atMost(
        `spawn latency${which} umh / Deno.Command (median)`,
        ratio(lat("umh"), lat("Deno.Command")),
        0.8,
        [paired("Deno.Command"), denoCommandNote].filter(Boolean).join("; ") || undefined,
      ),
      atMost(
        `spawn latency${which} umh / Bun.spawn (median)`,
        ratio(lat("umh"), lat("Bun.spawn")),
        1.0,
        r.skipped["Bun.spawn"] ?? paired("Bun.spawn"),
      ),
    ];
  };
  const musl = r.muslLatency;
  const start = r.helperStart;
  // What no spawner can win back: the helper starting and exiting by itself.
  const helperAlone = start &&
    `reqrep's own start and exit (C, stdin at EOF) ${fixed(start.glibc.median)} µs of every column`;
  return [
    ...latencyTargets("", r.latency, r.latencyRoundRatio, helperAlone),
    ...(musl ? latencyTargets(" (musl reqrep)", musl.latency, musl.latencyRoundRatio) : []),
    atLeast("pipe throughput umh / Deno.Command", ratio(pipe("umh"), pipe("Deno.Command")), 2.5),
    atLeast("pipe throughput umh / Bun.spawn", ratio(pipe("umh"), pipe("Bun.spawn")), 1.0, r.skipped["Bun.spawn"]),
    atMost("spawn latency 64 MiB-padded / unpadded", ratio(r.blobSize.padded.median, r.blobSize.unpadded.median), 1.1),
    {
      name: `owner threads with ${s.live} live - with 1 live`,
      value: threadsExtra,
      limit: `<= ${THREAD_ALLOWANCE}`,
      pass: threadsExtra <= THREAD_ALLOWANCE,
    },
    atMost(
      `owner RSS after ${s.spawns} spawns / after 100`,
      s.rssAfterAll / s.rssAfter100,
      1.1,
      `anonymous RSS alone ${(s.rssAnonAfterAll / s.rssAnonAfter100).toFixed(2)}; ` +
        `RSS after ${s.spawns} / after ${Math.min(1000, s.spawns)} ${(s.rssAfterAll / s.rssAfter1000).toFixed(2)}` +
        (d ? `; Deno.Command over the same spawns ${(d.rssAfterAll / d.rssAfter100).toFixed(2)}` : ""),
    ),
  ];
}

const pad = (text: string, width: number): string => text.padStart(width);
const fixed = (x: number | undefined, digits = 0): string =>
  x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits);

/** RSS along a run of spawns, as one clause of the report. */
function growthText(g: Growth): string {
  return `RSS ${fixed(g.rssAfter100 / 1024, 1)} MiB after 100, ` +
    (g.spawns > 1000 ? `${fixed(g.rssAfter1000 / 1024, 1)} MiB after 1000, ` : "") +
    `${fixed(g.rssAfterAll / 1024, 1)} MiB after ${g.spawns}` +
    (g.spawns > 1000
      ? ` (${fixed(((g.rssAfterAll - g.rssAfter1000) * 1024) / (g.spawns - 1000))} bytes per spawn after 1000)`
      : "") +
    `; anonymous ${fixed(g.rssAnonAfter100 / 1024, 1)} -> ${fixed(g.rssAnonAfterAll / 1024, 1)} MiB` +
    (g.gcAvailable ? ", each after a memory-reducing gc and malloc_trim" : ", after malloc_trim (no gc available)");
}

/** The human-readable report; its last lines are the targets, one per line, marked PASS, FAIL or SKIP. */
export function formatReport(r: Results): string {
  const names = r.contenders;
  const col = 14;
  const lines: string[] = [];
  const m = r.machine;
  lines.push(
    `umh bench (${r.mode}): ${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, glibc ${m.glibc}, Deno ${m.deno}` +
      (m.bun ? `, Bun ${m.bun}` : "") + `; load average ${m.loadBefore} -> ${m.loadAfter}`,
  );
  for (const [name, reason] of Object.entries(r.skipped)) lines.push(`${name} skipped: ${reason}`);
  lines.push("");
  const row = (label: string, cells: string[]): string => label.padEnd(40) + cells.map((c) => pad(c, col)).join("");
  lines.push(row("", names));
  lines.push(row("spawn+round trip+reap, median (µs)", names.map((n) => fixed(r.latency[n]?.median))));
  lines.push(row("spawn+round trip+reap, p90 (µs)", names.map((n) => fixed(r.latency[n]?.p90))));
  const musl = r.muslLatency;
  if (musl) {
    lines.push(row("  the same, musl reqrep, median (µs)", names.map((n) => fixed(musl.latency[n]?.median))));
    lines.push(row("  the same, musl reqrep, p90 (µs)", names.map((n) => fixed(musl.latency[n]?.p90))));
  }
  const start = r.helperStart;
  if (start) {
    lines.push(
      `  the helper alone (C, spawned with stdin at EOF, spawn -> reaped): reqrep median ${
        fixed(start.glibc.median)
      } µs` +
        (start.musl ? `, musl reqrep ${fixed(start.musl.median)} µs` : "") +
        (start.cpuidMicros === null
          ? ""
          : `; one CPUID ${fixed(start.cpuidMicros, 1)} µs here (static glibc's start runs dozens, musl's none)`),
    );
  }
  lines.push(row("spawn rate, 1 in flight (/s)", names.map((n) => fixed(r.rate[n]?.inFlight1))));
  lines.push(row("spawn rate, 8 in flight (/s)", names.map((n) => fixed(r.rate[n]?.inFlight8))));
  const gib = (r.pipe[names[0]!]?.bytes ?? 0) / 2 ** 20;
  lines.push(
    row(`pipe through cat, ${gib} MiB (GB/s)`, names.map((n) => fixed((r.pipe[n]?.bytesPerSecond ?? NaN) / 1e9, 2))),
  );
  const spread = (runs: number[] = []): string => {
    return runs.length < 2 ? "-" : `${fixed(Math.min(...runs) / 1e9, 2)}-${fixed(Math.max(...runs) / 1e9, 2)}`;
  };
  if (names.some((n) => (r.pipe[n]?.runs.length ?? 0) > 1)) {
    lines.push(row("  runs, min-max (GB/s)", names.map((n) => spread(r.pipe[n]?.runs))));
  }
  const byob = r.pipeByob;
  if (byob) {
    lines.push(
      row("  the same, BYOB reader (GB/s)", names.map((n) => fixed((byob[n]?.bytesPerSecond ?? NaN) / 1e9, 2))),
    );
    if (names.some((n) => (byob[n]?.runs.length ?? 0) > 1)) {
      lines.push(row("  runs, min-max (GB/s)", names.map((n) => spread(byob[n]?.runs))));
    }
    const byobRatio = ratio(byob.umh?.bytesPerSecond, byob["Deno.Command"]?.bytesPerSecond);
    if (byobRatio !== null) lines.push(`  (BYOB readers: umh / Deno.Command = ${byobRatio.toFixed(2)})`);
  }
  lines.push("");
  const b = r.blobSize;
  lines.push(
    `umh blob size: unpadded median ${fixed(b.unpadded.median)} µs (p90 ${fixed(b.unpadded.p90)}), ` +
      `${b.paddedBytes / 2 ** 20} MiB-padded median ${fixed(b.padded.median)} µs (p90 ${fixed(b.padded.p90)})`,
  );
  const s = r.scale;
  lines.push(
    `umh scale: request/reply on a live helper median ${fixed(s.requestWith1Live.median)} µs with 1 alive, ` +
      `${fixed(s.requestWithManyLive.median)} µs with ${s.live} more; spawn+round trip+reap ` +
      `${fixed(s.spawnWith1Live.median)} µs -> ${fixed(s.spawnWithManyLive.median)} µs`,
  );
  lines.push(
    `umh owner: threads ${s.threadsBefore} at start, ${s.threadsAfter100} after 100 spawns, ` +
      `${s.threadsAfterAll} after ${s.spawns}; ${s.threadsWith1Live} with 1 live, ${s.threadsWithManyLive} with ${s.live} live; ` +
      growthText(s),
  );
  const d = r.denoCommandGrowth;
  if (d) lines.push(`Deno.Command owner, the same spawns in a process of its own: ${growthText(d)}`);
  lines.push("");
  lines.push("targets (issue 6):");
  for (const t of r.targets ?? evaluate(r)) {
    const mark = t.pass === null ? "SKIP" : t.pass ? "PASS" : "FAIL";
    const value = t.value === null ? "-" : t.value.toFixed(2);
    const note = t.note === undefined ? "" : t.pass === null ? `: ${t.note}` : `; ${t.note}`;
    lines.push(`${mark}  ${t.name} = ${value} (${t.limit})${note}`);
  }
  return lines.join("\n");
}
