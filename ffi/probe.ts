// Probes for `umh info`: each tries one kernel feature umh relies on, cleans
// up every fd it made, and reports the failing call and its errno (0 when the
// feature worked). Interpreting an errno ("EINVAL: Linux before 6.3") is left
// to lib/info.ts; nothing here throws for a missing feature.
//
// Files under /proc are read with open(2)/read(2) here rather than with Deno's
// file APIs, because Deno refuses every /proc path without --allow-all.
//
// Raw pointers stay in this file: uname(2) and execveat(2) go through glibc's
// syscall(), whose arguments are declared as plain i64, so the buffers' addresses
// are passed as numbers while the buffers are held in local variables.

import {
  AT_EMPTY_PATH,
  EFD_CLOEXEC,
  F_ADD_SEALS,
  F_GET_SEALS,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_EXEC,
  O_CLOEXEC,
  O_RDONLY,
  SYS_close_range,
  SYS_execveat,
} from "./constants.ts";
import { lastErrno } from "./errno.ts";
import { libc, pidfdOpen } from "./libc.ts";
import { addressOf } from "./pointer.ts";

/** What one probe saw: the call that decided it, and its errno (0 when it worked). */
export interface ProbeOutcome {
  /** The deciding call, e.g. `"memfd_create"`. */
  readonly syscall: string;
  /** Its errno, or 0 when it succeeded. */
  readonly errno: number;
  /** Set when the call returned success but did not do what it should. */
  readonly problem?: string;
}

/** The fields of `struct utsname` that umh reports. */
export interface Utsname {
  /** `"Linux"`. */
  readonly sysname: string;
  /** Kernel release, e.g. `"6.1.0-18-amd64"`, as `uname -r` prints it. */
  readonly release: string;
  /** Machine, e.g. `"x86_64"` or `"aarch64"`, as `uname -m` prints it. */
  readonly machine: string;
}

// uname(2) is 63 on x86_64 and 160 on aarch64 (asm-generic).
const SYS_uname = Deno.build.arch === "aarch64" ? 160 : 63;
const UTSNAME_FIELD = 65; // each of struct utsname's six char arrays (__NEW_UTS_LEN + 1)
const F_DUPFD_CLOEXEC = 1030;
const REQUIRED_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

function syscall(number: number, ...args: bigint[]): number {
  const [a = 0n, b = 0n, c = 0n, d = 0n, e = 0n, f = 0n] = args;
  return Number(libc().syscall(BigInt(number), a, b, c, d, e, f));
}

/** uname(2) through the raw syscall, so it needs neither `/proc` nor `--allow-sys`. */
export function uname(): Utsname {
  const buffer = new Uint8Array(UTSNAME_FIELD * 6);
  if (syscall(SYS_uname, addressOf(buffer)) < 0) {
    return { sysname: "unknown", release: "unknown", machine: "unknown" };
  }
  const field = (i: number): string => {
    const bytes = buffer.subarray(i * UTSNAME_FIELD, (i + 1) * UTSNAME_FIELD);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(bytes.subarray(0, end < 0 ? bytes.length : end));
  };
  return { sysname: field(0), release: field(2), machine: field(4) };
}

function memfd(name: string, flags: number): number {
  return libc().memfd_create(new TextEncoder().encode(name + "\0"), flags);
}

/** memfd_create(MFD_EXEC): EINVAL before Linux 6.3, EACCES under `vm.memfd_noexec=2`. */
export function probeMemfdExec(): ProbeOutcome {
  const fd = memfd("umh-probe-exec", MFD_CLOEXEC | MFD_EXEC);
  if (fd < 0) return { syscall: "memfd_create", errno: lastErrno() };
  libc().close(fd);
  return { syscall: "memfd_create", errno: 0 };
}

/**
 * Creates a sealable memfd, writes a byte, adds the seals umh uses, reads them
 * back with F_GET_SEALS, and checks that a further write is refused (EPERM).
 */
