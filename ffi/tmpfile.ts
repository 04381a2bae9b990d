// The fallback when executable memfds are forbidden (vm.memfd_noexec=2): an
// unnamed O_TMPFILE file on a tmpfs mounted with exec, as the kernel's own
// usermode helper used a tmpfs file. It never has a name on any filesystem and
// lives in memory, but it cannot be sealed; instead the writable descriptor is
// closed once the bytes are in and only a read-only one is kept, which also
// keeps exec from failing with ETXTBSY.

import { O_CLOEXEC, O_RDONLY, O_RDWR, O_TMPFILE } from "./constants.ts";
import { errnoName, lastErrno, SyscallError } from "./errno.ts";
import { libc } from "./symbols.ts";

const TMPFS_MAGIC = 0x01021994n;
const ST_NOEXEC = 8n;
const SIZEOF_STATFS = 120;
const STATFS_FLAGS_OFFSET = 80; // struct statfs: ten 8-byte fields, then f_flags (x86_64 and aarch64)

/** Directories tried, in order, for an executable unnamed tmpfs file. */
export function tmpfileDirectories(): string[] {
  const dirs = ["/dev/shm", `/run/user/${Deno.uid() ?? 0}`, "/tmp", "/run"];
  return [...new Set(dirs)];
}

/**
 * Opens an unnamed, executable file on a tmpfs. `memfdError` is why a memfd
 * could not be used; if no directory works either, the error lists both.
 */
export function openExecutableTmpfile(action: string, memfdError: SyscallError): number {
  const c = libc();
  const tried: string[] = [`memfd_create(): ${memfdError.code}`];
  for (const dir of tmpfileDirectories()) {
    const fd = c.open(new TextEncoder().encode(dir + "\0"), O_TMPFILE | O_RDWR | O_CLOEXEC, 0o700);
    if (fd < 0) {
      tried.push(`O_TMPFILE in ${dir}: ${errnoName(lastErrno())}`);
      continue;
    }
    const why = unsuitable(fd);
    if (why === null) return fd;
    c.close(fd);
    tried.push(`O_TMPFILE in ${dir}: ${why}`);
  }
  throw new Error(`${action}: no executable in-memory file could be made (tried ${tried.join("; ")})`, {
    cause: memfdError,
  });
}

function unsuitable(fd: number): string | null {
  const buffer = new Uint8Array(SIZEOF_STATFS);
  if (libc().fstatfs(fd, buffer) < 0) return `fstatfs ${errnoName(lastErrno())}`;
  const view = new DataView(buffer.buffer);
  if (view.getBigUint64(0, true) !== TMPFS_MAGIC) return "not a tmpfs (would be disk)";
  if (view.getBigUint64(STATFS_FLAGS_OFFSET, true) & ST_NOEXEC) return "mounted noexec";
  return null;
}

/**
 * Swaps a writable fd for a read-only one on the same file, closing the
 * writable one. The mode drops to 0500 first: a speed bump only (the owner's
 * uid can chmod it back), since a tmpfile cannot be sealed.
 */
export function reopenReadOnly(fd: number, action: string): number {
  const c = libc();
  let readOnly = -1;
  let syscall = "fchmod";
  let errno = c.fchmod(fd, 0o500) < 0 ? lastErrno() : 0;
  if (errno === 0) {
    readOnly = c.open(new TextEncoder().encode(`/proc/self/fd/${fd}\0`), O_RDONLY | O_CLOEXEC, 0);
    syscall = "open";
    errno = readOnly < 0 ? lastErrno() : 0;
  }
  c.close(fd); // the writable one goes, whatever happened
  if (errno !== 0) throw new SyscallError(action, syscall, errno);
  return readOnly;
}
