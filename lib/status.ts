// Exit status and output shapes, as Deno.CommandStatus / Deno.CommandOutput spell them.

import { CLD_EXITED, type SignalName, SIGNALS, SIGRTMAX } from "../ffi/constants.ts";
import type { WaitResult } from "../ffi/libc.ts";

/**
 * How a helper ended, as `Deno.CommandStatus`: `code` is the exit code, or
 * 128 + the signal number when a signal killed it (`signal` then names it).
 */
export interface HelperStatus {
  /** True when the helper exited with code 0. */
  readonly success: boolean;
  /** Exit code, or 128 + signal number. */
  readonly code: number;
  /** The signal that killed the helper, e.g. `"SIGKILL"`, or `null`. */
  readonly signal: Deno.Signal | null;
}

/** A helper's status plus everything it wrote, as `Deno.CommandOutput`. */
export interface HelperOutput extends HelperStatus {
  /** All of stdout. Throws `TypeError` when stdout was not `"piped"`. */
  readonly stdout: Uint8Array<ArrayBuffer>;
  /** All of stderr. Throws `TypeError` when stderr was not `"piped"`. */
  readonly stderr: Uint8Array<ArrayBuffer>;
}

const SIGNAL_NAMES = new Map<number, SignalName>(
  Object.entries(SIGNALS).map(([name, number]) => [number, name as SignalName]),
);

/** The name of signal `signo` (`"SIGRTMIN+3"`-style names for real-time signals). */
export function signalName(signo: number): Deno.Signal {
  const name = SIGNAL_NAMES.get(signo) ?? (signo >= 34 ? `SIGRTMIN+${signo - 34}` : `SIG${signo}`);
  return name as Deno.Signal;
}

/** Other names Linux has for the same numbers, which `Deno.Signal` also spells. */
const SIGNAL_ALIASES: Readonly<Record<string, number>> = { SIGIOT: 6, SIGPOLL: 29, SIGUNUSED: 31 };

/**
 * The signal number for a name such as `"SIGTERM"` (or a Linux alias such as
 * `"SIGIOT"`), or for a number from 0 to 64 as `Deno.ChildProcess.kill()`
 * takes one; `TypeError` for anything else.
 */
export function signalNumber(signal: string | number): number {
  if (typeof signal === "number") {
    if (Number.isInteger(signal) && signal >= 0 && signal <= SIGRTMAX) return signal;
    throw new TypeError(`Invalid signal: ${signal} (expected a signal name or a number from 0 to ${SIGRTMAX})`);
  }
  const number = (SIGNALS as Record<string, number>)[signal] ?? SIGNAL_ALIASES[signal];
  if (number === undefined) throw new TypeError(`Invalid signal: ${String(signal)} is not a Linux signal name`);
  return number;
}

/** Turns a waitid() result into a status. */
export function statusOf(result: WaitResult): HelperStatus {
  // A null-prototype object, as Deno's own statuses are.
  const exited = result.how === CLD_EXITED;
  const status = {
    __proto__: null,
    success: exited && result.status === 0,
    code: exited ? result.status : 128 + result.status,
    signal: exited ? null : signalName(result.status),
  };
  return status;
}

/** The status of a helper whose exit something else reaped (ECHILD): code -1, as no status is to be had. */
export function lostStatus(): HelperStatus {
  const status = { __proto__: null, success: false, code: -1, signal: null };
  return status;
}

/** Builds an output whose `stdout`/`stderr` getters throw when that stream was not piped. */
export function outputOf(
  status: HelperStatus,
  stdout: Uint8Array<ArrayBuffer> | null,
  stderr: Uint8Array<ArrayBuffer> | null,
): HelperOutput {
  // An ordinary object, as Deno's outputs (sync and async) are; only statuses are null-prototype.
  const output = {
    success: status.success,
    code: status.code,
    signal: status.signal,
    get stdout(): Uint8Array<ArrayBuffer> {
      if (stdout === null) throw new TypeError("Cannot get 'stdout': 'stdout' is not piped");
      return stdout;
    },
    get stderr(): Uint8Array<ArrayBuffer> {
      if (stderr === null) throw new TypeError("Cannot get 'stderr': 'stderr' is not piped");
      return stderr;
    },
  };
  return output;
}

/** All of `chunks` in one array: the chunk itself when there is one (and it is not shared memory), else a copy. */
export function joinChunks(chunks: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  if (chunks.length === 1 && chunks[0]!.buffer instanceof ArrayBuffer) return chunks[0] as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
