// The owner's end of one pipe to or from a helper, as a web stream.
//
// The fd is non-blocking (on the owner's open file description only: the
// helper's end stays blocking). Writes, and reads of bulk data, are
// synchronous FFI calls that either make progress or report EAGAIN, in which
// case the one poller is asked to say when the fd is ready. Messages (reads
// into a default reader until data flows in bulk) come through Deno's own
// reactor instead (lib/reactor.ts), which wakes the JavaScript thread without
// a second thread in between. No thread is held per pipe either way.

import { EPOLLIN, EPOLLOUT, F_SETPIPE_SZ } from "../ffi/constants.ts";
import { EPIPE, SyscallError } from "../ffi/errno.ts";
import { close, fcntl, readSome, writeSome } from "../ffi/libc.ts";
import { describeValue } from "./errors.ts";
import { existingPoller, thePoller, type WaitOwner } from "./poller.ts";
import { HelperReadableStream } from "./helper_stream.ts";
import { ReactorReader } from "./reactor.ts";

const FIRST_READ_SIZE = 64 * 1024;
/** Pipes grow to this once they are seen full, and reads grow to match. */
const BIG_PIPE_SIZE = 1024 * 1024;

/**
 * The buffer every pipe reads into until it sees bulk data: a short reply is
 * copied out of it, so a helper that trades small messages never allocates a
 * 64 KiB buffer of its own (nor leaves one for the collector and malloc to
 * fragment). Reads are synchronous, so one buffer serves all pipes.
 */
const SHARED_SCRATCH = new Uint8Array(FIRST_READ_SIZE);

/**
 * The fd of each live PipeEnd that still owns one directly (not handed to the
 * reactor): closed when its PipeEnd is collected unclosed, so that a handle
 * the program dropped without reading its output (as Deno.Command's children
 * are often left) does not hold its pipes until the process ends.
 */
const dropped = new FinalizationRegistry<{ fd: number }>((cell) => {
  if (cell.fd >= 0) closeOwned(cell.fd);
  cell.fd = -1;
});

/** Closes a pipe fd this process reads or writes itself, taking it out of the poller (if there is one) first. */
function closeOwned(fd: number): void {
  existingPoller()?.forget(fd, true);
  close(fd);
}

/** One owned pipe fd. `close()` is idempotent and also takes it out of the poller. */
export class PipeEnd {
  #fd: number;
  /** What the finalizer closes: #fd while this end owns it, else -1. Never references `this`. */
  readonly #cell: { fd: number };
  readonly #owner: WaitOwner;
  readonly #label: string;
  readonly #onEof: (() => void) | undefined;
  #grown = false;
  #bulk = false;
  #readSize = FIRST_READ_SIZE;
  /**
   * The buffer of the next bulk read, handed over with its chunk. A new one
   * each time, its pages not mapped up front: glibc's calloc serves a recycled
   * 1 MiB heap chunk (its mmap threshold rises past that after the first one
   * is freed) and zeroes it, so the pages are already there, and a
   * madvise(MADV_POPULATE_WRITE) over them only walked them again: without it,
   * default-reader throughput went from a median 1.23 to 1.74 GB/s over 18
   * interleaved runs of 512 MiB, at 3 × the page faults.
   */
  #scratch: Uint8Array<ArrayBuffer> | undefined;
  /**
   * Reads through Deno's reactor, which then owns the fd: undefined until
   * the first read, null once left or refused.
   */
  #reactor: ReactorReader | null | undefined;

