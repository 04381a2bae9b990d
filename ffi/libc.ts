// Thin wrappers over the libc table: each calls, checks its return convention,
// and throws SyscallError. The poller's hot-path calls (read, write) return
// `null` for EAGAIN instead of throwing.

import {
  EPOLL_CLOEXEC,
  EPOLL_EVENT_DATA_OFFSET,
  F_SETFL,
  O_NONBLOCK,
  POLLIN,
  SIGINFO_CODE_OFFSET,
  SIGINFO_PID_OFFSET,
  SIGINFO_STATUS_OFFSET,
  SIZEOF_EPOLL_EVENT,
  SIZEOF_POLLFD,
  SIZEOF_SIGINFO_T,
  SYS_pidfd_open,
  SYS_pidfd_send_signal,
  SYS_rt_sigaction,
  WEXITED,
  WNOHANG,
} from "./constants.ts";
import { checkErrno, EAGAIN, EINTR, lastErrno, SyscallError } from "./errno.ts";
import { addressOf } from "./pointer.ts";
import { libc } from "./symbols.ts";

export { libc };

/** memfd_create(2). Convention: -1 and errno. */
export function memfdCreate(name: Uint8Array<ArrayBuffer>, flags: number): number {
  return libc().memfd_create(name, flags);
}

/** close(2). Never retried on EINTR: on Linux the fd is gone either way. */
export function close(fd: number): void {
  checkErrno(libc().close(fd), `Cannot close fd ${fd}`, "close");
}

/** fcntl(2) with an integer argument. Convention: -1 and errno. */
export function fcntl(fd: number, cmd: number, arg: number, action: string): number {
  return checkErrno(libc().fcntl(fd, cmd, BigInt(arg)), action, "fcntl");
}

/** Sets O_NONBLOCK on this open file description only (not on the other pipe end). */
export function setNonblocking(fd: number): void {
  // One call: F_SETFL ignores the access mode, and a pipe end fresh from
  // pipe2(O_CLOEXEC) has no other status flag to keep.
  fcntl(fd, F_SETFL, O_NONBLOCK, "Cannot make a pipe non-blocking");
}

/** pipe2(2) → `[readEnd, writeEnd]`. Convention: -1 and errno. */
export function pipe2(flags: number, action: string): [number, number] {
  const fds = new Int32Array(2);
  checkErrno(libc().pipe2(fds, flags), action, "pipe2");
  return [fds[0]!, fds[1]!];
}

/**
 * Writes all of `bytes` to a blocking fd, retrying short writes and EINTR.
 * Convention: -1 and errno.
 */
export function writeAll(fd: number, bytes: Uint8Array<ArrayBuffer>, action: string): void {
  const write = libc().write;
  let offset = 0;
  while (offset < bytes.length) {
    const n = Number(write(fd, bytes.subarray(offset), BigInt(bytes.length - offset)));
    if (n < 0) {
      const errno = lastErrno();
      if (errno === EINTR) continue;
      throw new SyscallError(action, "write", errno);
    }
    offset += n;
  }
}

/**
 * One read(2) from a non-blocking fd into `buffer`: the byte count (0 at EOF),
 * or `null` when nothing is ready (EAGAIN). EINTR is retried.
 */
export function readSome(fd: number, buffer: Uint8Array<ArrayBuffer>, action: string): number | null {
  const read = libc().read;
  for (;;) {
    const n = Number(read(fd, buffer, BigInt(buffer.length)));
    if (n >= 0) return n;
    const errno = lastErrno();
    if (errno === EAGAIN) return null;
    if (errno !== EINTR) throw new SyscallError(action, "read", errno);
  }
}

/**
 * One write(2) to a non-blocking fd: the count written, or `null` when the
 * pipe is full (EAGAIN). EINTR is retried; EPIPE throws.
 */
export function writeSome(fd: number, bytes: Uint8Array<ArrayBuffer>, action: string): number | null {
  const write = libc().write;
  for (;;) {
    const n = Number(write(fd, bytes, BigInt(bytes.length)));
    if (n >= 0) return n;
    const errno = lastErrno();
    if (errno === EAGAIN) return null;
    if (errno !== EINTR) throw new SyscallError(action, "write", errno);
  }
}

