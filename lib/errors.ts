// The errors umh throws, for `instanceof` checks.

import type { HelperStatus } from "./status.ts";

export { SpawnError, SyscallError } from "../ffi/errno.ts";

/** "code 3" or "SIGKILL (code 137)". */
export function describeStatus(status: HelperStatus): string {
  return status.signal ? `killed by ${status.signal} (code ${status.code})` : `exited with code ${status.code}`;
}

/**
 * A helper died while a request to it was in flight: it crashed, was
 * OOM-killed, killed by someone else, or exited. `status` says how.
 *
 * @example
 * ```ts
 * import { HelperDiedError } from "./mod.ts";
 * const error = new HelperDiedError("reqrep", 42, { success: false, code: 137, signal: "SIGKILL" });
 * console.log(error.message); // 'Helper "reqrep" (pid 42) died: killed by SIGKILL (code 137)'
 * ```
 */
export class HelperDiedError extends Error {
  /** The pid that died. */
  readonly pid: number;
  /** How it ended. */
  readonly status: HelperStatus;

  /**
   * Describes the death of helper `name`.
   *
   * @param name The helper's name.
   * @param pid Its pid.
   * @param status How it ended.
   */
  constructor(name: string, pid: number, status: HelperStatus) {
    super(`Helper "${name}" (pid ${pid}) died: ${describeStatus(status)}`);
    this.name = "HelperDiedError";
    this.pid = pid;
    this.status = status;
  }
}

/**
 * A request got no reply in time. The helper is killed (its protocol state is
 * unknown) and restarted for the next request.
 *
 * @example
 * ```ts
 * import { RequestTimeoutError } from "./mod.ts";
 * console.log(new RequestTimeoutError("reqrep", 42, 100).message);
 * ```
 */
export class RequestTimeoutError extends Error {
  /** The pid that did not answer. */
  readonly pid: number;
  /** The timeout that passed, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * Describes a request to helper `name` that got no reply.
   *
   * @param name The helper's name.
   * @param pid Its pid.
   * @param timeoutMs The timeout that passed.
   */
  constructor(name: string, pid: number, timeoutMs: number) {
    super(`Request to helper "${name}" (pid ${pid}) timed out after ${timeoutMs} ms: the helper was killed`);
    this.name = "RequestTimeoutError";
    this.pid = pid;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A {@linkcode UsermodeDriver} is down: stopped, or out of restart budget.
 *
 * @example
 * ```ts
 * import { DriverDownError } from "./mod.ts";
 * console.log(new DriverDownError("reqrep", "it was stopped").message);
 * ```
 */
export class DriverDownError extends Error {
  /**
   * Says why driver `name` is down.
   *
   * @param name The driver's name.
   * @param reason Why it is down.
   * @param options The last failure as `cause`.
   */
  constructor(name: string, reason: string, options?: ErrorOptions) {
    super(`Driver "${name}" is down: ${reason}`, options);
    this.name = "DriverDownError";
  }
}

/** How an error message names a bad value: a string quoted, an object by its class, anything else as is. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || typeof value !== "object") return String(value);
  return value.constructor?.name ?? "an object";
}
