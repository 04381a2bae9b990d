// One poller for every helper's pipes and exit.
//
// Deno's blocking thread pool has about 32 threads; a read or wait parked there
// per helper stalls the whole program at a few dozen helpers. Instead, every
// fd umh waits on (pipe ends, pidfds) sits in one epoll set, and at most one
// `epoll_wait` is in flight, as a nonblocking FFI call: one pool thread for
// all helpers. Reads and writes of ready fds are synchronous and short.
//
// Each wait is one-shot (EPOLLONESHOT) and carries a fresh token, so a stale
// event for an fd that was closed and reused is recognised and dropped.
//
// Keep-alive follows Deno's ref()/unref(): while some wait belongs to a ref'd
// helper, the epoll_wait call is in flight and keeps the event loop alive.
// When only unref'd waits remain, an unref'd timer polls with a zero timeout,
// so they still complete while the program runs for other reasons, without
// holding it open.

import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLLIN,
  EPOLLONESHOT,
  SIZEOF_EPOLL_EVENT,
} from "../ffi/constants.ts";
import { EEXIST, ENOENT, SyscallError } from "../ffi/errno.ts";
import {
  close,
  epollCreate,
  epollCtl,
  epollEventAt,
  epollWait,
  epollWaitAsync,
  eventfd,
  eventfdSignal,
  readSome,
} from "../ffi/libc.ts";

const MAX_EVENTS = 256;
const UNREF_POLL_MS = 10;
const WAKE_TOKEN = 0;

/** Who is waiting: decides whether the wait keeps the event loop alive. */
export interface WaitOwner {
  readonly refed: boolean;
}

interface Wait {
  readonly fd: number;
  readonly owner: WaitOwner;
  readonly resolve: (events: number) => void;
}

class Poller {
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #events = new Uint8Array(MAX_EVENTS * SIZEOF_EPOLL_EVENT);
  readonly #eventsView = new DataView(this.#events.buffer);
  readonly #wakeBuffer = new Uint8Array(8);
  readonly #waits = new Map<number, Wait>();
  /** fds in the epoll set → the token of their current wait, or 0. */
  readonly #registered = new Map<number, number>();
  #nextToken = 1;
  #inFlight = false;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor() {
    this.#epfd = epollCreate();
    let wakeFd = -1;
    try {
      wakeFd = this.#wakeFd = eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
      this.#ctl(EPOLL_CTL_ADD, wakeFd, EPOLLIN, WAKE_TOKEN);
    } catch (error) {
      // No half-made poller holding an fd (EMFILE at the eventfd, say).
      if (wakeFd >= 0) close(wakeFd);
      close(this.#epfd);
      throw error;
    }
  }

  /** Resolves with the ready events once `fd` is ready for `events` (EPOLLIN / EPOLLOUT). */
  wait(fd: number, events: number, owner: WaitOwner): Promise<number> {
    const { promise, resolve } = Promise.withResolvers<number>();
    const token = this.#nextToken++;
    const previous = this.#registered.get(fd);
    if (previous !== undefined && previous !== 0) this.#waits.delete(previous);
    const op = previous === undefined ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    this.#ctl(op, fd, events | EPOLLONESHOT, token);
    this.#registered.set(fd, token);
    this.#waits.set(token, { fd, owner, resolve });
    this.refresh();
    return promise;
  }

  /**
   * Takes `fd` out of the set before its owner closes it; a pending wait on it
   * resolves with 0 events.
   */
  forget(fd: number, closing = false): void {
    const token = this.#registered.get(fd);
    if (token === undefined) return;
    this.#registered.delete(fd);
    const wait = this.#waits.get(token);
    this.#waits.delete(token);
    // A caller about to close `fd` needs no EPOLL_CTL_DEL: closing the last
    // descriptor of a file takes it out of the set. Should another process
    // briefly hold the file (a child between fork and exec), its one-shot
    // event carries a token nobody waits for and is dropped.
    if (!closing) this.#ctl(EPOLL_CTL_DEL, fd, 0, 0);
    wait?.resolve(0);
    this.refresh();
  }

  /** Number of waits pending, for tests and `umh info`. */
  get pending(): number {
    return this.#waits.size;
  }

  /** Re-decides between the ref'd epoll_wait call, the unref'd timer, and idle. */
  refresh(): void {
    const keepAlive = this.#keepsAlive();
    if (keepAlive) {
      this.#stopTimer();
      if (!this.#inFlight) void this.#run();
      return;
    }
    if (this.#inFlight) this.#wake();
    if (this.#waits.size > 0 && this.#timer === undefined) {
      const timer = setInterval(() => this.#pollNow(), UNREF_POLL_MS);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    } else if (this.#waits.size === 0) {
      this.#stopTimer();
    }
  }

  #keepsAlive(): boolean {
    for (const wait of this.#waits.values()) if (wait.owner.refed) return true;
    return false;
  }

  async #run(): Promise<void> {
    this.#inFlight = true;
    try {
      while (this.#keepsAlive()) {
        const n = await epollWaitAsync(this.#epfd, this.#events);
        if (n > 0) this.#dispatch(n);
      }
    } finally {
      this.#inFlight = false;
    }
    this.refresh();
  }

  #pollNow(): void {
    if (this.#inFlight) return;
    const n = epollWait(this.#epfd, this.#events, 0);
    if (n > 0) this.#dispatch(n);
    this.refresh();
  }

  #dispatch(n: number): void {
    for (let i = 0; i < n; i++) {
      const [events, token] = epollEventAt(this.#eventsView, i);
      if (token === WAKE_TOKEN) {
        // Drain the counter; EAGAIN (another wake already drained it) is fine.
        readSome(this.#wakeFd, this.#wakeBuffer, "Cannot reset the poller's eventfd");
        continue;
      }
      const wait = this.#waits.get(token);
      if (wait === undefined) continue; // stale: the fd was re-armed or forgotten
      this.#waits.delete(token);
      if (this.#registered.get(wait.fd) === token) this.#registered.set(wait.fd, 0);
      wait.resolve(events);
    }
  }

  #wake(): void {
    eventfdSignal(this.#wakeFd);
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #ctl(op: number, fd: number, events: number, token: number): void {
    const errno = epollCtl(this.#epfd, op, fd, events, token);
    // ENOENT on DEL: the fd was never armed. EEXIST cannot happen (we track ADD).
    if (errno === 0 || (op === EPOLL_CTL_DEL && errno === ENOENT)) return;
    if (errno === EEXIST && op === EPOLL_CTL_ADD) {
      this.#ctl(EPOLL_CTL_MOD, fd, events, token);
      return;
    }
    throw new SyscallError(`Cannot watch fd ${fd}`, "epoll_ctl", errno);
  }
}

let poller: Poller | undefined;

/** The process-wide poller, created on first use. */
export function thePoller(): Poller {
  return poller ??= new Poller();
}

/**
 * The poller if it exists, for callers that only take an fd out of it or
 * refresh it: one that was never made has nothing to forget, and making it
 * then (which can fail with EMFILE) must not stand between them and a close().
 */
export function existingPoller(): Poller | undefined {
  return poller;
}

export type { Poller };