  /** Takes ownership of `fd`. `label` names the pipe in errors: `stdout of "cat" (pid 42)`. */
  constructor(fd: number, owner: WaitOwner, label: string, onEof?: () => void) {
    this.#fd = fd;
    this.#cell = { fd };
    dropped.register(this, this.#cell, this);
    this.#owner = owner;
    this.#label = label;
    this.#onEof = onEof;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Closes the fd (once). */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    this.#cell.fd = -1;
    dropped.unregister(this);
    if (this.#reactor) {
      this.#reactor.close(); // the reactor owns the fd and closes it
      this.#reactor = null;
      return;
    }
    closeOwned(fd);
  }

  /** Follows the owner's ref()/unref() for a read pending in the reactor. */
  refChanged(): void {
    this.#reactor?.setRefed(this.#owner.refed);
  }

  /** A byte stream of everything the helper writes; closes the fd at EOF or cancel. */
  readable(): HelperReadableStream {
    return new HelperReadableStream({
      type: "bytes",
      pull: (controller) => {
        const request = controller.byobRequest;
        if (request === null) {
          // Before a pipe's first wait, one plain read: what a helper that has
          // already written (or exited, as for most output() calls) left there
          // comes without setting up a reactor socket at all.
          if (this.#reactor === undefined) {
            const early = this.#readNow();
            if (early !== undefined) {
              if (early === null) controller.close();
              else controller.enqueue(early);
              return;
            }
          }
          const reactor = this.#reactorForRead();
          if (reactor !== null) return this.#pullReactor(reactor, controller);
        }
        return this.#pull(controller, request);
      },
      cancel: () => this.close(),
    });
  }

  async #pull(controller: ReadableByteStreamController, request: ReadableStreamBYOBRequest | null): Promise<void> {
    const view = request?.view;
    const target = view ? new Uint8Array(view.buffer as ArrayBuffer, view.byteOffset, view.byteLength) : undefined;
    const chunk = await this.read(target);
    if (chunk === null) {
      controller.close();
      request?.respond(0);
    } else if (request) {
      request.respond(chunk.length);
    } else {
      controller.enqueue(chunk);
    }
  }

