// Reads of a pipe through Deno's own event loop instead of the poller.
//
// The poller's epoll_wait runs on one of Deno's blocking-pool threads, so a
// helper's reply travels helper -> pool thread -> JavaScript thread: one
// extra thread wake-up per message, about 50 µs on a VM, and the pool thread
// competes with the helper for a CPU while it starts. `node:net` can adopt a
// pipe fd (`new net.Socket({ fd })`, a public Node API that Deno implements
// natively): the fd then sits in the reactor the JavaScript thread itself
// sleeps in, and the helper's write wakes that thread directly, as a
// Deno.Command child's does. Reads go into a buffer of ours (`onread`), one
// read per request: after each chunk the socket pauses until asked again, so
// nothing is read that nobody asked for.
//
// The socket owns the pipe fd while the pipe is in the reactor: at EOF and
// at close() it closes the fd itself. To leave the reactor (PipeEnd does for
// bulk data and BYOB reads, where its own 1 MiB reads are faster), the pipe
// end takes a duplicate first (`leave()`) and reads that from then on.
//
// Loading `node:net` costs a Deno program 20-27 ms once (most of it the
// set-up of Node's `process`), more than a whole spawn round trip with the
// poller. So a program that reads one helper never loads it: the first pipes
// are read through the poller, and only once a second pipe waits does an
// unref'd timer load it, at the next turn of the event loop; pipes read from
// then on go through the reactor. Where it cannot adopt the fd (another
// runtime version, no `process`), the poller serves every pipe.

import { F_DUPFD_CLOEXEC } from "../ffi/constants.ts";
import { SyscallError } from "../ffi/errno.ts";
import { fcntl } from "../ffi/libc.ts";
import { environEntries } from "../ffi/spawn.ts";

interface NodeSocket {
  push(chunk: unknown, encoding?: string): boolean;
  on(event: "end" | "close", listener: () => void): void;
  on(event: "error", listener: (error: Error & { errno?: number }) => void): void;
  resume(): void;
  destroy(): void;
  ref(): void;
  unref(): void;
}

interface NodeNet {
  Socket: new (options: {
    fd: number;
    readable: boolean;
    writable: boolean;
    onread: { buffer: Uint8Array; callback: (bytes: number) => boolean };
  }) => NodeSocket;
}

/** undefined: not loaded yet; null: not to be had (or refused a pipe fd), the poller serves. */
let net: NodeNet | null | undefined;
let pipesSeen = 0;
let loadScheduled = false;

/**
 * Loads the reactor now (`node:net`) rather than once a second pipe waits:
 * for programs that would rather pay the 20-27 ms up front, and for tests.
 * Returns false where it cannot be had (or `UMH_READER=poller` is set).
 */
export function loadReactor(): boolean {
  return nodeNet() !== null;
}

let socketsOpened = 0;

/** How many pipes have been put in the reactor so far (for tests). */
export function reactorSocketsOpened(): number {
  return socketsOpened;
}

/** Whether `node:net` is loaded and reads can go through the reactor (for tests). */
export function reactorLoaded(): boolean {
  return net !== undefined && net !== null;
}

/** `node:net`, or null where it cannot be had; `UMH_READER=poller` turns the reactor off. */
function nodeNet(): NodeNet | null {
  if (net !== undefined) return net;
  // Read from environ itself: Deno.env would need (or prompt for) --allow-env.
  if (environEntries().includes("UMH_READER=poller")) return net = null;
  try {
    const process = (globalThis as { process?: { getBuiltinModule?(id: string): unknown } }).process;
    const loaded = process?.getBuiltinModule?.("node:net") as NodeNet | undefined;
    return net = typeof loaded?.Socket === "function" ? loaded : null;
  } catch {
    return net = null; // on purpose: the poller serves instead
  }
}

/** One chunk: a copy of what one read got (the buffer is reused at once), or null at EOF. */
export type ReactorChunk = Uint8Array<ArrayBuffer> | null;

/** The read side of one pipe end in Deno's reactor. `close()` is idempotent. */
export class ReactorReader {
  readonly #socket: NodeSocket;
  readonly #label: string;
  /** Where every read lands; each chunk is copied out in the read's own callback. */
  readonly #buffer: Uint8Array<ArrayBuffer>;
  #waiting: PromiseWithResolvers<ReactorChunk> | null = null;
  #ended = false;
  #failure: SyscallError | null = null;
  #closed = false;
  #paused = false;
  #refed = true;

