// Reading /proc without --allow-all: Deno 2.9 refuses Deno.readTextFile on
// /proc/self/* (and /proc/loadavg, /proc/cpuinfo) unless every permission is
// granted, so the bench reads them through libc, which --allow-ffi allows.

import { O_CLOEXEC, O_RDONLY } from "../ffi/constants.ts";
import { close, glibcVersion, libc, readSome } from "../ffi/libc.ts";

/** The whole text of a /proc file, read with open(2)/read(2) through FFI. */
export function readProcFile(path: string): string {
  const fd = libc().open(new TextEncoder().encode(path + "\0"), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) throw new Error(`Cannot open "${path}"`);
  try {
    const chunks: Uint8Array[] = [];
    for (;;) {
      const buffer = new Uint8Array(16 * 1024);
      const n = readSome(fd, buffer, `Cannot read "${path}"`);
      if (n === null || n === 0) break;
      chunks.push(buffer.subarray(0, n));
    }
    const decoder = new TextDecoder();
    return chunks.map((chunk) => decoder.decode(chunk, { stream: true })).join("") + decoder.decode();
  } finally {
    close(fd);
  }
}

/**
 * Threads, VmRSS and RssAnon (KiB) from /proc/self/status. RssAnon leaves out
 * file-backed pages (the deno executable's code, paged in as new code paths
 * first run): it is the part a leak would grow.
 */
export function ownerStatus(): { threads: number; rss: number; rssAnon: number } {
  const status = readProcFile("/proc/self/status");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { threads: field("Threads"), rss: field("VmRSS"), rssAnon: field("RssAnon") };
}

let mallocTrim: (() => void) | undefined;

/**
 * glibc's malloc_trim(0): hands the pages malloc keeps cached in its arenas
 * back to the kernel, so that RSS counts what is held rather than what the
 * allocator keeps for later. Does nothing where the symbol is missing.
 */
export function trimMalloc(): void {
  mallocTrim ??= (() => {
    try {
      const lib = Deno.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } });
      return (): void => void lib.symbols.malloc_trim(0n);
    } catch {
      return (): void => {}; // not glibc: nothing to trim this way
    }
  })();
  mallocTrim();
}

/** The 1, 5 and 15 minute load averages, as "0.52 0.30 0.21". */
export function loadAverage(): string {
  return Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
}

/** What the run was measured on, for the report and results.json. */
export function machine(bunVersion: string | undefined): Record<string, string | number> {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readProcFile("/proc/cpuinfo"))?.[1] ?? Deno.build.arch;
  return {
    cpu,
    arch: Deno.build.arch,
    cores: navigator.hardwareConcurrency,
    kernel: Deno.osRelease(),
    glibc: glibcVersion(),
    deno: Deno.version.deno,
    ...(bunVersion ? { bun: bunVersion } : {}),
    date: new Date().toISOString(),
    loadBefore: loadAverage(),
  };
}