/** eventfd(2). Convention: -1 and errno. */
export function eventfd(flags: number): number {
  return checkErrno(libc().eventfd(0, flags), "Cannot create the poller's wake-up eventfd", "eventfd");
}

/** epoll_create1(EPOLL_CLOEXEC). Convention: -1 and errno. */
export function epollCreate(): number {
  return checkErrno(libc().epoll_create1(EPOLL_CLOEXEC), "Cannot create the poller", "epoll_create1");
}

// One reusable struct epoll_event for epoll_ctl: the kernel copies it in.
const ctlEvent = new Uint8Array(SIZEOF_EPOLL_EVENT);
const ctlView = new DataView(ctlEvent.buffer);

/** epoll_ctl(2) with `token` as the event's data. Returns the errno, 0 on success. */
export function epollCtl(epfd: number, op: number, fd: number, events: number, token: number): number {
  ctlView.setUint32(0, events, true);
  ctlView.setBigUint64(EPOLL_EVENT_DATA_OFFSET, BigInt(token), true);
  return libc().epoll_ctl(epfd, op, fd, ctlEvent) < 0 ? lastErrno() : 0;
}

/** epoll_wait(2) with a timeout, on this thread: the number of events (0 on EINTR). */
export function epollWait(epfd: number, events: Uint8Array<ArrayBuffer>, timeoutMs: number): number {
  const n = libc().epoll_wait(epfd, events, events.length / SIZEOF_EPOLL_EVENT, timeoutMs);
  if (n >= 0) return n;
  const errno = lastErrno();
  if (errno === EINTR) return 0;
  throw new SyscallError("Cannot poll the helpers", "epoll_wait", errno);
}

/**
 * epoll_wait(2) with no timeout, on one of Deno's blocking-pool threads.
 * errno lives on that thread and cannot be read here, so a failure (only
 * EINTR is expected) resolves to 0 events.
 */
export async function epollWaitAsync(epfd: number, events: Uint8Array<ArrayBuffer>): Promise<number> {
  const n = await libc().epoll_wait_nonblocking(epfd, events, events.length / SIZEOF_EPOLL_EVENT, -1);
  return Math.max(n, 0);
}

/** Adds 1 to an eventfd's counter, waking a poller blocked on it. */
export function eventfdSignal(fd: number): void {
  libc().write(fd, ONE, 8n);
}

const ONE = new Uint8Array(new BigUint64Array([1n]).buffer);

/** Reads event `i` of an epoll_wait result buffer as `[events, token]`. */
export function epollEventAt(view: DataView, i: number): [number, number] {
  const base = i * SIZEOF_EPOLL_EVENT;
  return [view.getUint32(base, true), Number(view.getBigUint64(base + EPOLL_EVENT_DATA_OFFSET, true))];
}

/**
 * pidfd_open(2): a descriptor for the child `pid`, or `-errno` (ENOSYS before
 * Linux 5.3) so the caller can fall back.
 */
export function pidfdOpen(pid: number): number {
  const { pidfd_open, syscall } = libc();
  const fd = pidfd_open ? pidfd_open(pid, 0) : Number(syscall(BigInt(SYS_pidfd_open), BigInt(pid), 0n, 0n, 0n, 0n, 0n));
  return fd >= 0 ? fd : -lastErrno();
}

/** pidfd_send_signal(2), or kill(2) when `pidfd` is negative. Returns the errno, 0 on success. */
export function sendSignal(pidfd: number, pid: number, signo: number): number {
  const { pidfd_send_signal, syscall, kill } = libc();
  let result: number;
  if (pidfd < 0) result = kill(pid, signo);
  else if (pidfd_send_signal) result = pidfd_send_signal(pidfd, signo, null, 0);
  else result = Number(syscall(BigInt(SYS_pidfd_send_signal), BigInt(pidfd), BigInt(signo), 0n, 0n, 0n, 0n));
  return result < 0 ? lastErrno() : 0;
}

/**
 * poll(2) for POLLIN on `fds`, waiting as long as it takes and holding this
 * thread (for the synchronous APIs only). Returns the fds that are readable or
 * hung up. EINTR is retried. Convention: -1 and errno.
 */
