// BlobCommand.outputSync(): the one place umh holds the JavaScript thread on
// purpose, as Deno.Command.outputSync() does. No poller and no event loop:
// poll(2) on the helper's stdout and stderr together (so a helper filling one
// pipe while we wait on the other cannot deadlock) until both reach EOF, then
// a blocking waitid(2) for its exit.

import { P_PID, P_PIDFD, SIGNALS } from "../ffi/constants.ts";
import { close, pollReadable, readSome, sendSignal, waitid } from "../ffi/libc.ts";
import { type HelperOutput, type HelperStatus, joinChunks, outputOf, statusOf } from "./status.ts";

/** A started helper process: its pid, pidfd (-1 without) and the owner's pipe ends (-1 where not piped). */
export interface StartedProcess {
  readonly pid: number;
  readonly pidfd: number;
  readonly stdin: number;
  readonly stdout: number;
  readonly stderr: number;
  /** Its parent-death signal is SIGKILL: the kernel kills it when the owner's process goes. */
  readonly covered: boolean;
}

const READ_SIZE = 64 * 1024;

/**
 * Reads `started`'s stdout and stderr to EOF, reaps it and closes every fd it
 * came with. On an error it kills and reaps the helper before rethrowing.
 */
export function collectSync(started: StartedProcess, name: string): HelperOutput {
  const { pid, pidfd } = started;
  const label = (stream: string): string => `${stream} of helper "${name}" (pid ${pid})`;
  const reap = (): HelperStatus =>
    statusOf(waitid(pidfd >= 0 ? P_PIDFD : P_PID, pidfd >= 0 ? pidfd : pid, 0, `Cannot reap helper "${name}"`, true)!);
  if (started.stdin >= 0) close(started.stdin); // EOF for the helper: nobody will write to it
  const streams = [
    { fd: started.stdout, what: label("stdout"), chunks: [] as Uint8Array<ArrayBuffer>[] },
    { fd: started.stderr, what: label("stderr"), chunks: [] as Uint8Array<ArrayBuffer>[] },
  ];
  const buffer = new Uint8Array(READ_SIZE);
  let reaped = false;
  try {
    for (;;) {
      const open = streams.filter((s) => s.fd >= 0);
      if (open.length === 0) break;
      const ready = pollReadable(open.map((s) => s.fd), `Cannot wait for the output of helper "${name}"`);
      for (const stream of open) {
        if (!ready.includes(stream.fd)) continue;
        const n = readSome(stream.fd, buffer, `Cannot read the ${stream.what}`);
        if (n === null) continue;
        if (n > 0) {
          stream.chunks.push(buffer.slice(0, n));
          continue;
        }
        close(stream.fd);
        stream.fd = -1;
      }
    }
    const status = reap();
    reaped = true;
    const [out, err] = [started.stdout, started.stderr].map((fd, i) => fd < 0 ? null : joinChunks(streams[i]!.chunks));
    return outputOf(status, out ?? null, err ?? null);
  } finally {
    if (!reaped) {
      // A read or poll failed: the helper must not outlive the call, nor stay a zombie.
      sendSignal(pidfd, pid, SIGNALS.SIGKILL);
      try {
        reap();
      } catch {
        // ECHILD: something else reaped it; nothing is left to clean.
      }
    }
    for (const stream of streams) if (stream.fd >= 0) close(stream.fd);
    if (pidfd >= 0) close(pidfd);
  }
}
