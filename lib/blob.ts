// loadBlob(): an executable's bytes in a sealed memfd, loaded once, run many times.

import {
  F_ADD_SEALS,
  F_GET_SEALS,
  F_SEAL_EXEC,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_EXEC,
} from "../ffi/constants.ts";
import { cString } from "../ffi/c_string.ts";
import { EACCES, EINVAL, lastErrno, SyscallError } from "../ffi/errno.ts";
import { close, fcntl, libc, memfdCreate, writeAll } from "../ffi/libc.ts";
import { openExecutableTmpfile, reopenReadOnly } from "../ffi/tmpfile.ts";

/** The name of a blob loaded without one: its helpers' default `argv[0]`. */
export const DEFAULT_BLOB_NAME = "umh-blob";
/** Seals that make the memfd immutable: no write, no resize, no more seal changes. */
const REQUIRED_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
const MAX_NAME_BYTES = 249; // memfd_create(2): 249 bytes plus "memfd:" fits NAME_MAX

/** Options for {@linkcode loadBlob}. */
export interface LoadBlobOptions {
  /**
   * The memfd's name, shown as `/proc/<pid>/exe -> /memfd:<name> (deleted)`
   * and used as the helpers' default `argv[0]`. Defaults to `"umh-blob"`.
   */
  name?: string;
  /**
   * A Subresource Integrity digest (`"sha256-<base64>"`, also sha384/sha512)
   * the bytes must match; they are refused before anything is executed.
   */
  integrity?: string;
}

