// The three ways to run the same helper binary, behind one interface: umh
// (forkUsermodeBlob from one loadBlob), Deno.Command of the binary written to
// a temp file, and Bun.spawn (through bench/bun_runner.ts).

import { forkUsermodeBlob, type UsermodeBlob } from "../lib/mod.ts";
import type { BunRunner } from "./bun.ts";
import { latencies, pipeThroughput, spawnRate, type Start } from "./workloads.ts";

/** One runtime's way of starting helpers. Latencies in µs, rates per second. */
export interface Contender {
  readonly name: string;
  latency(count: number): Promise<number[]>;
  /** Absent for the C floor, which runs one helper at a time. */
  rate?(count: number, inFlight: number): Promise<number>;
  /** Bytes per second through the cat helper; absent for the C floor from a memfd (latency only). */
  pipe?(bytes: number, chunkBytes: number): Promise<number>;
  /** The same with a BYOB reader; absent where stdout is not a byte stream (Bun) or for the C floor. */
  pipeByob?(bytes: number, chunkBytes: number): Promise<number>;
}

/** The two helpers a contender needs, by whatever handle it uses. */
export interface Helpers<T> {
  readonly reqrep: T;
  readonly cat: T;
}

class StartContender implements Contender {
  readonly name: string;
  readonly #reqrep: Start;
  readonly #cat: Start;

  constructor(name: string, reqrep: Start, cat: Start) {
    this.name = name;
    this.#reqrep = reqrep;
    this.#cat = cat;
  }

  latency(count: number): Promise<number[]> {
    return latencies(this.#reqrep, count);
  }

  rate(count: number, inFlight: number): Promise<number> {
    return spawnRate(this.#reqrep, count, inFlight);
  }

  pipe(bytes: number, chunkBytes: number): Promise<number> {
    return pipeThroughput(this.#cat, bytes, chunkBytes);
  }

  pipeByob(bytes: number, chunkBytes: number): Promise<number> {
    return pipeThroughput(this.#cat, bytes, chunkBytes, "byob");
  }
}

/** umh: every helper forked from the one sealed memfd of its blob. */
export function umhContender(blobs: Helpers<UsermodeBlob>): Contender {
  return new StartContender("umh", () => forkUsermodeBlob(blobs.reqrep), () => forkUsermodeBlob(blobs.cat));
}

/** Deno.Command of the binaries on disk, stdin and stdout piped, stderr inherited. */
export function denoContender(paths: Helpers<string>): Contender {
  const command = (path: string): Start => () =>
    new Deno.Command(path, { stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn();
  return new StartContender("Deno.Command", command(paths.reqrep), command(paths.cat));
}

/**
 * Bun.spawn, run by a Bun process that bench/bun_runner.ts keeps up between
 * rounds. `reqrepPath` replaces the runner's reqrep for latency runs.
 */
export function bunContender(runner: BunRunner, reqrepPath?: string): Contender {
  return {
    name: "Bun.spawn",
    async latency(count: number): Promise<number[]> {
      return (await runner.call({ op: "latency", count, path: reqrepPath })).samples as number[];
    },
    async rate(count: number, inFlight: number): Promise<number> {
      return (await runner.call({ op: "rate", count, inFlight })).perSecond as number;
    },
    async pipe(bytes: number, chunk: number): Promise<number> {
      return (await runner.call({ op: "pipe", bytes, chunk })).bytesPerSecond as number;
    },
  };
}

async function runCFloor(binary: string, args: string[]): Promise<Record<string, unknown>> {
  const { success, stdout } = await new Deno.Command(binary, { args, stdout: "piped", stderr: "inherit" }).output();
  if (!success) throw new Error(`c_floor ${args.join(" ")} failed`);
  return JSON.parse(new TextDecoder().decode(stdout));
}

/** The C floor: bench/c_floor.c, compiled at bench time, run once per round (it times itself). */
export function cFloorContender(binary: string, paths: Helpers<string>): Contender {
  return {
    name: "C floor",
    async latency(count: number): Promise<number[]> {
      return (await runCFloor(binary, ["latency", paths.reqrep, String(count)])).samples as number[];
    },
    async pipe(bytes: number, chunk: number): Promise<number> {
      return (await runCFloor(binary, ["pipe", paths.cat, String(bytes), String(chunk)])).bytesPerSecond as number;
    },
  };
}

/**
 * The C floor for running from memory: the same round trips with reqrep
 * loaded into a sealed memfd and started as umh's trampoline starts it
 * (vfork + execveat). Its gap to "C floor" is what executing a memfd costs
 * on this machine, for every implementation that runs from memory.
 */
export function cMemfdContender(binary: string, paths: Helpers<string>): Contender {
  return {
    name: "C memfd",
    async latency(count: number): Promise<number[]> {
      return (await runCFloor(binary, ["latency-memfd", paths.reqrep, String(count)])).samples as number[];
    },
  };
}

/**
 * The helper's own share of every round trip, in C: `path` started with
 * stdin already at EOF (reqrep then exits at once), from posix_spawn to
 * reaped. Latencies in µs.
 */
export async function helperStartLatencies(binary: string, path: string, count: number): Promise<number[]> {
  return (await runCFloor(binary, ["startup", path, String(count)])).samples as number[];
}

/** The time of one CPUID instruction in µs (a VM traps it), or null where the CPU is not x86. */
export async function cpuidMicros(binary: string): Promise<number | null> {
  return (await runCFloor(binary, ["cpuid", "2000"])).us as number | null;
}

/** A binary built at bench time, or why there is none. */
export type Built = { path: string } | { path: null; reason: string };

/** Builds `args` (ending in the output path) with the first of `compilers` that works. */
async function build(compilers: string[], args: string[], path: string): Promise<Built | null> {
  for (const cc of compilers) {
    try {
      const { success } = await new Deno.Command(cc, { args: [...args, "-o", path], stderr: "null" }).output();
      if (success) return { path };
    } catch {
      // NotFound: try the next compiler.
    }
  }
  return null;
}

/** Compiles bench/c_floor.c into `dir` with the first C compiler found. */
export async function buildCFloor(dir: string): Promise<Built> {
  const source = new URL("./c_floor.c", import.meta.url).pathname;
  return await build(["cc", "gcc", "clang"], ["-O2", source], `${dir}/c_floor`) ??
    { path: null, reason: "no working C compiler (cc, gcc, clang) to build bench/c_floor.c" };
}

/**
 * blobs/reqrep.c linked statically against musl instead of glibc. glibc's
 * static start-up probes the CPU with cpuid, which traps to the hypervisor on
 * a VM: about 0.8 ms of each round trip on our machines, the same for every
 * contender, which hides the differences between their spawn paths. The musl
 * build starts about as fast as a program with no libc at all.
 */
export async function buildMuslReqrep(dir: string): Promise<Built> {
  const source = new URL("../blobs/reqrep.c", import.meta.url).pathname;
  const flags = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O2", "-static", "-s", source];
  return await build(["musl-gcc"], flags, `${dir}/reqrep-musl`) ??
    { path: null, reason: "no musl-gcc (Debian: musl-tools) to build blobs/reqrep.c against musl" };
}
