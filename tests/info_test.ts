// machineInfo() and `umh info`: the documented JSON shape, values that agree
// with what other tools say about this machine, and no fd left behind.
// /proc is read through child processes (`cat`), because Deno refuses /proc
// paths without --allow-all.

import assert from "node:assert/strict";
import { type MachineCapability, type MachineInfo, machineInfo } from "../lib/info.ts";
import { fdCount, hasCommand, ROOT } from "./test_util.ts";

async function sh(command: string): Promise<{ code: number; stdout: string }> {
  const { code, stdout } = await new Deno.Command("sh", { args: ["-c", command], stderr: "null" }).output();
  return { code, stdout: new TextDecoder().decode(stdout).trim() };
}

async function umhInfoJson(wrapper: string[] = []): Promise<unknown> {
  const umh = [Deno.execPath(), "run", "--allow-ffi", "--allow-read", `${ROOT}/main.ts`, "info", "--json"];
  const [program, ...args] = [...wrapper, ...umh];
  const { code, stdout, stderr } = await new Deno.Command(program!, { args, cwd: ROOT }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout));
}

const CAPABILITIES = ["mfdExec", "seals", "pidfdOpen", "closeRange", "execveat", "proc"] as const;

/** Asserts `value` has exactly the documented MachineInfo shape and types. */
function assertMachineInfoShape(value: unknown): asserts value is MachineInfo {
  assert.ok(typeof value === "object" && value !== null);
  const info = value as Record<string, unknown>;
  assert.deepEqual(
    Object.keys(info).sort(),
    ["arch", "deno", "glibc", "kernel", "memfdNoexec", "os", ...CAPABILITIES].sort(),
  );
  for (const key of ["os", "arch", "kernel", "glibc", "deno"]) assert.equal(typeof info[key], "string", key);
  assert.ok([0, 1, 2, "absent", "unknown"].includes(info.memfdNoexec as number), `memfdNoexec ${info.memfdNoexec}`);
  for (const key of CAPABILITIES) {
    const capability = info[key] as MachineCapability;
    assert.deepEqual(Object.keys(capability).sort(), ["detail", "ok"], key);
    assert.ok(capability.ok === true || capability.ok === false || capability.ok === null, key);
    assert.equal(typeof capability.detail, "string", key);
    assert.notEqual(capability.detail, "", key);
  }
}

function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = release.split(".").map((part) => parseInt(part, 10));
  return a > major || (a === major && b >= minor);
}

Deno.test("umh info --json prints the documented MachineInfo shape", async () => {
  assertMachineInfoShape(await umhInfoJson());
});

Deno.test("machineInfo() agrees with uname, getconf and /proc", async () => {
  const info = machineInfo();
  assertMachineInfoShape(info);
  assert.equal(info.os, "linux");
  assert.equal(info.arch, Deno.build.arch);
  assert.equal(info.arch, (await sh("uname -m")).stdout);
  assert.equal(info.kernel, (await sh("uname -r")).stdout);
  assert.equal(info.kernel, (await sh("cat /proc/sys/kernel/osrelease")).stdout);
  assert.equal(`glibc ${info.glibc}`, (await sh("getconf GNU_LIBC_VERSION")).stdout);
  assert.equal(info.deno, Deno.version.deno);
  const noexec = await sh("cat /proc/sys/vm/memfd_noexec");
  assert.equal(info.memfdNoexec, noexec.code === 0 ? Number(noexec.stdout) : "absent");
  assert.equal(info.proc.ok, true);
});

Deno.test("machineInfo() finds what this kernel version has", () => {
  const info = machineInfo();
  assert.equal(info.seals.ok, true, info.seals.detail);
  assert.equal(info.execveat.ok, true, info.execveat.detail);
  assert.match(info.execveat.detail, /EBADF/);
  if (kernelAtLeast(info.kernel, 5, 3)) assert.equal(info.pidfdOpen.ok, true, info.pidfdOpen.detail);
  if (kernelAtLeast(info.kernel, 5, 9)) assert.equal(info.closeRange.ok, true, info.closeRange.detail);
  if (kernelAtLeast(info.kernel, 6, 3)) {
    assert.notEqual(info.memfdNoexec, "absent");
    assert.equal(info.mfdExec.ok, info.memfdNoexec !== 2, info.mfdExec.detail);
  } else {
    assert.equal(info.mfdExec.ok, false);
    assert.match(info.mfdExec.detail, /EINVAL/);
  }
});

Deno.test("machineInfo() closes every fd it opens", () => {
  machineInfo(); // opens libc and Deno's lazily created fds first
  const before = fdCount();
  for (let i = 0; i < 5; i++) machineInfo();
  assert.equal(fdCount(), before);
});

// Namespaces let the tests see other machines: a pid namespace has its own
// vm.memfd_noexec, and a mount namespace can lose /proc.
const canUnshare = hasCommand("unshare") &&
  (await sh("unshare -p -f --mount-proc true && unshare -m true")).code === 0;
if (!canUnshare) console.log("info_test: skipping the namespace tests: they need root and a working unshare(1)");

Deno.test({
  name: "umh info --json reports vm.memfd_noexec=2 and the EACCES it causes",
  ignore: !canUnshare,
  fn: async () => {
    const wrapper = [
      "unshare",
      "-p",
      "-f",
      "--mount-proc",
      "sh",
      "-c",
      '(echo 2 > /proc/sys/vm/memfd_noexec) 2>/dev/null; exec "$@"',
      "-",
    ];
    const info = await umhInfoJson(wrapper);
    assertMachineInfoShape(info);
    if (!kernelAtLeast(info.kernel, 6, 3)) return; // no such setting: the echo above failed and nothing ran
    assert.equal(info.memfdNoexec, 2);
    assert.equal(info.mfdExec.ok, false);
    assert.match(info.mfdExec.detail, /EACCES/);
    assert.equal(info.seals.ok, true, "memfds without MFD_EXEC still seal");
  },
});

// Not through main.ts: Deno 2.9.6 panics at start-up without /proc once
// node:crypto is imported ("no /proc/self/exe available"), and lib/blob.ts
// imports it. lib/info.ts alone does not.
Deno.test({
  name: "machineInfo() reports a missing /proc",
  ignore: !canUnshare,
  fn: async () => {
    const script = `import { machineInfo } from "${ROOT}/lib/info.ts"; console.log(JSON.stringify(machineInfo()));`;
    const { code, stdout, stderr } = await new Deno.Command("unshare", {
      args: ["-m", "sh", "-c", 'umount -l /proc && exec "$@"', "-", Deno.execPath(), "eval", "--ext=ts", script],
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const info = JSON.parse(new TextDecoder().decode(stdout));
    assertMachineInfoShape(info);
    assert.equal(info.proc.ok, false);
    assert.match(info.proc.detail, /not mounted/);
    assert.equal(info.memfdNoexec, "unknown");
    assert.equal(info.seals.ok, true);
  },
});
