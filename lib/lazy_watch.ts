// Helpers whose exit is not watched through the poller yet (see LAZY_WATCH_MS
// in lib/helper.ts). One timer for all of them: it keeps the program alive
// while any of them is ref'd, and starts the watch of each one that has run
// `delayMs` without being reaped. Most helpers that answer over their pipes
// and exit are reaped at stdout EOF long before that, and never cost the
// poller's pool thread a wake-up.

/** What the timer needs from a helper. */
export interface LazyWatched {
  /** True while the helper is ref'd (it should keep the program alive). */
  readonly refed: boolean;
  /** Starts the poller's watch of its exit; the helper leaves this set. */
  watchNow(): void;
}

interface Entry {
  readonly since: number;
  refed: boolean;
}

class LazyWatches {
  readonly #delayMs: number;
  /** In insertion order: the oldest first. */
  readonly #entries = new Map<LazyWatched, Entry>();
  #refedCount = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerRefed = true;

  constructor(delayMs: number) {
    this.#delayMs = delayMs;
  }

  add(helper: LazyWatched): void {
    this.#entries.set(helper, { since: performance.now(), refed: helper.refed });
    if (helper.refed) this.#refedCount++;
    this.#schedule();
  }

  delete(helper: LazyWatched): void {
    const entry = this.#entries.get(helper);
    if (entry === undefined) return;
    this.#entries.delete(helper);
    if (entry.refed) this.#refedCount--;
    this.#schedule();
  }

  /** After `helper.ref()` or `unref()`. */
  refChanged(helper: LazyWatched): void {
    const entry = this.#entries.get(helper);
    if (entry === undefined || entry.refed === helper.refed) return;
    entry.refed = helper.refed;
    this.#refedCount += helper.refed ? 1 : -1;
    this.#schedule();
  }

  #fire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    for (const [helper, entry] of this.#entries) {
      if (now - entry.since < this.#delayMs) break;
      this.delete(helper);
      helper.watchNow();
    }
    this.#schedule();
  };

  /**
   * One timer, due when the oldest entry turns `delayMs` old, ref'd while any
   * entry is. It is not cleared when the set empties, only unref'd: helpers
   * started back to back then reuse it (it may fire early, after the oldest
   * left, and then waits for the next).
   */
  #schedule(): void {
    const oldest = this.#entries.values().next().value;
    if (oldest !== undefined && this.#timer === undefined) {
      this.#timer = setTimeout(this.#fire, Math.max(0, oldest.since + this.#delayMs - performance.now()));
      this.#timerRefed = true;
    }
    if (this.#timer === undefined) return;
    const refed = this.#refedCount > 0;
    if (refed !== this.#timerRefed) {
      if (refed) Deno.refTimer(this.#timer);
      else Deno.unrefTimer(this.#timer);
      this.#timerRefed = refed;
    }
  }
}

let watches: LazyWatches | undefined;

/** The process-wide set, created on first use. */
export function lazyWatches(delayMs: number): LazyWatches {
  return watches ??= new LazyWatches(delayMs);
}

export type { LazyWatches };