export function pollReadable(fds: readonly number[], action: string): number[] {
  const table = new Uint8Array(fds.length * SIZEOF_POLLFD);
  const view = new DataView(table.buffer);
  fds.forEach((fd, i) => {
    view.setInt32(i * SIZEOF_POLLFD, fd, true);
    view.setInt16(i * SIZEOF_POLLFD + 4, POLLIN, true);
  });
  while (libc().poll(table, BigInt(fds.length), -1) < 0) {
    const errno = lastErrno();
    if (errno !== EINTR) throw new SyscallError(action, "poll", errno);
  }
  return fds.filter((_, i) => view.getInt16(i * SIZEOF_POLLFD + 6, true) !== 0);
}

/** sched_yield(2): lets another runnable thread on this CPU go first. Never fails on Linux. */
export function yieldCpu(): void {
  libc().sched_yield();
}

/** How a reaped child ended, from its siginfo_t. */
export interface WaitResult {
  /** CLD_EXITED, CLD_KILLED or CLD_DUMPED. */
  readonly how: number;
  /** Exit code for CLD_EXITED, signal number otherwise. */
  readonly status: number;
}

const siginfo = new Uint8Array(SIZEOF_SIGINFO_T);
const siginfoView = new DataView(siginfo.buffer);

/**
 * waitid(2) with WEXITED | WNOHANG (plus `extraOptions`) on `idtype`/`id`
 * (P_PIDFD with a pidfd, or P_PID with a pid): the result, or `null` while the
 * child runs. With `block`, no WNOHANG: it waits, holding this thread. EINTR
 * is retried. Convention: -1 and errno.
 */
export function waitid(
  idtype: number,
  id: number,
  extraOptions: number,
  action: string,
  block = false,
): WaitResult | null {
  const call = libc().waitid;
  siginfo.fill(0);
  for (;;) {
    if (call(idtype, id, siginfo, extraOptions | (block ? 0 : WNOHANG) | WEXITED) === 0) break;
    const errno = lastErrno();
    if (errno !== EINTR) throw new SyscallError(action, "waitid", errno);
  }
  if (siginfoView.getInt32(SIGINFO_PID_OFFSET, true) === 0) return null;
  return {
    how: siginfoView.getInt32(SIGINFO_CODE_OFFSET, true),
    status: siginfoView.getInt32(SIGINFO_STATUS_OFFSET, true),
  };
}

/** The glibc version string, e.g. "2.36". */
export function glibcVersion(): string {
  const p = libc().gnu_get_libc_version();
  return p === null ? "unknown" : Deno.UnsafePointerView.getCString(p);
}

/** SIG_DFL and SIG_IGN, as rt_sigaction(2) takes them. */
const SIG_DFL = 0n;
const SIG_IGN = 1n;

/**
 * rt_sigaction(2) on `signo`: sets the plain `handler` (SIG_DFL or SIG_IGN,
 * no flags, empty mask) when given; returns the handler it had, or null
 * where the call failed.
 */
function signalAction(signo: number, handler?: bigint): bigint | null {
  // struct kernel_sigaction: handler, flags, restorer, mask (the same on both arches).
  const action = new BigUint64Array(4);
  const old = new BigUint64Array(4);
  if (handler !== undefined) action[0] = handler;
  const result = libc().syscall(
    BigInt(SYS_rt_sigaction),
    BigInt(signo),
    handler === undefined ? 0n : addressOf(action),
    addressOf(old),
    8n,
    0n,
    0n,
  );
  return result === 0n ? old[0]! : null;
}

/** Whether this process ignores `signo` (SIG_IGN), as one started under `nohup` ignores SIGHUP. */
export function signalIgnored(signo: number): boolean {
  return signalAction(signo) === SIG_IGN;
}

/**
 * Sets `signo` back to its default action and sends it to this process, so
 * that the process dies of it (its parent then sees the signal, not an exit
 * code). Returns only where that did not happen (a signal whose default is
 * not to terminate); the caller then exits itself.
 */
export function dieOfSignal(signo: number): void {
  if (signalAction(signo, SIG_DFL) === null) return;
  const { kill, getpid } = libc();
  kill(getpid(), signo);
}
