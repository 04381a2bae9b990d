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

/** Adds a helper to those killed at owner exit. */
export function registerLive(helper: LiveHelper): void {
  live.add(helper);
  if (!installed) install();
}

/** Removes a helper (it exited, or was reaped). */
export function forgetLive(helper: LiveHelper): void {
  live.delete(helper);
  if (live.size === 0 && installed) uninstall();
}

/** Number of live, non-detached helpers. */
export function liveHelperCount(): number {
  return live.size;
}

/**
 * Stops every live helper now: SIGTERM, up to `graceMs` for them to exit,
 * then SIGKILL, and reaps each. Synchronous, for exit paths that cannot await.
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

const signalHandlers = new Map<Deno.Signal, () => void>(
  EXIT_SIGNALS.map((signal) => [signal, (): void => {
    killAllHelpersSync();
    // Deno replaced the default action when a listener was added; exit as the
    // signal would have, with 128 + its number.
    Deno.exit(128 + SIGNALS[signal]);
  }]),
);

function install(): void {
  installed = true;
  globalThis.addEventListener("unload", onUnload);
  globalThis.addEventListener("error", onError);
  globalThis.addEventListener("unhandledrejection", onError);
  for (const [signal, handler] of signalHandlers) Deno.addSignalListener(signal, handler);
}

function uninstall(): void {
  installed = false;
  globalThis.removeEventListener("unload", onUnload);
  globalThis.removeEventListener("error", onError);
  globalThis.removeEventListener("unhandledrejection", onError);
  for (const [signal, handler] of signalHandlers) Deno.removeSignalListener(signal, handler);
}
