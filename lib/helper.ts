// UsermodeHelper: the handle of one running helper, shaped like Deno.ChildProcess.

import { EPOLLIN, P_PID, P_PIDFD, SIGNALS } from "../ffi/constants.ts";
import { ECHILD, ESRCH, SyscallError } from "../ffi/errno.ts";
import { close, sendSignal, waitid, yieldCpu } from "../ffi/libc.ts";
import { lazyWatches as lazyWatchSet } from "./lazy_watch.ts";
import { forgetLive, registerLive } from "./owner_exit.ts";
import { PipeEnd } from "./pipe.ts";
import { existingPoller, thePoller } from "./poller.ts";
import { type HelperOutput, type HelperStatus, lostStatus, outputOf, signalNumber, statusOf } from "./status.ts";
import { type HelperReadableStream, readAll } from "./helper_stream.ts";

/** How long `[Symbol.asyncDispose]` waits after SIGTERM before SIGKILL. */
export const DISPOSE_GRACE_MS = 500;
const NO_PIDFD_POLL_MS = 5;

/**
 * A helper with a piped stdout is not watched through the poller at first:
 * its exit usually shows as EOF on stdout, which the reactor delivers
 * without a thread hop (lib/reactor.ts), and the poller's pool thread would
 * compete with a starting helper for a CPU. The watch starts at once when
 * something waits for the exit (`status`, dispose), when EOF comes before
 * the exit, and for every helper still running after this long, so that a
 * helper whose stdout nobody reads, or whose stdout a grandchild holds
 * open, is still reaped and still keeps the program alive.
 */
const LAZY_WATCH_MS = 10;
/** How long EOF on an output pipe may wait for the helper's exit to be reapable, in µs. */
const REAP_WAIT_US = 100;
const lazyWatches = lazyWatchSet(LAZY_WATCH_MS);

/** @internal What spawn hands to the handle. */
export interface HelperInit {
  readonly pid: number;
  /** A pidfd, or -1 where the kernel has none (then the pid is polled). */
  readonly pidfd: number;
  readonly name: string;
  readonly stdin: number;
  readonly stdout: number;
  readonly stderr: number;
  readonly signal: AbortSignal | undefined;
  readonly detached: boolean;
  /** Its parent-death signal is SIGKILL: the kernel kills it when the owner's process goes. */
  readonly covered: boolean;
}

const CONSTRUCT = Symbol("UsermodeHelper.construct");

/**
 * A running helper: pid, pipes, exit status, kill. The same shape as
 * `Deno.ChildProcess`; obtained from {@linkcode BlobCommand.spawn} or
 * {@linkcode forkUsermodeBlob}, never constructed directly.
 *
 * The caller owns it: await `status`, or dispose it (`await using`), which
 * closes stdin, stops the helper (SIGTERM, then SIGKILL after
 * {@linkcode DISPOSE_GRACE_MS}), reaps it and closes every fd. A helper still
 * running when the program exits is killed then, unless it was `detached`.
 *
 * @example
 * ```ts
 * import { forkUsermodeBlob } from "./mod.ts";
 * import { blobFor } from "../blobs/mod.ts";
 *
 * await using helper = forkUsermodeBlob(blobFor("cat"));
 * const writer = helper.stdin.getWriter();
 * await writer.write(new TextEncoder().encode("hello"));
 * await writer.close();
 * const { stdout } = await helper.output();
 * console.log(new TextDecoder().decode(stdout)); // "hello"
 * ```
 */
export class UsermodeHelper implements AsyncDisposable {
  readonly #pid: number;
  readonly #name: string;
  readonly #detached: boolean;
  #pidfd: number;
  #refed = true;
  #exited: HelperStatus | null = null;
  readonly #status: Promise<HelperStatus>;
  readonly #settle: (status: HelperStatus) => void;
  #watching = false;
  #finished = false;
  readonly #pipes: { stdin: PipeEnd | null; stdout: PipeEnd | null; stderr: PipeEnd | null };
  #stdin: WritableStream<Uint8Array> | undefined;
  #stdout: HelperReadableStream | undefined;
  #stderr: HelperReadableStream | undefined;
  readonly #abort: AbortSignal | undefined;
  readonly #onAbort = (): void => {
    if (this.#exited === null) this.#signal(SIGNALS.SIGTERM);
  };