  private constructor(socket: NodeSocket, buffer: Uint8Array<ArrayBuffer>, label: string) {
    this.#socket = socket;
    this.#buffer = buffer;
    this.#label = label;
    // EOF is known when the socket pushes null, synchronously with the read
    // that returned 0; "end" follows a tick later (and stays as a fallback).
    const push = socket.push;
    socket.push = (chunk: unknown, encoding?: string): boolean => {
      if (chunk === null) this.#finish(null);
      return push.call(socket, chunk, encoding);
    };
    socket.on("end", () => this.#finish(null));
    socket.on("close", () => this.#finish(null));
    socket.on("error", (error) => {
      const errno = typeof error.errno === "number" ? Math.abs(error.errno) : 5; /* EIO */
      this.#finish(new SyscallError(`Cannot read the ${this.#label}`, "read", errno, { cause: error }));
    });
  }

  /**
   * A reader that takes over `fd`, reading into a buffer of `size` bytes, or
   * null (the fd still the caller's) where the reactor cannot take the pipe.
   * It starts reading at once: call `read()` straight away.
   */
  static open(fd: number, size: number, label: string): ReactorReader | null {
    const nodeNetModule = net;
    if (nodeNetModule === undefined) {
      if (++pipesSeen >= 2 && !loadScheduled) {
        loadScheduled = true;
        Deno.unrefTimer(setTimeout(nodeNet, 0));
      }
      return null;
    }
    if (nodeNetModule === null) return null;
    const buffer = new Uint8Array(size);
    let reader: ReactorReader | null = null;
    try {
      const socket = new nodeNetModule.Socket({
        fd,
        readable: true,
        writable: false,
        onread: { buffer, callback: (bytes: number): boolean => reader!.#chunk(bytes) },
      });
      reader = new ReactorReader(socket, buffer, label);
      socketsOpened++;
      return reader;
    } catch {
      // This runtime cannot adopt a pipe fd (it refuses it before taking
      // it): the poller serves this pipe and every later one.
      net = null;
      return null;
    }
  }

  /** The buffer size: a chunk this long means more may be waiting (bulk data). */
  get size(): number {
    return this.#buffer.length;
  }

  /** The next chunk, or null at EOF. Rejects with SyscallError on a read error. */
  read(): Promise<ReactorChunk> {
    if (this.#waiting !== null) throw new TypeError(`Cannot read the ${this.#label}: a read is already pending`);
    if (this.#failure !== null) return Promise.reject(this.#failure);
    if (this.#ended || this.#closed) return Promise.resolve(null);
    this.#waiting = Promise.withResolvers<ReactorChunk>();
    if (this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
    return this.#waiting.promise;
  }

  /** Keeps the program alive while a read is pending (the default), or not. */
  setRefed(refed: boolean): void {
    if (refed === this.#refed || this.#closed) return;
    this.#refed = refed;
    if (refed) this.#socket.ref();
    else this.#socket.unref();
  }

  /** Takes the pipe out of the reactor and closes its fd; a pending read resolves with null. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#finish(null);
  }

  /** Takes the pipe out of the reactor and hands back a duplicate of its fd, which the caller then owns. */
  leave(fd: number): number {
    const copy = fcntl(fd, F_DUPFD_CLOEXEC, 3, `Cannot read the ${this.#label}`);
    this.close();
    return copy;
  }

  #chunk(bytes: number): boolean {
    const waiting = this.#waiting;
    this.#waiting = null;
    // Pause until the next read() asks: nothing is read that nobody wants.
    this.#paused = true;
    waiting?.resolve(this.#buffer.slice(0, bytes));
    return false;
  }

  #finish(result: SyscallError | null): void {
    if (result !== null) this.#failure ??= result;
    else this.#ended = true;
    const waiting = this.#waiting;
    this.#waiting = null;
    if (waiting === null) return;
    if (this.#failure !== null) waiting.reject(this.#failure);
    else waiting.resolve(null);
  }
}
