// UsermodeDriver: a supervised request/reply helper, after the kernel's
// kernel/usermode_driver.c (load a blob once, fork on demand, clean up) and
// the lessons of bpfilter: short reads are fatal, requests are serialised,
// death is detected eagerly (the exit watcher) and lazily (before each
// request), and EOF on the helper's stdin means "shut down".

import { loadBlob, type UsermodeBlob } from "./blob.ts";
import { DriverDownError, HelperDiedError, RequestTimeoutError } from "./errors.ts";
import { encodeFrame, FrameReader } from "./frame.ts";
import type { UsermodeHelper } from "./helper.ts";
import { spawnHelper } from "./spawn.ts";
import type { HelperStatus } from "./status.ts";

/** Options for {@linkcode UsermodeDriver}. */
export interface UsermodeDriverOptions {
  /** Name for errors, events and the memfd. Defaults to the blob's name. */
  name?: string;
  /** Helper arguments after `argv[0]`, as in `BlobCommand`. */
  args?: string[];
  /** Variables to set for the helper, as in `BlobCommand`. */
  env?: Record<string, string>;
  /** Give the helper exactly `env`, as in `BlobCommand`. */
  clearEnv?: boolean;
  /** The helper's working directory. */
  cwd?: string | URL;
  /** The helper's stderr: `"inherit"` (default) or `"null"`. */
  stderr?: "inherit" | "null";
  /** A request with no reply after this long kills the helper. Default 30 000; 0 disables. */
  requestTimeoutMs?: number;
  /** `"on-demand"` (default): restart at the next request; `"immediate"`: as soon as the backoff allows. */
  restart?: "on-demand" | "immediate";
  /** Restarts allowed within `restartWindowMs` before the driver stays down. Default 5. */
  maxRestarts?: number;
  /** The window for `maxRestarts`, in ms. Default 60 000. */
  restartWindowMs?: number;
  /** First restart delay, doubled per consecutive failure. Default 50 ms. */
  backoffInitialMs?: number;
  /** Largest restart delay. Default 5 000 ms. */
  backoffMaxMs?: number;
  /** How long `stop()` waits after closing stdin, and then after SIGTERM. Default 1 000 ms. */
  stopTimeoutMs?: number;
}

/** `detail` of the driver's `"start"`, `"exit"` and `"restart"` events. */
export interface DriverEventDetail {
  /** The helper's pid (for `"restart"`, the new one). */
  readonly pid: number;
  /** Restarts so far. */
  readonly restarts: number;
  /** `"exit"` only: how it ended. */
  readonly status?: HelperStatus;
  /** `"exit"` only: `"stop"` (asked to), `"timeout"` (killed for not answering) or `"died"`. */
  readonly cause?: "stop" | "timeout" | "died";
  /** `"restart"` only: the pid it replaces. */
  readonly previousPid?: number;
  /** `"restart"` only: the backoff delay waited before it, in ms. */
  readonly delayMs?: number;
}

interface Instance {
  readonly helper: UsermodeHelper;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly frames: FrameReader;
  /** Rejects with HelperDiedError when the helper exits while running. */
  readonly died: Promise<never>;
  cause: "stop" | "timeout" | "died";
  status: HelperStatus | null;
  /** Set once the driver itself signalled it: it is not used for new requests. */
  signalled: boolean;
}

/** The request never reached the helper (EPIPE): safe to send to its successor. */
class NotDelivered extends Error {}

/**
 * Supervises one helper speaking the 4-byte length-prefixed framing (see
 * `blobs/reqrep.c`): starts it, sends requests one at a time (concurrent
 * callers are queued in order; the framing has no ids), and when it dies
 * rejects the request in flight with a {@linkcode HelperDiedError} naming the
 * exit code or signal, then restarts it with exponential backoff until the
 * restart budget is spent, after which every request fails with
 * {@linkcode DriverDownError}. Dispatches `"start"`, `"exit"` and
 * `"restart"` events (`CustomEvent<DriverEventDetail>`).
 *
 * @example
 * ```ts
 * import { UsermodeDriver } from "./mod.ts";
 * import { blobFor } from "../blobs/mod.ts";
 *
 * await using driver = new UsermodeDriver(blobFor("reqrep"), { name: "echo" });
 * driver.addEventListener("restart", (e) => console.log((e as CustomEvent).detail));
 * const reply = await driver.request(new TextEncoder().encode("ping"));
 * console.log(new TextDecoder().decode(reply)); // "ping"
 * ```
 */
