// machineInfo(): what this machine allows umh to do, for `umh info`.

import { ENOENT, ENOSYS, EPERM, errnoName } from "../ffi/errno.ts";
import { glibcVersion } from "../ffi/libc.ts";
import {
  openable,
  probeCloseRange,
  probeExecveat,
  probeMemfdExec,
  type ProbeOutcome,
  probePidfdOpen,
  probeSeals,
  readSmallFile,
  uname,
} from "../ffi/probe.ts";

/** Whether one kernel feature works here, and what was seen. */
export interface MachineCapability {
  /** `true` when it works, `false` when it does not, `null` when umh could not tell. */
  readonly ok: boolean | null;
  /** One line saying what was tried and what happened, e.g. `"memfd_create(MFD_EXEC) failed with EINVAL"`. */
  readonly detail: string;
}

/**
 * What this machine allows. `umh info --json` prints exactly this object:
 *
 * ```json
 * {
 *   "os": "linux",
 *   "arch": "x86_64",
 *   "kernel": "6.1.0-18-amd64",
 *   "glibc": "2.36",
 *   "deno": "2.9.6",
 *   "memfdNoexec": 0,
 *   "mfdExec": { "ok": true, "detail": "memfd_create(MFD_EXEC) accepted" },
 *   "seals": { "ok": true, "detail": "..." },
 *   "pidfdOpen": { "ok": true, "detail": "..." },
 *   "closeRange": { "ok": true, "detail": "..." },
 *   "execveat": { "ok": true, "detail": "..." },
 *   "proc": { "ok": true, "detail": "..." }
 * }
 * ```
 *
 * Every capability is a {@linkcode MachineCapability}: `ok` is `true`,
 * `false`, or `null` when it could not be told; `detail` is for people.
 */
export interface MachineInfo {
  /** `Deno.build.os`, e.g. `"linux"`. */
  readonly os: string;
  /** `Deno.build.arch`: `"x86_64"` or `"aarch64"`; umh picks helper builds by it. */
  readonly arch: string;
  /** Kernel release from uname(2), as `uname -r` prints it. */
  readonly kernel: string;
  /** glibc version, e.g. `"2.36"`. */
  readonly glibc: string;
  /** `Deno.version.deno`. */
  readonly deno: string;
  /**
   * `/proc/sys/vm/memfd_noexec`: `0` (executable memfds allowed), `1` (memfds
   * are non-executable unless asked for with MFD_EXEC), `2` (executable memfds
   * refused: umh falls back to an unnamed tmpfs file), `"absent"` (the file
   * does not exist: Linux before 6.3, which behaves as 0), or `"unknown"` (it
   * could not be read, e.g. without `--allow-read` or `/proc`).
   */
  readonly memfdNoexec: 0 | 1 | 2 | "absent" | "unknown";
  /** memfd_create() accepts MFD_EXEC (Linux 6.3+, and not refused by `vm.memfd_noexec=2`). */
  readonly mfdExec: MachineCapability;
  /** A memfd can be sealed against write, grow, shrink and further sealing, and the seals hold. */
  readonly seals: MachineCapability;
  /** pidfd_open() works (Linux 5.3+); without it umh polls exits by pid. */
  readonly pidfdOpen: MachineCapability;
  /** close_range() works (Linux 5.9+). */
  readonly closeRange: MachineCapability;
  /** execveat() exists (Linux 3.19+); checked without executing anything. */
  readonly execveat: MachineCapability;
  /** `/proc` is mounted (`/proc/self/fd` exists): umh starts helpers through `/proc/self/fd/N`. */
  readonly proc: MachineCapability;
}

/**
 * Probes what this machine allows: kernel and glibc versions, the memfd exec
 * policy, and whether the system calls umh relies on work. Each probe makes
 * at most a memfd, an eventfd or a pidfd, and closes it before returning;
 * nothing is executed.
 *
 * @returns A fresh {@linkcode MachineInfo}; `JSON.stringify` it for the
 *   documented JSON shape.
 *
 * @example
 * ```ts
 * import { machineInfo } from "./mod.ts";
 *
 * const info = machineInfo();
 * console.log(info.kernel, info.glibc, info.memfdNoexec);
 * if (!info.seals.ok) console.warn(`sealed memfds: ${info.seals.detail}`);
 * ```
 */