  /**
   * One message through the reactor, with one promise hop: a reply on the
   * way to a waiting reader is the latency every request pays. A chunk that
   * fills the reactor's buffer means bulk data: the pipe then leaves the
   * reactor for reads of its own.
   */
  #pullReactor(reactor: ReactorReader, controller: ReadableByteStreamController): Promise<void> {
    return reactor.read().then((chunk) => {
      if (this.#reactor !== reactor) {
        // close() came first: dispose ends the stream; after cancel() the
        // stream is closed already and these throw TypeError, on purpose ignored.
        try {
          if (chunk !== null) controller.enqueue(chunk);
          controller.close();
        } catch {
          // cancelled: nobody reads any more
        }
        return;
      }
      if (chunk === null) {
        this.#atEof();
        controller.close();
        return;
      }
      if (chunk.length === reactor.size) {
        this.#leaveReactor();
        this.#bulk = true;
        this.#grow();
      }
      controller.enqueue(chunk);
    });
  }

  /** The reactor to read this pipe through, opened on the first read; null where the FFI reads serve. */
  #reactorForRead(): ReactorReader | null {
    if (this.#reactor === undefined) {
      this.#reactor = this.#fd < 0 || this.#bulk ? null : ReactorReader.open(this.#fd, FIRST_READ_SIZE, this.#label);
      this.#reactor?.setRefed(this.#owner.refed);
      if (this.#reactor) this.#cell.fd = -1; // the reactor's socket owns and closes it now
    }
    return this.#reactor;
  }

  /**
   * EOF, read either way: closes the fd and tells the owner. (Through the
   * reactor, the socket would close the fd by itself a tick later; closing it
   * now means nothing is left open once the reader, or `status`, or
   * `output()` has seen the end.)
   */
  #atEof(): void {
    this.close();
    this.#onEof?.();
  }

  /**
   * Reads what is available, waiting for the poller when nothing is: a chunk
   * (in `into` when given), or `null` at EOF, after which the fd is closed.
   */
  async read(into?: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer> | null> {
    // Default reads come here only once the reactor is not used (readable()
    // pulls through it otherwise). A BYOB read goes straight into the
    // caller's buffer, which the reactor cannot do.
    if (into !== undefined) this.#leaveReactor();
    for (;;) {
      const chunk = this.#readNow(into);
      if (chunk !== undefined) return chunk;
      await thePoller().wait(this.#fd, EPOLLIN, this.#owner);
    }
  }

  /**
   * One read(2) of what is there now: a chunk (in `into` when given), `null`
   * at EOF (the fd is then closed), or `undefined` when nothing is (EAGAIN).
   */
  #readNow(into?: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> | null | undefined {
    if (this.#fd < 0) return null;
    const target = into ?? (this.#bulk ? (this.#scratch ??= new Uint8Array(this.#readSize)) : SHARED_SCRATCH);
    const n = readSome(this.#fd, target, `Cannot read the ${this.#label}`);
    if (n === null) return undefined;
    if (n === 0) {
      this.#atEof();
      return null;
    }
    // A read that filled its buffer, or took a default pipe's whole 64 KiB
    // (a BYOB reader's buffer is usually larger than the pipe), means the
    // helper writes in bulk.
    if (n === target.length || n >= FIRST_READ_SIZE) this.#grow();
    if (into) return into.subarray(0, n);
    if (target === SHARED_SCRATCH) {
      // A quarter of the buffer or more at once: data is flowing, so read
      // into buffers of our own from now on and hand them over uncopied.
      if (n >= SHARED_SCRATCH.length / 4) this.#bulk = true;
      return SHARED_SCRATCH.slice(0, n);
    }
    return this.#takeScratch(n);
  }

  /** Reads with FFI calls from now on, from a duplicate of the fd the reactor gives back. */
  #leaveReactor(): void {
    const reactor = this.#reactor;
    this.#reactor = null;
    if (reactor && this.#fd >= 0) this.#fd = this.#cell.fd = reactor.leave(this.#fd);
  }

  /**
   * A chunk of `n` bytes from the scratch buffer: a big read hands the buffer
   * over (no copy) and the next read gets a fresh, possibly larger one; a small
   * read is copied out so a 10-byte reply does not pin a 1 MiB buffer.
   */
  #takeScratch(n: number): Uint8Array<ArrayBuffer> {
    const scratch = this.#scratch!;
    if (n < scratch.length / 4) return scratch.slice(0, n);
    this.#scratch = undefined;
    if (n === scratch.length && this.#readSize < BIG_PIPE_SIZE) this.#readSize *= 2;
    return scratch.subarray(0, n);
  }

  /**
   * A writable stream into the pipe; closing it closes the fd (EOF for the
   * helper). A write that fails (a chunk that is not bytes, EPIPE) errors the
   * stream and closes the fd too, as Deno's does: the helper then sees EOF
   * instead of waiting for input that cannot come.
   */
  writable(): WritableStream<Uint8Array> {
    return new WritableStream({
      write: (chunk) => {
        const written = this.write(chunk);
        // The same promise goes back, not one chained on it: a promise hop
        // per chunk costs bulk writes a third of their speed (bench/).
        written.catch(() => {
          try {
            this.close();
          } catch {
            // The write's own error is the one the stream reports.
          }
        });
        return written;
      },
      close: () => this.close(),
      abort: () => this.close(),
    });
  }

  /**
   * Writes all of `chunk` (any ArrayBuffer or ArrayBufferView, as Deno's
   * stdin takes), waiting for room as needed. Rejects with EPIPE once the
   * helper's end is closed.
   */
  async write(chunk: ArrayBufferView | ArrayBufferLike): Promise<void> {
    const bytes = bytesOf(chunk, this.#label);
    let offset = 0;
    while (offset < bytes.length) {
      if (this.#fd < 0) throw new TypeError(`Cannot write to the ${this.#label}: it is closed`);
      const rest = offset === 0 ? bytes : bytes.subarray(offset);
      let n: number | null;
      try {
        n = writeSome(this.#fd, rest, `Cannot write to the ${this.#label}`);
      } catch (error) {
        if (error instanceof SyscallError && error.errno === EPIPE) {
          throw new SyscallError(`Cannot write to the ${this.#label}: the helper closed it or exited`, "write", EPIPE);
        }
        throw error;
      }
      if (n === null) {
        this.#grow();
        await thePoller().wait(this.#fd, EPOLLOUT, this.#owner);
        continue;
      }
      offset += n;
    }
  }

  /**
   * Grows the pipe to 1 MiB the first time it is seen full: fewer wake-ups for
   * bulk data, and no cost for the many helpers that only trade small messages.
   * Best effort: an unprivileged user over `pipe-user-pages-soft` gets EPERM,
   * and the pipe simply stays at its size.
   */
  #grow(): void {
    if (this.#grown || this.#fd < 0) return;
    this.#grown = true;
    try {
      fcntl(this.#fd, F_SETPIPE_SZ, BIG_PIPE_SIZE, "Cannot grow the pipe");
    } catch {
      // EPERM or EBUSY: keep the current size, on purpose.
    }
  }
}

/**
 * The bytes of a chunk written to a pipe, as a Uint8Array over an
 * ArrayBuffer (FFI cannot take shared memory, which is copied);
 * `TypeError` for anything that is not an ArrayBuffer or a view of one.
 */
function bytesOf(chunk: unknown, label: string): Uint8Array<ArrayBuffer> {
  let bytes: Uint8Array;
  if (chunk instanceof Uint8Array) bytes = chunk;
  else if (ArrayBuffer.isView(chunk)) bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  else if (chunk instanceof ArrayBuffer || chunk instanceof SharedArrayBuffer) bytes = new Uint8Array(chunk);
  else {
    throw new TypeError(
      `Cannot write to the ${label}: expected an ArrayBuffer or ArrayBufferView, got ${describeValue(chunk)}`,
    );
  }
  return bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : bytes.slice();
}