const ELF_MACHINES: Record<number, string> = { 3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv64" };

/**
 * An executable loaded into a sealed, anonymous memory file: the userspace
 * twin of the kernel's `umd_load_blob()`. Start it any number of times with
 * {@linkcode BlobCommand} or {@linkcode forkUsermodeBlob}; the bytes are never
 * copied again. Close it when no more helpers will be started (running
 * helpers are not affected).
 *
 * @example Load once, start twice
 * ```ts
 * import { forkUsermodeBlob, loadBlob } from "./mod.ts";
 * import { blobFor } from "../blobs/mod.ts";
 *
 * using blob = loadBlob(blobFor("cat"), { name: "cat" });
 * for (let i = 0; i < 2; i++) {
 *   await using helper = forkUsermodeBlob(blob);
 *   await helper.stdin.close();
 * }
 * ```
 */
export class UsermodeBlob implements Disposable {
  readonly #name: string;
  readonly #size: number;
  readonly #isScript: boolean;
  readonly #elfMachine: string | null;
  readonly #interpreter: string | null;
  #fd: number;

  /** @internal Use {@linkcode loadBlob}. */
  constructor(fd: number, name: string, bytes: Uint8Array) {
    this.#fd = fd;
    this.#name = name;
    this.#size = bytes.length;
    this.#isScript = bytes[0] === 0x23 && bytes[1] === 0x21; // "#!"
    this.#elfMachine = elfMachine(bytes);
    this.#interpreter = this.#isScript ? scriptInterpreter(bytes) : elfInterpreter(bytes);
  }

  /** The name given at load (the memfd's name). */
  get name(): string {
    return this.#name;
  }

  /** Size in bytes. */
  get size(): number {
    return this.#size;
  }

  /** True for a `#!` script, which needs its memfd kept open across exec. */
  get isScript(): boolean {
    return this.#isScript;
  }

  /** The ELF header's machine (`"x86_64"`, `"aarch64"`, ...), or `null` when the blob is not ELF. */
  get elfMachine(): string | null {
    return this.#elfMachine;
  }

  /**
   * The interpreter the kernel runs it with: the one a `#!` script names
   * (`"/bin/sh"`), or a dynamically linked ELF's loader (its PT_INTERP,
   * `"/lib64/ld-linux-x86-64.so.2"`); `null` for a static ELF.
   */
  get interpreter(): string | null {
    return this.#interpreter;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * **UNSAFE**: the memfd's descriptor number, for inspection and FFI. It is
   * owned by this object: never close it yourself.
   */
  get unsafeFd(): number {
    if (this.#fd < 0) throw new TypeError(`Cannot use blob "${this.#name}": it is closed`);
    return this.#fd;
  }

  /** Closes the memfd. Safe to call twice. Helpers already started keep running. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    close(fd);
  }

  /** Same as {@linkcode UsermodeBlob.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function scriptInterpreter(bytes: Uint8Array): string {
  const end = bytes.indexOf(0x0a);
  const line = new TextDecoder().decode(bytes.subarray(2, end < 0 ? Math.min(bytes.length, 256) : end));
  // As the kernel reads it: after "#!" and any blanks, up to a blank or the
  // line's end. A "\r" (a script saved with CRLF line endings) is part of the name.
  return line.replace(/^[ \t]+/, "").split(/[ \t]/)[0] ?? "";
}

/** The ELF header's machine of `bytes` (`"x86_64"`, ...), or `null` when they are not ELF. */
export function elfMachine(bytes: Uint8Array): string | null {
  if (bytes.length < 20 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    return null;
  }
  const machine = bytes[18]! | (bytes[19]! << 8); // e_machine, little-endian on both targets
  return ELF_MACHINES[machine] ?? `ELF machine ${machine}`;
}

/** A 64-bit little-endian ELF's PT_INTERP path (its dynamic loader), or null: static, or not such an ELF. */
export function elfInterpreter(bytes: Uint8Array): string | null {
  if (elfMachine(bytes) === null || bytes[4] !== 2 || bytes[5] !== 1 || bytes.length < 64) return null; // ELFCLASS64, LSB
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (phentsize < 56 || at + 56 > bytes.length) return null;
    if (view.getUint32(at, true) !== 3) continue; // PT_INTERP
    const offset = Number(view.getBigUint64(at + 8, true));
    const size = Number(view.getBigUint64(at + 32, true));
    if (size < 2 || offset + size > bytes.length) return null;
    const path = bytes.subarray(offset, offset + size);
    const nul = path.indexOf(0);
    return new TextDecoder().decode(nul < 0 ? path : path.subarray(0, nul)); // up to the NUL, as the kernel reads it
  }
  return null;
}

/**
 * Copies `bytes` into a new memfd and seals it against write, grow, shrink and
 * further sealing, so that neither this process nor anyone who opens
 * `/proc/<pid>/fd/N` can change what will be executed. Nothing touches disk.
 *
 * @param bytes The executable (ELF or `#!` script), e.g. from
 *   `import helper from "./helper.bin" with { type: "bytes" }`.
 * @param options `name` and `integrity`.
 * @returns The loaded blob; the caller owns it and closes it (or `using`).
 *
 * @example
 * ```ts
 * import { loadBlob } from "./mod.ts";
 *
 * const bytes = new TextEncoder().encode("#!/bin/sh\necho hi\n");
 * using blob = loadBlob(bytes, { name: "hi" });
 * console.log(blob.name, blob.size); // "hi" 18
 * ```
 */
export function loadBlob(bytes: Uint8Array, options: LoadBlobOptions = {}): UsermodeBlob {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("Cannot load blob: expected a Uint8Array of an executable");
  const name = options.name ?? DEFAULT_BLOB_NAME;
  const nameBytes = cString(name, "blob name");
  if (nameBytes.length - 1 > MAX_NAME_BYTES) {
    throw new TypeError(
      `Invalid blob name: it is ${nameBytes.length - 1} bytes, and memfd names hold at most ${MAX_NAME_BYTES}`,
    );
  }
  if (bytes.length === 0) throw new TypeError(`Cannot load blob "${name}": it is empty (0 bytes)`);
  if (options.integrity !== undefined) checkIntegrity(bytes, options.integrity, name);

  const action = `Cannot load blob "${name}"`;
  const { fd, sealable } = createExecutableFd(nameBytes, action);
  try {
    const copy = bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : bytes.slice();
    writeAll(fd, copy, action);
    if (sealable) seal(fd, action);
  } catch (error) {
    close(fd);
    throw error;
  }
  return new UsermodeBlob(sealable ? fd : reopenReadOnly(fd, action), name, bytes);
}

/**
 * A memfd that may be executed: MFD_EXEC where the kernel knows it (6.3+,
 * EINVAL before), and when `vm.memfd_noexec=2` forbids executable memfds
 * (EACCES), an unnamed O_TMPFILE on a tmpfs that allows exec.
 */
function createExecutableFd(name: Uint8Array<ArrayBuffer>, action: string): { fd: number; sealable: boolean } {
  const flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  let fd = memfdCreate(name, flags | MFD_EXEC);
  if (fd >= 0) return { fd, sealable: true };
  let errno = lastErrno();
  if (errno === EINVAL) {
    fd = memfdCreate(name, flags);
    if (fd >= 0) return { fd, sealable: true };
    errno = lastErrno();
  }
  const memfdError = new SyscallError(action, "memfd_create", errno);
  // Only a policy denial (vm.memfd_noexec=2) has a way around; EMFILE, ENOMEM
  // and the rest are the answer.
  if (errno !== EACCES) throw memfdError;
  return { fd: openExecutableTmpfile(action, memfdError), sealable: false };
}

function seal(fd: number, action: string): void {
  // F_SEAL_EXEC (6.3+) keeps the exec bits as they are; older kernels say EINVAL.
  libc().fcntl(fd, F_ADD_SEALS, BigInt(F_SEAL_EXEC));
  fcntl(fd, F_ADD_SEALS, REQUIRED_SEALS, action);
  const seals = fcntl(fd, F_GET_SEALS, 0, action);
  if ((seals & REQUIRED_SEALS) !== REQUIRED_SEALS) {
    throw new Error(`${action}: the kernel reports seals 0x${seals.toString(16)} after sealing`);
  }
}

const SRI_ALGORITHMS: Record<string, string> = { sha256: "sha256", sha384: "sha384", sha512: "sha512" };

interface NodeCrypto {
  createHash(algorithm: string): { update(data: Uint8Array): { digest(encoding: "base64"): string } };
}

/**
 * node:crypto, fetched synchronously on first use. A static import would make
 * every program that imports umh start Node compatibility: ~45 ms of start-up
 * and ~11 MB of RSS measured here, for an option few use (and Deno 2.9.6
 * panics at that start-up where /proc is not mounted).
 */
function nodeCrypto(): NodeCrypto {
  const process = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const crypto = process?.getBuiltinModule?.("node:crypto") as NodeCrypto | undefined;
  if (crypto === undefined) throw new Error("Cannot check a blob's integrity: node:crypto is not available here");
  return crypto;
}

function checkIntegrity(bytes: Uint8Array, integrity: string, name: string): void {
  const match = /^(sha256|sha384|sha512)-([A-Za-z0-9+/]+={0,2})$/.exec(integrity.trim());
  if (!match) {
    throw new TypeError(`Invalid integrity "${integrity}": expected "sha256-<base64>" (or sha384, sha512)`);
  }
  const actual = nodeCrypto().createHash(SRI_ALGORITHMS[match[1]!]!).update(bytes).digest("base64");
  if (actual !== match[2]) {
    throw new Error(
      `Cannot load blob "${name}": integrity check failed: expected ${match[1]}-${match[2]}, got ${match[1]}-${actual}`,
    );
  }
}