export function machineInfo(): MachineInfo {
  return {
    os: Deno.build.os,
    arch: Deno.build.arch,
    kernel: uname().release,
    glibc: glibcVersion(),
    deno: Deno.version.deno,
    memfdNoexec: memfdNoexec(),
    mfdExec: mfdExec(probeMemfdExec()),
    seals: seals(probeSeals()),
    pidfdOpen: capability(probePidfdOpen(), "pidfd_open(getpid()) returned a pidfd", "Linux before 5.3"),
    closeRange: capability(probeCloseRange(), "close_range() closed a fresh duplicate fd", "Linux before 5.9"),
    execveat: execveat(probeExecveat()),
    proc: proc(),
  };
}

function failed(outcome: ProbeOutcome): string {
  return outcome.problem ?? `${outcome.syscall}() failed with ${errnoName(outcome.errno)}`;
}

function capability(outcome: ProbeOutcome, works: string, missing: string): MachineCapability {
  if (outcome.errno === 0 && outcome.problem === undefined) return { ok: true, detail: works };
  const why = outcome.errno === ENOSYS ? `: ${missing}` : outcome.errno === EPERM ? ": a seccomp filter?" : "";
  return { ok: false, detail: failed(outcome) + why };
}

function mfdExec(outcome: ProbeOutcome): MachineCapability {
  const code = errnoName(outcome.errno);
  if (outcome.errno === 0) return { ok: true, detail: "memfd_create(MFD_EXEC) accepted" };
  if (code === "EINVAL") {
    return { ok: false, detail: "memfd_create(MFD_EXEC) failed with EINVAL: Linux before 6.3; umh retries without it" };
  }
  if (code === "EACCES") {
    return {
      ok: false,
      detail: "memfd_create(MFD_EXEC) failed with EACCES: vm.memfd_noexec=2; umh falls back to an unnamed tmpfs file",
    };
  }
  return { ok: false, detail: `memfd_create(MFD_EXEC) failed with ${code}` };
}

function seals(outcome: ProbeOutcome): MachineCapability {
  if (outcome.errno === 0 && outcome.problem === undefined) {
    return { ok: true, detail: "F_SEAL_SEAL|SHRINK|GROW|WRITE added and a later write refused" };
  }
  return { ok: false, detail: `${failed(outcome)}; umh falls back to a read-only unnamed tmpfs file` };
}

function execveat(outcome: ProbeOutcome): MachineCapability {
  const code = errnoName(outcome.errno);
  if (code === "EBADF") return { ok: true, detail: 'execveat(-1, "", AT_EMPTY_PATH) failed with EBADF, so it exists' };
  if (code === "ENOSYS") return { ok: false, detail: "execveat() failed with ENOSYS: Linux before 3.19" };
  return { ok: null, detail: `execveat(-1, "", AT_EMPTY_PATH) failed with ${code}, not the expected EBADF` };
}

function memfdNoexec(): MachineInfo["memfdNoexec"] {
  const file = readSmallFile("/proc/sys/vm/memfd_noexec");
  if ("text" in file) {
    const value = Number(file.text.trim());
    return value === 0 || value === 1 || value === 2 ? value : "unknown";
  }
  // Without the file, tell "Linux before 6.3" from "no /proc at all".
  return file.errno === ENOENT && openable("/proc/self/fd") === 0 ? "absent" : "unknown";
}

function proc(): MachineCapability {
  const errno = openable("/proc/self/fd");
  if (errno === 0) return { ok: true, detail: "/proc/self/fd exists" };
  if (errno === ENOENT) return { ok: false, detail: "/proc/self/fd does not exist: /proc is not mounted" };
  return { ok: null, detail: `cannot tell: open("/proc/self/fd") failed with ${errnoName(errno)}` };
}
