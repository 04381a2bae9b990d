// The owner's exit kills the helpers it started (the `rmmod` analogue).
//
// Deno does not kill children at exit (denoland/deno#8772). Two mechanisms
// do it here:
// - The kernel. A helper gets a parent-death signal (PR_SET_PDEATHSIG,
//   SIGKILL unless the program chose another), so however the owner ends
//   (an uncaught error, a signal's default action, a SIGKILL nobody can
//   catch) the kernel kills the helper as the process goes, as it kills a
//   module's helper. The signal follows the thread that spawned: a Worker's
//   helpers go when the Worker ends. A helper whose signal is SIGKILL is
//   "covered": any other it may trap or ignore.
// - JavaScript. At a normal end or Deno.exit() ("unload"), every live,
//   non-detached helper gets SIGTERM, a short grace and SIGKILL, and is
//   reaped, synchronously, before the process goes. While a helper that is
//   not covered lives (started through posix_spawn, which cannot set the
//   signal, or with another `parentDeathSignal` or null), umh also listens for
//   uncaught errors and, in the main thread, SIGINT, SIGTERM and SIGHUP.
// With only covered helpers alive umh listens for no signal and no error
// event, so the program's own listeners (a graceful shutdown, a
// preventDefault()) work exactly as they would without umh. A Worker never
// listens for signals: they belong to the process, and a Worker's listener
// swallowed them (its Deno.exit() ends only the Worker).
//
// The listeners exist only while helpers are alive.

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
/** The live helpers not covered by a SIGKILL parent-death signal: only they need the error and signal listeners. */
const uncovered = new Set<LiveHelper>();
let installed = false;
let guarded = false;
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
 * without SIGKILL as their parent-death signal live (started through
 * posix_spawn, or with another `parentDeathSignal` or null; the default), killing them and then dying of
 * that signal (its default action, as the program would without a
 * listener). Other helpers need no listener: the kernel kills them as the
 * owner goes. A program with its own handlers for those signals and such
 * helpers should turn this off and call {@linkcode killAllHelpersSync}
 * itself. Only the main thread ever listens.
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
  if (guarded) unguard();
  handleSignals = enabled;
  if (uncovered.size > 0) guard();
}

/**
 * Adds a helper to those killed at owner exit. `covered`: the kernel kills
 * it when the owner's process goes (its parent-death signal is SIGKILL).
 */
export function registerLive(helper: LiveHelper, covered: boolean): void {
  live.add(helper);
  if (!covered) uncovered.add(helper);
  if (!installed) install();
  if (!covered && !guarded) guard();
}

/** Removes a helper (it exited, or was reaped). */
export function forgetLive(helper: LiveHelper): void {
  live.delete(helper);
  uncovered.delete(helper);
  const idle = (installed && live.size === 0) || (guarded && uncovered.size === 0);
  if (idle && uninstallTimer === undefined) {
    const timer = setTimeout(() => {
      uninstallTimer = undefined;
      if (guarded && uncovered.size === 0) unguard();
      if (installed && live.size === 0) uninstall();
    }, UNINSTALL_DELAY_MS);
    Deno.unrefTimer(timer);
    uninstallTimer = timer;
  }
}

/** True in the main isolate, whose thread lives as long as the process; false in a Worker. */
const IN_MAIN_THREAD = !("WorkerGlobalScope" in globalThis);

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
  for (const helper of helpers) {
    live.delete(helper);
    uncovered.delete(helper);
  }
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
    // the signal, as without umh (main thread only: guard() binds nothing in
    // a Worker). Should the signal not end it, exit with 128 + n.
    dieOfSignal(SIGNALS[signal]);
    Deno.exit(128 + SIGNALS[signal]);
  }]),
);

/**
 * The exit signals this program ignored before anything bound a listener
 * (SIGHUP under `nohup`, SIGINT for a `&` job of a script), read once:
 * afterwards Deno's own handlers are in the way.
 */
let ignoredAtStart: ReadonlySet<typeof EXIT_SIGNALS[number]> | undefined;
let stayIgnoredBound = false;
const stayIgnored = (): void => {};

function install(): void {
  installed = true;
  globalThis.addEventListener("unload", onUnload);
  // Read at the first spawn, before the program's own listeners are likely
  // to exist, even if guard() is needed only much later.
  if (IN_MAIN_THREAD) ignoredAtStart ??= readIgnored();
}

function readIgnored(): ReadonlySet<typeof EXIT_SIGNALS[number]> {
  return new Set(EXIT_SIGNALS.filter((signal) => signalIgnored(SIGNALS[signal])));
}

function uninstall(): void {
  installed = false;
  globalThis.removeEventListener("unload", onUnload);
}

/** The error and signal listeners, for helpers the kernel would not kill. */
function guard(): void {
  guarded = true;
  globalThis.addEventListener("error", onError);
  globalThis.addEventListener("unhandledrejection", onError);
  if (!handleSignals || !IN_MAIN_THREAD) return;
  if (!stayIgnoredBound) {
    stayIgnoredBound = true;
    ignoredAtStart ??= readIgnored();
    // Binding any listener makes Deno take over all three, and one with no
    // listener then ends the program. An ignored one gets a listener that
    // does nothing, never removed (signal listeners keep nothing alive): it
    // goes on doing nothing, it cannot end the program (so needs no cleanup
    // of ours), and the program's own listeners for it still run.
    for (const signal of ignoredAtStart) Deno.addSignalListener(signal, stayIgnored);
  }
  for (const [signal, handler] of signalHandlers) {
    if (!ignoredAtStart!.has(signal)) Deno.addSignalListener(signal, handler);
  }
}

function unguard(): void {
  guarded = false;
  globalThis.removeEventListener("error", onError);
  globalThis.removeEventListener("unhandledrejection", onError);
  if (!handleSignals || !IN_MAIN_THREAD) return;
  for (const [signal, handler] of signalHandlers) {
    if (!ignoredAtStart?.has(signal)) Deno.removeSignalListener(signal, handler);
  }
}
