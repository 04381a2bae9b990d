// Finding Bun (PATH, then node_modules/.bin under the repo or bench/, then a
// private `npm install --prefix bench/.bun`), and driving bench/bun_runner.ts.

const BENCH_DIR = new URL(".", import.meta.url).pathname;
const REPO_DIR = new URL("..", import.meta.url).pathname;
const PRIVATE_PREFIX = `${BENCH_DIR}.bun`;
const INSTALL_TIMEOUT_MS = 180_000;

/** A usable bun binary, or why there is none. */
export type BunLookup = { path: string; version: string } | { path: null; reason: string };

async function versionOf(path: string): Promise<string | null> {
  try {
    const { success, stdout } = await new Deno.Command(path, { args: ["--version"], stdout: "piped", stderr: "null" })
      .output();
    return success ? new TextDecoder().decode(stdout).trim() : null;
  } catch {
    return null; // NotFound or not executable: not a usable bun.
  }
}

function candidates(): string[] {
  const fromPath = (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== "").map((dir) => `${dir}/bun`);
  return [
    ...fromPath,
    `${REPO_DIR}node_modules/.bin/bun`,
    `${BENCH_DIR}node_modules/.bin/bun`,
    `${PRIVATE_PREFIX}/node_modules/.bin/bun`,
  ];
}

async function firstWorking(): Promise<{ path: string; version: string } | null> {
  for (const path of candidates()) {
    try {
      if (!Deno.statSync(path).isFile) continue;
    } catch {
      continue; // absent
    }
    const version = await versionOf(path);
    if (version !== null) return { path, version };
  }
  return null;
}

/** Finds bun; when `install` is set and none is found, tries `npm install --prefix bench/.bun bun`. */
export async function findBun(install: boolean): Promise<BunLookup> {
  const found = await firstWorking();
  if (found) return found;
  if (!install) return { path: null, reason: "no bun in PATH or node_modules/.bin, and --no-install was given" };
  console.error(`bench: no bun found; trying npm install --prefix ${PRIVATE_PREFIX} bun ...`);
  try {
    const { success, stderr } = await new Deno.Command("npm", {
      args: ["install", "--prefix", PRIVATE_PREFIX, "--no-save", "--no-audit", "--no-fund", "bun"],
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(INSTALL_TIMEOUT_MS),
    }).output();
    if (!success) {
      const tail = new TextDecoder().decode(stderr).trim().split("\n").slice(-2).join(" / ");
      return { path: null, reason: `npm install bun failed: ${tail}` };
    }
  } catch (error) {
    return { path: null, reason: `npm install bun could not run: ${error instanceof Error ? error.message : error}` };
  }
  return await firstWorking() ?? { path: null, reason: "npm install bun finished, but no working bun binary came out" };
}

/** A running bench/bun_runner.ts: one JSON command out, one JSON answer back. */
export class BunRunner implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = lines(child.stdout)[Symbol.asyncIterator]();
  }

  /** Starts the runner with the two helper binaries on disk; resolves once it said it is ready. */
  static async start(bun: string, reqrepPath: string, catPath: string): Promise<BunRunner> {
    const child = new Deno.Command(bun, {
      args: [`${BENCH_DIR}bun_runner.ts`, reqrepPath, catPath],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const runner = new BunRunner(child);
    const hello = await runner.#next();
    if (hello.ready !== true) throw new Error(`bun_runner did not start: ${JSON.stringify(hello)}`);
    return runner;
  }

  /** Sends one command and returns its answer; throws the runner's error. */
  async call(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    const reply = await this.#next();
    if (typeof reply.error === "string") throw new Error(`Bun runner: ${reply.error}`);
    return reply;
  }

  async #next(): Promise<Record<string, unknown>> {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error("bun_runner exited early");
    return JSON.parse(value);
  }

  /** Closes its stdin (it exits at EOF) and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer.close().catch(() => {}); // already closed: it exited
    await this.#child.status;
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, newline);
      pending = pending.slice(newline + 1);
    }
  }
  if (pending !== "") yield pending;
}
