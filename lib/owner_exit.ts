// The owner's exit kills the helpers it started (the `rmmod` analogue).
//
// Deno does not kill children at exit (denoland/deno#8772), so umh keeps the
// set of live, non-detached helpers and, when the program ends normally, calls
// Deno.exit(), dies of an uncaught error or gets SIGINT, SIGTERM or SIGHUP,
// sends them SIGTERM, waits briefly, SIGKILLs what is left and reaps them all,
// synchronously, before the process goes. The listeners exist only while
// helpers are alive. A SIGKILL of the owner cannot be caught: helpers then see
// EOF on stdin and must exit (the convention for helper authors), or use
// `parentDeathSignal`.

import { SIGNALS } from "../ffi/constants.ts";
import { dieOfSignal, signalIgnored } from "../ffi/libc.ts";

/** What owner-exit cleanup needs from a helper. */
export interface LiveHelper {
  killNow(signo: number): void;
  reapNow(): boolean;
}

/** How long exit cleanup waits after SIGTERM before SIGKILL. */
const EXIT_GRACE_MS = 100;
const EXIT_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

const live = new Set<LiveHelper>();
let installed = false;
/**
 * The listeners stay this long after the last helper exits: binding and
 * unbinding three signals costs about 90 µs, which back-to-back spawns would
 * otherwise pay each time. They never keep the program alive.
 */
const UNINSTALL_DELAY_MS = 1000;
let uninstallTimer: ReturnType<typeof setTimeout> | undefined;
let handleSignals = true;

/**
 * Chooses whether umh listens for SIGINT, SIGTERM and SIGHUP while helpers
 * live (the default), killing them and then dying of that signal (its
 * default action, as the program would without a listener).
 * A program with its own handlers for those signals (a graceful shutdown)
 * should turn this off and call {@linkcode killAllHelpersSync} itself.
 *
 * @param enabled `false` to leave those signals to the program.
 *
 * @example
 * ```ts
 * import { handleOwnerSignals, killAllHelpersSync } from "./mod.ts";
 * handleOwnerSignals(false);
 * const onInt = (): void => {
 *   killAllHelpersSync();
 *   Deno.exit(130);
 * };
 * Deno.addSignalListener("SIGINT", onInt);
 * Deno.removeSignalListener("SIGINT", onInt);
 * ```
 */
export function handleOwnerSignals(enabled: boolean): void {
  if (enabled === handleSignals) return;
  if (installed) uninstall();
  handleSignals = enabled;
  if (live.size > 0) install();
}

/** Adds a helper to those killed at owner exit. */
export function registerLive(helper: LiveHelper): void {
  live.add(helper);
  if (!installed) install();
}

/** Removes a helper (it exited, or was reaped). */
export function forgetLive(helper: LiveHelper): void {
  live.delete(helper);
  if (live.size === 0 && installed && uninstallTimer === undefined) {
    const timer = setTimeout(() => {
      uninstallTimer = undefined;
      if (live.size === 0 && installed) uninstall();
    }, UNINSTALL_DELAY_MS);
    Deno.unrefTimer(timer);
    uninstallTimer = timer;
  }
}

/** Number of live, non-detached helpers. */
export function liveHelperCount(): number {
  return live.size;
}

/**
 * Stops every live helper that is not detached, now: SIGTERM, up to
 * `graceMs` for them to exit, then SIGKILL, and reaps each. Synchronous, for
 * exit paths that cannot await.
 *
 * @param graceMs How long to wait after SIGTERM (default 100 ms).
 *
 * @example
 * ```ts
 * import { killAllHelpersSync } from "./mod.ts";
 * killAllHelpersSync(); // e.g. in your own SIGTERM handler, before Deno.exit()
 * ```
 */
export function killAllHelpersSync(graceMs: number = EXIT_GRACE_MS): void {
  const helpers = [...live];
  for (const helper of helpers) helper.killNow(SIGNALS.SIGTERM);
  const deadline = performance.now() + graceMs;
  let running = helpers.filter((helper) => !helper.reapNow());
  while (running.length > 0 && performance.now() < deadline) {
    sleepSync(1);
    running = running.filter((helper) => !helper.reapNow());
  }
  for (const helper of running) helper.killNow(SIGNALS.SIGKILL);
  while (running.length > 0) {
    sleepSync(1);
    running = running.filter((helper) => !helper.reapNow());
  }
  for (const helper of helpers) live.delete(helper);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function onUnload(): void {
  killAllHelpersSync();
}

function onError(event: Event): void {
  // A listener that called preventDefault() keeps the program running: so do its helpers.
  if (!event.defaultPrevented) killAllHelpersSync();
}

const signalHandlers = new Map<typeof EXIT_SIGNALS[number], () => void>(
  EXIT_SIGNALS.map((signal) => [signal, (): void => {
    killAllHelpersSync();
    // Deno replaced the default action when a listener was added: put it
    // back and die of the signal, so that whoever waits for this program sees
    // the signal, as without umh. Not from a Worker: that would end the whole
    // process under the main thread; Deno.exit() there ends the Worker. Should
    // the signal not end it, exit with 128 + n.
    if (IN_MAIN_THREAD) dieOfSignal(SIGNALS[signal]);
    Deno.exit(128 + SIGNALS[signal]);
  }]),
);

/** True in the main isolate, false in a Worker. */
const IN_MAIN_THREAD = !("WorkerGlobalScope" in globalThis);

/**
 * The exit signals this program ignored before anything bound a listener
 * (SIGHUP under `nohup`, SIGINT for a `&` job of a script), read once:
 * afterwards Deno's own handlers are in the way.
 */
let ignoredAtStart: ReadonlySet<typeof EXIT_SIGNALS[number]> | undefined;
const stayIgnored = (): void => {};

function install(): void {
  installed = true;
  globalThis.addEventListener("unload", onUnload);
  globalThis.addEventListener("error", onError);
  globalThis.addEventListener("unhandledrejection", onError);
  if (!handleSignals) return;
  if (ignoredAtStart === undefined) {
    ignoredAtStart = new Set(EXIT_SIGNALS.filter((signal) => signalIgnored(SIGNALS[signal])));
    // Binding any listener makes Deno take over all three, and one with no
    // listener then ends the program. An ignored one gets a listener that
    // does nothing, never removed (signal listeners keep nothing alive): it
    // goes on doing nothing, it cannot end the program (so needs no cleanup
    // of ours), and the program's own listeners for it still run.
    for (const signal of ignoredAtStart) Deno.addSignalListener(signal, stayIgnored);
  }
  for (const [signal, handler] of signalHandlers) {
    if (!ignoredAtStart.has(signal)) Deno.addSignalListener(signal, handler);
  }
}

function uninstall(): void {
  installed = false;
  globalThis.removeEventListener("unload", onUnload);
  globalThis.removeEventListener("error", onError);
  globalThis.removeEventListener("unhandledrejection", onError);
  if (!handleSignals) return;
  for (const [signal, handler] of signalHandlers) {
    if (!ignoredAtStart?.has(signal)) Deno.removeSignalListener(signal, handler);
  }
}
