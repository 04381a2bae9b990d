// The errors umh throws, for `instanceof` checks.

export { SpawnError, SyscallError } from "../ffi/errno.ts";