export class UsermodeDriver extends EventTarget implements AsyncDisposable {
  readonly #blob: UsermodeBlob;
  readonly #ownsBlob: boolean;
  readonly #name: string;
  readonly #options: UsermodeDriverOptions;
  #instance: Instance | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #restarts = 0;
  #restartTimes: number[] = [];
  #failures = 0;
  #lastExit: HelperDiedError | null = null;
  #down: string | null = null;
  #stopped = false;
  /** Ends a restart's backoff wait early (stop() calls it), or null when none waits. */
  #endBackoff: (() => void) | null = null;

  /**
   * Loads the helper (when given bytes); nothing starts until `start()` or the first request.
   *
   * @param blob The helper: bytes (loaded once here) or a loaded blob (not closed by the driver).
   * @param options Timeouts, restart policy and helper options.
   */
  constructor(blob: Uint8Array | UsermodeBlob, options: UsermodeDriverOptions = {}) {
    super();
    this.#ownsBlob = blob instanceof Uint8Array;
    this.#blob = blob instanceof Uint8Array ? loadBlob(blob, { name: options.name ?? "umh-driver" }) : blob;
    this.#name = options.name ?? this.#blob.name;
    this.#options = options;
  }

  /** The running helper's pid, or `null` when none runs (not yet started, exited, or stopped). */
  get pid(): number | null {
    const instance = this.#instance;
    return instance !== null && instance.status === null ? instance.helper.pid : null;
  }

  /** Restarts so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /**
   * Starts the helper if it is not running (also after the driver went down,
   * which resets the restart budget).
   * @returns The helper's pid.
   */
  async start(): Promise<number> {
    this.#stopped = false;
    this.#down = null;
    this.#restartTimes = [];
    return (await this.#serialised(() => this.#ensure())).helper.pid;
  }

  /**
   * Sends one framed request and resolves with the framed reply. Requests
   * are serialised; a dead helper is restarted first (within the budget).
   * @param payload The request body.
   * @returns The reply body.
   */
  request(payload: Uint8Array): Promise<Uint8Array> {
    const frame = encodeFrame(payload);
    return this.#serialised(() => this.#exchange(frame));
  }

  /** Runs `task` after every earlier request, start and restart. */
  #serialised<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(task);
    this.#queue = result.catch(() => {});
    return result;
  }

  /**
   * Sends `signal` to the running helper, as an administrator might: its
   * death is handled like any other (requests in flight reject, the next one
   * restarts it). Throws `TypeError` when no helper runs.
   *
   * @param signal The signal, default `"SIGTERM"`.
   */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    const helper = this.#instance?.helper;
    const none = `Cannot kill driver "${this.#name}": no helper runs`;
    if (!helper || this.#instance?.status) throw new TypeError(none);
    try {
      helper.kill(signal);
    } catch (error) {
      // It exited a moment ago and its exit was not seen yet: the same answer as after.
      if (error instanceof TypeError && error.message === "Child process has already terminated") {
        throw new TypeError(`${none} (it has just exited)`);
      }
      throw error;
    }
    this.#instance!.signalled = true;
  }

  /** Closes stdin and waits; then SIGTERM, then SIGKILL. Resolves once the helper is reaped. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#down = "it was stopped";
    this.#endBackoff?.(); // a restart waiting out its backoff gives up now, and its timer keeps nothing alive
    const instance = this.#instance;
    if (instance === null) return;
    instance.cause = "stop";
    instance.helper.ref(); // stop() is awaited: the exit must keep the program alive
    const wait = this.#options.stopTimeoutMs ?? 1000;
    await instance.writer.close().catch(() => {}); // EPIPE: it is already gone
    if (!await exitsWithin(instance.helper, wait)) {
      tryKill(instance.helper, "SIGTERM");
      if (!await exitsWithin(instance.helper, wait)) tryKill(instance.helper, "SIGKILL");
    }
    await instance.helper[Symbol.asyncDispose]();
    this.#instance = null;
  }

  /** Stops the driver, and closes the blob if the driver loaded it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    if (this.#ownsBlob) this.#blob.close();
  }

  async #exchange(frame: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.#exchangeOnce(frame);
    } catch (error) {
      // It was found dead before our bytes went in: lazy death detection.
      // The request was not delivered, so its restarted successor gets it.
      if (!(error instanceof NotDelivered)) throw error;
      try {
        return await this.#exchangeOnce(frame);
      } catch (again) {
        throw again instanceof NotDelivered ? again.cause : again;
      }
    }
  }

  async #exchangeOnce(frame: Uint8Array): Promise<Uint8Array> {
    const instance = await this.#ensure();
    // Only a request in flight keeps the program alive; an idle helper is
    // killed at owner exit like any other.
    instance.helper.ref();
    const timeoutMs = this.#options.requestTimeoutMs ?? 30_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      if (timeoutMs <= 0) return;
      timer = setTimeout(() => {
        instance.cause = "timeout";
        instance.signalled = true;
        tryKill(instance.helper, "SIGKILL");
        reject(new RequestTimeoutError(this.#name, instance.helper.pid, timeoutMs));
      }, timeoutMs);
    });
    try {
      const reply = await Promise.race([this.#roundTrip(instance, frame), instance.died, timeout]);
      this.#failures = 0;
      return reply;
    } catch (error) {
      // A timeout, or any short read or write, leaves the protocol out of
      // step: the helper must go, and is reaped before the caller hears of it.
      if (!(error instanceof HelperDiedError)) {
        tryKill(instance.helper, "SIGKILL");
        await instance.helper.status;
      }
      throw error;
    } finally {
      clearTimeout(timer);
      instance.helper.unref();
    }
  }

  async #roundTrip(instance: Instance, frame: Uint8Array): Promise<Uint8Array> {
    try {
      await instance.writer.write(frame);
    } catch {
      // EPIPE: the helper had already closed its stdin or died; nothing was sent.
      const died = await instance.died.catch((e) => e);
      throw new NotDelivered("not delivered", { cause: died });
    }
    const reply = await instance.frames.next();
    if (reply === null) await instance.died; // EOF: it exited; died says how
    return reply!;
  }

  /** The running instance, starting or restarting the helper when needed. */
  async #ensure(): Promise<Instance> {
    if (this.#down !== null) throw new DriverDownError(this.#name, this.#down, { cause: this.#lastExit ?? undefined });
    const current = this.#instance;
    if (current === null) return this.#launch();
    if (current.signalled) {
      current.helper.ref(); // a request is waiting on it
      await current.helper.status; // killed by us: wait, then restart
    }
    if (current.status === null) return current;
    return await this.#restart(current.helper.pid);
  }

