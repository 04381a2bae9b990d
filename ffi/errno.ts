// errno: names, the typed error, and one check per return convention.
//
// errno is read through __errno_location() in the same synchronous function as
// the failing call, with no await and no other FFI call in between. The pointer
// is per thread; every synchronous FFI call runs on the JavaScript thread, so
// it is looked up once.

import { libc } from "./symbols.ts";

// Linux errno names by number (asm-generic, shared by x86_64 and aarch64).
// deno-fmt-ignore
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 8: "ENOEXEC",
  9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 15: "ENOTBLK",
  16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL",
  23: "ENFILE", 24: "EMFILE", 25: "ENOTTY", 26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE",
  30: "EROFS", 31: "EMLINK", 32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG",
  37: "ENOLCK", 38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 42: "ENOMSG", 43: "EIDRM", 61: "ENODATA",
  62: "ETIME", 71: "EPROTO", 74: "EBADMSG", 75: "EOVERFLOW", 77: "EBADFD", 79: "ELIBACC", 80: "ELIBBAD",
  83: "ELIBEXEC", 84: "EILSEQ", 95: "EOPNOTSUPP", 110: "ETIMEDOUT", 122: "EDQUOT", 125: "ECANCELED",
  130: "EOWNERDEAD",
};

export const EINTR = 4;
export const EAGAIN = 11;
export const ESRCH = 3;
export const ECHILD = 10;
export const EINVAL = 22;
export const ENOSYS = 38;
export const EPIPE = 32;
export const EACCES = 13;
export const EPERM = 1;
export const ENOENT = 2;
export const EEXIST = 17;
export const ENOEXEC = 8;
export const ENOMEM = 12;
export const ENFILE = 23;
export const EMFILE = 24;

/** The errno's name, e.g. `"ENOEXEC"`, or `"E<n>"` for one without a name here. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `E${errno}`;
}

/** The C library's description of an errno, e.g. "Exec format error". */
export function errnoMessage(errno: number): string {
  const text = libc().strerror(errno);
  return text === null ? `errno ${errno}` : new Deno.UnsafePointerView(text).getCString();
}

let errnoView: Deno.UnsafePointerView | undefined;

/** The calling (JavaScript) thread's current errno. */
export function lastErrno(): number {
  errnoView ??= new Deno.UnsafePointerView(libc().__errno_location()!);
  return errnoView.getInt32();
}

// The Deno error class a Deno API throws for an errno (Deno.errors.NotFound for
// ENOENT, as Deno.Command does), so `instanceof Deno.errors.NotFound` works on
// umh's errors too. Errnos without one stay plain Errors.
const DENO_ERROR_CLASSES: Record<number, keyof typeof Deno.errors> = {
  1: "PermissionDenied", // EPERM
  2: "NotFound", // ENOENT
  4: "Interrupted", // EINTR
  11: "WouldBlock", // EAGAIN
  13: "PermissionDenied", // EACCES
  16: "Busy", // EBUSY
  17: "AlreadyExists", // EEXIST
  20: "NotADirectory", // ENOTDIR
  21: "IsADirectory", // EISDIR
  32: "BrokenPipe", // EPIPE
  40: "FilesystemLoop", // ELOOP
  95: "NotSupported", // EOPNOTSUPP
  110: "TimedOut", // ETIMEDOUT
};

/** Marks umh's errors with the class that made them, for `instanceof` (see SyscallError). */
const MADE_BY = Symbol("umh.errorClass");

/**
 * One prototype per (umh class, Deno error class): a chain that runs through
 * the Deno class. umh's error classes define fields only, no methods, so an
 * error on this chain lacks nothing its own class would give it.
 */
const prototypes = new Map<object, Map<string, object>>();