  /** @internal Use BlobCommand.spawn() or forkUsermodeBlob(). */
  constructor(token: symbol, init: HelperInit) {
    if (token !== CONSTRUCT) throw new TypeError("Illegal constructor");
    this.#pid = init.pid;
    this.#pidfd = init.pidfd;
    this.#name = init.name;
    this.#detached = init.detached;
    const label = (stream: string): string => `${stream} of helper "${init.name}" (pid ${init.pid})`;
    // EOF on an output pipe usually means the helper has just exited: reaping
    // it then saves the status a second trip through the poller.
    const onEof = (): void => this.#reapIfExited();
    const pipe = (fd: number, stream: string): PipeEnd | null =>
      fd < 0 ? null : new PipeEnd(fd, this, label(stream), stream === "stdin" ? undefined : onEof);
    this.#pipes = {
      stdin: pipe(init.stdin, "stdin"),
      stdout: pipe(init.stdout, "stdout"),
      stderr: pipe(init.stderr, "stderr"),
    };
    this.#abort = init.signal;
    this.#abort?.addEventListener("abort", this.#onAbort, { once: true });
    if (!this.#detached) registerLive(this, init.covered);
    const { promise, resolve } = Promise.withResolvers<HelperStatus>();
    this.#status = promise;
    this.#settle = resolve;
    if (this.#pipes.stdout === null) this.#watch();
    else lazyWatches.add(this);
  }

  /** The helper's process id. */
  get pid(): number {
    return this.#pid;
  }

  /** True while this helper keeps the event loop alive (see `ref()`/`unref()`). */
  get refed(): boolean {
    return this.#refed;
  }

  /** The kernel's `pipe_to_umh`: the helper's stdin. Throws `TypeError` unless stdin is `"piped"`. */
  get stdin(): WritableStream<Uint8Array> {
    const pipe = this.#pipes.stdin;
    if (pipe === null) throw new TypeError("Cannot get 'stdin': 'stdin' is not piped");
    return this.#stdin ??= pipe.writable();
  }

  /**
   * The kernel's `pipe_from_umh`: the helper's stdout, with `text()`,
   * `json()`, `bytes()` and `arrayBuffer()` as Deno's. Throws `TypeError`
   * unless stdout is `"piped"`.
   */
  get stdout(): HelperReadableStream {
    const pipe = this.#pipes.stdout;
    if (pipe === null) throw new TypeError("Cannot get 'stdout': 'stdout' is not piped");
    return this.#stdout ??= pipe.readable();
  }

  /** The helper's stderr, with the same collectors as `stdout`. Throws `TypeError` unless stderr is `"piped"`. */
  get stderr(): HelperReadableStream {
    const pipe = this.#pipes.stderr;
    if (pipe === null) throw new TypeError("Cannot get 'stderr': 'stderr' is not piped");
    return this.#stderr ??= pipe.readable();
  }

  /** Resolves once the helper has exited and been reaped. Never rejects. */
  get status(): Promise<HelperStatus> {
    this.#watch();
    return this.#status;
  }

  /**
   * Waits for the helper to exit and collects all of its piped stdout and
   * stderr (read concurrently, so a helper filling one pipe cannot deadlock).
   */
  async output(): Promise<HelperOutput> {
    const { stdout, stderr } = this.#pipes;
    if (this.#stdout?.locked) throw new TypeError("Cannot collect output: 'stdout' is locked");
    if (this.#stderr?.locked) throw new TypeError("Cannot collect output: 'stderr' is locked");
    // No EOF to come (a pipe read to its end already, or none piped): watch the exit itself.
    if ((stdout === null || stdout.closed) && (stderr === null || stderr.closed)) this.#watch();
    const [out, err, status] = await Promise.all([
      stdout && readAll(this.stdout),
      stderr && readAll(this.stderr),
      this.#status,
    ]);
    return outputOf(status, out, err);
  }

  /**
   * Sends `signal` (default `"SIGTERM"`; a name, or a number as
   * `Deno.ChildProcess.kill()` takes) through the helper's pidfd, so a
   * recycled pid can never be hit. Throws `TypeError` once the helper has
   * exited, and for a signal Linux does not have.
   */
  kill(signal: Deno.Signal | number = "SIGTERM"): void {
    // The exit may not have been seen yet (it is read lazily): a WNOHANG
    // reap first, so that a helper that has gone is reported as gone, as
    // Deno's is, and not signalled as a zombie.
    this.#tryReap();
    if (this.#exited !== null) {
      this.#finish();
      throw new TypeError("Child process has already terminated");
    }
    this.#signal(signalNumber(signal));
  }

  /** Lets this helper keep the program alive until it exits (the default). */
  ref(): void {
    this.#setRefed(true);
  }

  /** Lets the program exit while this helper runs; `status` and reads still work meanwhile. */
  unref(): void {
    this.#setRefed(false);
  }

  #setRefed(refed: boolean): void {
    this.#refed = refed;
    this.#pipes.stdout?.refChanged();
    this.#pipes.stderr?.refChanged();
    lazyWatches.refChanged(this);
    existingPoller()?.refresh();
  }

  /**
   * Closes stdin, then stops the helper if it still runs (SIGTERM, then
   * SIGKILL after {@linkcode DISPOSE_GRACE_MS}), reaps it and closes every fd.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#pipes.stdin?.close();
    if (this.#exited === null) {
      this.#watch();
      this.#signal(SIGNALS.SIGTERM);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, DISPOSE_GRACE_MS));
      await Promise.race([this.#status, grace]);
      clearTimeout(timer);
      if (this.#exited === null) this.#signal(SIGNALS.SIGKILL);
      await this.#status;
    }
    this.#pipes.stdout?.close();
    this.#pipes.stderr?.close();
  }

  #signal(signo: number): void {
    const errno = sendSignal(this.#pidfd, this.#pid, signo);
    // ESRCH: it exited and the watcher has not reaped it yet; status will say how.
    if (errno !== 0 && errno !== ESRCH) {
      throw new SyscallError(`Cannot signal helper "${this.#name}" (pid ${this.#pid})`, "pidfd_send_signal", errno);
    }
  }

  /** Starts watching the exit through the poller (pidfd), once. */
  #watch(): void {
    if (this.#watching || this.#finished) return;
    this.#watching = true;
    lazyWatches.delete(this);
    void this.#watchExit();
  }

  /** Waits for the exit through the poller (pidfd) and reaps exactly this child. */
  async #watchExit(): Promise<void> {
    while (this.#exited === null) {
      let waited = false;
      if (this.#pidfd >= 0) {
        try {
          await thePoller().wait(this.#pidfd, EPOLLIN, this);
          waited = true;
        } catch (error) {
          // No poller to be had (EMFILE making its epoll fd): the exit is
          // polled by timer until it can be, rather than lost to nobody.
          if (!(error instanceof SyscallError)) throw error;
        }
      }
      if (!waited) {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, NO_PIDFD_POLL_MS);
          if (!this.#refed) Deno.unrefTimer(timer);
        });
      }
      this.#tryReap();
    }
    this.#finish();
  }