  async #restart(previousPid: number): Promise<Instance> {
    const now = performance.now();
    const window = this.#options.restartWindowMs ?? 60_000;
    this.#restartTimes = this.#restartTimes.filter((t) => now - t < window);
    const max = this.#options.maxRestarts ?? 5;
    if (this.#restartTimes.length >= max) {
      this.#down = `restart budget exhausted (${max} restarts within ${window} ms); last: ${
        this.#lastExit?.message ?? "unknown"
      }`;
      this.#instance = null;
      throw new DriverDownError(this.#name, this.#down, { cause: this.#lastExit ?? undefined });
    }
    const initial = this.#options.backoffInitialMs ?? 50;
    const delayMs = Math.min(this.#options.backoffMaxMs ?? 5000, initial * 2 ** Math.max(0, this.#failures - 1));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.#endBackoff?.(), delayMs);
      this.#endBackoff = () => {
        clearTimeout(timer);
        this.#endBackoff = null;
        resolve();
      };
    });
    if (this.#down !== null) throw new DriverDownError(this.#name, this.#down);
    this.#restartTimes.push(performance.now());
    this.#restarts++;
    const instance = this.#launch();
    this.#emit("restart", { pid: instance.helper.pid, restarts: this.#restarts, previousPid, delayMs });
    return instance;
  }

  #launch(): Instance {
    const o = this.#options;
    const helper = spawnHelper(this.#blob, { ...o, argv0: this.#name }, ["piped", "piped", o.stderr ?? "inherit"]);
    helper.unref();
    const { promise: died, reject } = Promise.withResolvers<never>();
    died.catch(() => {}); // observed through races; never an unhandled rejection
    const instance: Instance = {
      helper,
      writer: helper.stdin.getWriter(),
      frames: new FrameReader(helper.stdout),
      died,
      cause: "died",
      status: null,
      signalled: false,
    };
    this.#instance = instance;
    void helper.status.then((status) => {
      instance.status = status;
      const error = new HelperDiedError(this.#name, helper.pid, status);
      if (instance.cause !== "stop") {
        this.#lastExit = error;
        this.#failures++;
      }
      this.#emit("exit", { pid: helper.pid, restarts: this.#restarts, status, cause: instance.cause });
      reject(error);
      instance.writer.releaseLock();
      instance.frames.release();
      void helper[Symbol.asyncDispose]();
      if (instance.cause !== "stop" && (o.restart ?? "on-demand") === "immediate" && !this.#stopped) {
        void this.#serialised(() => this.#ensure()).catch(() => {});
      }
    });
    this.#emit("start", { pid: helper.pid, restarts: this.#restarts });
    return instance;
  }

  #emit(type: "start" | "exit" | "restart", detail: DriverEventDetail): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function tryKill(helper: UsermodeHelper, signal: Deno.Signal): void {
  try {
    helper.kill(signal);
  } catch {
    // TypeError: it has already exited; nothing to kill, on purpose.
  }
}

async function exitsWithin(helper: UsermodeHelper, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms));
  const exited = await Promise.race([helper.status.then(() => true), timeout]);
  clearTimeout(timer);
  return exited;
}
