// Shared helpers for the tests: fd and zombie checks through /proc, framed
// request/reply with the reqrep blob, and small process utilities.

import { Buffer } from "node:buffer";
import { encodeFrame, FrameReader } from "../lib/mod.ts";
import type { UsermodeHelper } from "../lib/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The fd numbers open in this process now (the directory handle used to list them excluded). */
export function openFds(): number[] {
  const fds: number[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) fds.push(Number(entry.name));
  // readDirSync held one fd while listing; it is closed now, so keep only those still open.
  return fds.filter((fd) => isOpen(fd)).sort((a, b) => a - b);
}

function isOpen(fd: number): boolean {
  try {
    Deno.readLinkSync(`/proc/self/fd/${fd}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * How many fds this process holds. FFI fds are invisible to Deno's resource
 * sanitizer; this sees them. It counts the whole process, so fd assertions
 * hold only when no other test module runs in the same process at the same
 * time: do not run these files with `deno test --parallel`.
 */
export function fdCount(): number {
  return openFds().length;
}

/** The fd numbers of process `pid`, sorted. */
export function childFds(pid: number): number[] {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].map((entry) => Number(entry.name)).sort((a, b) => a - b);
}

/**
 * The state letter of `pid` from /proc/<pid>/stat (`"R"`, `"S"`, `"Z"`...), or
 * `null` when no such process exists any more.
 */
export function processState(pid: number): string | null {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  // "pid (comm) S ...": comm may hold spaces and parentheses, so split at the last ")".
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
}

/** Pids whose parent is this process, running or zombie. */
export function ourChildren(): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === Deno.pid) pids.push(Number(entry.name));
    } catch {
      // exited while listing
    }
  }
  return pids;
}

/** This process's thread count, from /proc/self/status. */
export function threadCount(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
}

/** The pids among `pids` that are zombies still parented by this process. */
export function ourZombies(pids: Iterable<number>): number[] {
  const zombies: number[] = [];
  for (const pid of pids) {
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    } catch {
      continue; // gone: reaped, as it should be
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" && Number(fields[1]) === Deno.pid) zombies.push(pid);
  }
  return zombies;
}

/** argv of `pid`, from /proc/<pid>/cmdline. */
export function cmdline(pid: number): string[] {
  const raw = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
  return raw.split("\0").slice(0, -1);
}

/** A framed conversation with a reqrep helper over its stdin and stdout. */
export class Conversation {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #frames: FrameReader;

  /** Locks `helper.stdin` and `helper.stdout`. */
  constructor(helper: UsermodeHelper) {
    this.#writer = helper.stdin.getWriter();
    this.#frames = new FrameReader(helper.stdout);
  }

  /** Sends one request frame. */
  async send(text: string): Promise<void> {
    await this.#writer.write(encodeFrame(encoder.encode(text)));
  }

  /** The next reply as text, or `null` at a clean EOF. */
  async receive(): Promise<string | null> {
    const frame = await this.#frames.next();
    return frame === null ? null : decoder.decode(frame);
  }

  /** Sends `text` and returns the reply. */
  async request(text: string): Promise<string | null> {
    await this.send(text);
    return await this.receive();
  }

  /** Closes stdin: EOF for the helper, which then exits 0. */
  async close(): Promise<void> {
    await this.#writer.close();
  }
}

/** Everything `stream` yields, concatenated. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    total += chunk.length;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Rejects with a clear error if `promise` is not settled within `ms`. Generous limits only: no timing assertions. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns true, or throws after `ms`. */
export async function eventually(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** True when `name` is an executable on PATH. */
export function hasCommand(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Why `strace -f` cannot trace here (not installed, or ptrace refused), or null when it can. */
export function whyNoStrace(): string | null {
  try {
    const probe = new Deno.Command("strace", { args: ["-f", "-qq", "-o", "/dev/null", "true"], stderr: "null" });
    return probe.outputSync().success ? null : "strace cannot trace here (ptrace not permitted?)";
  } catch {
    return "strace not found";
  }
}

/** What {@linkcode straceDeno} saw: the program's exit code and output, and the trace. */
export interface Traced {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly trace: string;
  /** The private DENO_DIR the program ran with (gone by now): its paths are Deno's cache, not the program's. */
  readonly denoDir: string;
}

/**
 * Runs `source` as a Deno program (`deno run -A`, `args` after it) under
 * `strace -f -qq -e trace=<syscalls>`, with a private, empty DENO_DIR so
 * Deno's own cache writes are recognisable, in a temp dir removed afterwards.
 */
export async function straceDeno(
  source: string,
  syscalls: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<Traced> {
  const dir = await Deno.makeTempDir({ prefix: "umh-strace-" });
  try {
    const child = `${dir}/child.mjs`;
    const trace = `${dir}/trace.txt`;
    const denoDir = `${dir}/deno_dir`;
    await Deno.writeTextFile(child, source);
    await Deno.mkdir(denoDir);
    const out = await new Deno.Command("strace", {
      args: ["-f", "-qq", "-e", `trace=${syscalls}`, "-o", trace, Deno.execPath(), "run", "-A", child, ...args],
      env: { ...env, DENO_DIR: denoDir, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      trace: await Deno.readTextFile(trace),
      denoDir: `${denoDir}/`,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `text` as bytes. */
export function bytes(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text);
}

/** `data` as text. */
export function text(data: Uint8Array): string {
  return decoder.decode(data);
}

/** `size` random bytes (a fresh pattern per call, so a stale or shifted chunk cannot match by chance). */
export function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  const LIMIT = 65536; // crypto.getRandomValues fills at most 64 KiB per call
  for (let offset = 0; offset < size; offset += LIMIT) {
    crypto.getRandomValues(out.subarray(offset, Math.min(size, offset + LIMIT)));
  }
  return out;
}

/** True when `a` and `b` hold the same bytes (compared natively: 64 MiB in a JS loop is slow). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** The repository root, as a path. */
export const ROOT: string = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