function prototypeFor(made: object, denoClass: keyof typeof Deno.errors): object {
  let byDenoClass = prototypes.get(made);
  if (byDenoClass === undefined) prototypes.set(made, byDenoClass = new Map());
  let prototype = byDenoClass.get(denoClass);
  if (prototype === undefined) {
    prototype = Object.create(Deno.errors[denoClass].prototype, {
      constructor: { value: made, writable: true, configurable: true },
    }) as object;
    byDenoClass.set(denoClass, prototype);
  }
  return prototype;
}

/**
 * A failed system or C library call. `syscall` names the call, `code` the errno
 * (`"ENOEXEC"`), and `message` says what umh was doing, then what failed:
 * `Cannot spawn "reqrep": posix_spawn() failed with ENOEXEC (Exec format error)`.
 *
 * Where Deno has an error class for the errno, the error is also an instance
 * of it and carries its `name`, as a Deno API's would: ENOENT is a
 * `Deno.errors.NotFound` named `"NotFound"`, EACCES and EPERM a
 * `Deno.errors.PermissionDenied`, EPIPE a `Deno.errors.BrokenPipe`.
 */
export class SyscallError extends Error {
  /** The failing call, without parentheses: `"posix_spawn"`. */
  readonly syscall: string;
  /** The errno number. */
  readonly errno: number;
  /** The errno name, e.g. `"ENOEXEC"`. */
  readonly code: string;

  /**
   * `detail`, when given, replaces the default "<syscall>() failed with
   * <CODE> (<description>)" after the colon.
   */
  constructor(action: string, syscall: string, errno: number, options?: ErrorOptions & { detail?: string }) {
    const code = errnoName(errno);
    const detail = options?.detail ?? `${syscall}() failed with ${code} (${errnoMessage(errno)})`;
    super(`${action}: ${detail}`, options);
    this.name = "SyscallError";
    this.syscall = syscall;
    this.errno = errno;
    this.code = code;
    Object.defineProperty(this, MADE_BY, { value: new.target });
    const denoClass = DENO_ERROR_CLASSES[errno];
    if (denoClass !== undefined && denoClass in Deno.errors) {
      // Same object, same fields; its prototype chain now runs through the
      // Deno class, and instanceof SyscallError / SpawnError goes by MADE_BY.
      Object.setPrototypeOf(this, prototypeFor(new.target, denoClass));
      // And named like it, as Deno's own errors are ("NotFound: ..."); `syscall` and `code` still say what failed.
      this.name = denoClass;
    }
  }

  /** True for errors made by this class or a subclass, whichever prototype chain they got. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== "object" || value === null) return false;
    for (let made = (value as Record<symbol, unknown>)[MADE_BY]; made; made = Object.getPrototypeOf(made)) {
      if (made === this) return true;
    }
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** A helper could not be started: bad blob, exec failure, or a setup step. */
export class SpawnError extends SyscallError {
  /** Same arguments as {@linkcode SyscallError}'s constructor. */
  constructor(action: string, syscall: string, errno: number, options?: ErrorOptions & { detail?: string }) {
    super(action, syscall, errno, options);
    if (this.name === "SyscallError") this.name = "SpawnError"; // where Deno has no class for the errno
  }
}

/**
 * Convention "-1 and errno" (memfd_create, pipe2, fcntl, kill, close, ...):
 * returns `result` when it is not negative, else throws with the thread's errno.
 */
export function checkErrno<T extends number | bigint>(result: T, action: string, syscall: string): T {
  if (result >= 0) return result;
  throw new SyscallError(action, syscall, lastErrno());
}

/**
 * Convention "returns the error number" (the posix_spawn family): errno is not
 * set and must not be read.
 */
export function checkReturned(result: number, action: string, syscall: string): void {
  if (result !== 0) throw new SyscallError(action, syscall, result);
}

/** Like {@linkcode checkReturned}, throwing {@linkcode SpawnError}. */
export function checkSpawn(result: number, action: string, syscall: string): void {
  if (result !== 0) throw new SpawnError(action, syscall, result);
}