  /** Once reaped: closes the pidfd, drops every registration and resolves `status`. */
  #finish(): void {
    const status = this.#exited;
    if (this.#finished || status === null) return;
    this.#finished = true;
    lazyWatches.delete(this);
    if (this.#pidfd >= 0) {
      existingPoller()?.forget(this.#pidfd, true);
      close(this.#pidfd);
      this.#pidfd = -1;
    }
    this.#abort?.removeEventListener("abort", this.#onAbort);
    forgetLive(this);
    this.#settle(status);
  }

  /** @internal For the lazy watch: starts the poller's watch if the helper still runs. */
  watchNow(): void {
    this.#watch();
  }

  /** @internal Synchronous last-resort stop at owner exit: SIGKILL by pidfd. */
  killNow(signo: number): void {
    if (this.#exited === null) sendSignal(this.#pidfd, this.#pid, signo);
  }

  /**
   * At EOF on an output pipe: reaps now if the helper has exited (it usually
   * just has), else starts the poller's watch.
   */
  #reapIfExited(): void {
    if (this.#finished) return;
    this.#tryReap();
    // The kernel closes an exiting helper's files, and so sends the EOF, a
    // moment before its exit can be reaped (2-3 % of round trips land in
    // between here). That moment is shorter than the poller's thread hop:
    // wait it out, yielding the CPU to the helper, for at most REAP_WAIT_US.
    if (this.#exited === null) {
      const deadline = performance.now() + REAP_WAIT_US / 1000;
      do {
        yieldCpu();
        this.#tryReap();
      } while (this.#exited === null && performance.now() < deadline);
    }
    // #finish() forgets the pidfd, which resolves a pending #watchExit wait; it then finds the status set.
    if (this.#exited !== null) this.#finish();
    else this.#watch();
  }

  /** @internal For owner-exit cleanup: reap without the poller. Returns true once reaped. */
  reapNow(): boolean {
    this.#tryReap();
    if (this.#exited !== null) this.#finish();
    return this.#exited !== null;
  }

  /** Reaps this child if it has exited (WNOHANG), setting `#exited`. */
  #tryReap(): void {
    if (this.#exited !== null) return;
    const byPidfd = this.#pidfd >= 0;
    try {
      const result = waitid(byPidfd ? P_PIDFD : P_PID, byPidfd ? this.#pidfd : this.#pid, 0, "Cannot reap helper");
      if (result !== null) this.#exited = statusOf(result);
    } catch (error) {
      // ECHILD: something else in this process reaped it (a waitpid(-1)), and
      // its exit status is lost. `status` must still resolve; code -1 says so.
      if (!(error instanceof SyscallError && error.errno === ECHILD)) throw error;
      this.#exited = lostStatus();
    }
  }
}

/** @internal Creates a handle; only spawn code calls this. */
export function newHelper(init: HelperInit): UsermodeHelper {
  return new UsermodeHelper(CONSTRUCT, init);
}