export function probeSeals(): ProbeOutcome {
  const c = libc();
  const fd = memfd("umh-probe-seals", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return { syscall: "memfd_create", errno: lastErrno() };
  try {
    const byte = new Uint8Array([0x7f]);
    if (Number(c.write(fd, byte, 1n)) !== 1) return { syscall: "write", errno: lastErrno() };
    if (c.fcntl(fd, F_ADD_SEALS, BigInt(REQUIRED_SEALS)) < 0) return { syscall: "fcntl", errno: lastErrno() };
    const seals = c.fcntl(fd, F_GET_SEALS, 0n);
    if (seals < 0) return { syscall: "fcntl", errno: lastErrno() };
    if ((seals & REQUIRED_SEALS) !== REQUIRED_SEALS) {
      return { syscall: "fcntl", errno: 0, problem: `F_GET_SEALS reports 0x${seals.toString(16)}` };
    }
    if (Number(c.write(fd, byte, 1n)) >= 0) {
      return { syscall: "write", errno: 0, problem: "a write after F_SEAL_WRITE succeeded" };
    }
    return { syscall: "fcntl", errno: 0 };
  } finally {
    c.close(fd);
  }
}

/** pidfd_open(2) on this process (ENOSYS before Linux 5.3). */
export function probePidfdOpen(): ProbeOutcome {
  const fd = pidfdOpen(libc().getpid());
  if (fd < 0) return { syscall: "pidfd_open", errno: -fd };
  libc().close(fd);
  return { syscall: "pidfd_open", errno: 0 };
}

/**
 * close_range(2) (Linux 5.9+) on a fresh duplicate of an eventfd, so it can
 * close nothing else. The duplicate is not checked afterwards: once closed,
 * its number may already belong to another thread's new fd.
 */
export function probeCloseRange(): ProbeOutcome {
  const c = libc();
  const fd = c.eventfd(0, EFD_CLOEXEC);
  if (fd < 0) return { syscall: "eventfd", errno: lastErrno() };
  try {
    const dup = c.fcntl(fd, F_DUPFD_CLOEXEC, 3n);
    if (dup < 0) return { syscall: "fcntl", errno: lastErrno() };
    if (syscall(SYS_close_range, BigInt(dup), BigInt(dup), 0n) === 0) return { syscall: "close_range", errno: 0 };
    const errno = lastErrno();
    c.close(dup);
    return { syscall: "close_range", errno };
  } finally {
    c.close(fd);
  }
}

/**
 * Whether execveat(2) exists (Linux 3.19+), without executing anything: it is
 * called on fd -1 with an empty path and AT_EMPTY_PATH, which can only fail.
 * EBADF means the kernel has it; ENOSYS means it does not; EPERM is a seccomp
 * filter.
 */
export function probeExecveat(): ProbeOutcome {
  const empty = new Uint8Array(1); // ""
  const result = syscall(SYS_execveat, -1n, addressOf(empty), 0n, 0n, BigInt(AT_EMPTY_PATH));
  const errno = result < 0 ? lastErrno() : 0;
  empty[0] = 0; // keeps `empty` alive until the call has returned
  return { syscall: "execveat", errno };
}

/**
 * The contents of a small file (such as `/proc/sys/vm/memfd_noexec`) read with
 * open(2)/read(2), or the errno of the call that failed (ENOENT when absent).
 */
export function readSmallFile(path: string): { text: string } | { errno: number } {
  const c = libc();
  const fd = c.open(new TextEncoder().encode(path + "\0"), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return { errno: lastErrno() };
  try {
    const buffer = new Uint8Array(4096);
    const n = Number(c.read(fd, buffer, BigInt(buffer.length)));
    if (n < 0) return { errno: lastErrno() };
    return { text: new TextDecoder().decode(buffer.subarray(0, n)) };
  } finally {
    c.close(fd);
  }
}

/** 0 when `path` can be opened for reading (a directory too), else the errno of open(2). */
export function openable(path: string): number {
  const c = libc();
  const fd = c.open(new TextEncoder().encode(path + "\0"), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return lastErrno();
  c.close(fd);
  return 0;
}
