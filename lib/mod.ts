/**
 * umh: user-mode helpers for Deno. Run an executable carried inside your
 * program from a sealed memfd, with pipes, as the kernel's
 * `fork_usermode_blob()` does for modules, and get back a handle shaped like
 * `Deno.ChildProcess`.
 *
 * @example
 * ```ts
 * import { BlobCommand } from "./mod.ts";
 *
 * const bytes = new TextEncoder().encode("#!/bin/sh\necho hi\n");
 * const { stdout } = await new BlobCommand(bytes).output();
 * console.log(new TextDecoder().decode(stdout)); // "hi\n"
 * ```
 *
 * @module
 */

export { loadBlob, UsermodeBlob } from "./blob.ts";
export type { LoadBlobOptions } from "./blob.ts";
export { BlobCommand } from "./command.ts";
export { SpawnError, SyscallError } from "./errors.ts";
export { forkUsermodeBlob } from "./fork_usermode_blob.ts";
export { DISPOSE_GRACE_MS, UsermodeHelper } from "./helper.ts";
export { HelperReadableStream } from "./helper_stream.ts";
export type { BlobSource, HelperOptions, Stdio } from "./spawn.ts";
export type { HelperOutput, HelperStatus } from "./status.ts";
export { encodeFrame, FrameReader, MAX_FRAME_BYTES } from "./frame.ts";
export { DriverDownError, HelperDiedError, RequestTimeoutError } from "./errors.ts";
export { UsermodeDriver } from "./usermode_driver.ts";
export type { DriverEventDetail, UsermodeDriverOptions } from "./usermode_driver.ts";
export { handleOwnerSignals, killAllHelpersSync } from "./owner_exit.ts";
export { machineInfo } from "./info.ts";
export type { MachineCapability, MachineInfo } from "./info.ts";
export type { LimitValue, ResourceName } from "../ffi/trampoline.ts";
