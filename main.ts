// umh: the command line. Parses argv, calls lib/, prints `error: <message>`
// to stderr and exits with the helper's code (128 + signal when killed).

import { parseArgs } from "node:util";
import { blobFor } from "./blobs/mod.ts";
import {
  BlobCommand,
  type DriverEventDetail,
  encodeFrame,
  forkUsermodeBlob,
  FrameReader,
  type HelperStatus,
  loadBlob,
  type UsermodeBlob,
  UsermodeDriver,
} from "./lib/mod.ts";
import { type MachineCapability, type MachineInfo, machineInfo } from "./lib/info.ts";

const USAGE = `umh: run executables from memory, as the kernel's fork_usermode_blob() does

Usage:
  umh [demo]                 start the built-in request/reply helper from memory and talk to it
  umh run <file|-> [options] [-- args...]
                             run any executable from memory with inherited stdio
  umh info [--json]          what this machine allows: kernel, glibc, memfd policy, syscalls
  umh --help                 this text; "umh <command> --help" for one command

Needs --allow-ffi (umh calls libc directly) and --allow-read to read a file for "run".`;

const INFO_USAGE = `umh info: what this machine allows umh to do. Nothing is executed: each
check makes a memfd, an eventfd or a pidfd and closes it again.

Usage:
  umh info [--json]

Options:
  --json                 print one JSON object instead of a table
  -h, --help             this text

Shows: arch, kernel (uname -r), glibc and Deno versions, vm.memfd_noexec
(0, 1, 2, or "absent" before Linux 6.3), and whether MFD_EXEC, memfd seals,
pidfd_open, close_range and execveat work and /proc is mounted.

JSON shape (see MachineInfo in lib/info.ts):
  { "os", "arch", "kernel", "glibc", "deno": string,
    "memfdNoexec": 0 | 1 | 2 | "absent" | "unknown",
    "mfdExec", "seals", "pidfdOpen", "closeRange", "execveat", "proc":
      { "ok": true | false | null, "detail": string } }

Examples:
  umh info
  umh info --json | jq .memfdNoexec`;

const DEMO_USAGE = `umh demo: load the compiled-in request/reply helper into a sealed memfd,
start it with pipes, exchange a few framed messages, and reap it.

Usage:
  umh demo`;

const RUN_USAGE = `umh run: run an executable from memory; nothing is written to disk.

Usage:
  umh run <file|-> [options] [-- args...]

Options:
  --name <name>          memfd name and argv[0] (default: the file's base name)
  --integrity <sri>      refuse the file unless it matches, e.g. sha256-<base64>
  --env KEY=VALUE        set a variable (repeatable)
  --clear-env            start from an empty environment
  --cwd <dir>            working directory of the helper
  -h, --help             this text

The exit code is the helper's, or 128 + the signal number if a signal killed it.

Examples:
  umh run /bin/echo -- hello world
  cat ./tool | umh run - --name tool -- --version
  umh run ./helper --integrity sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= --clear-env --env A=1`;

/** Runs the CLI and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command = "demo", ...rest] = argv;
  if (command === "--help" || command === "-h" || command === "help") return usage(USAGE);
  if (command === "demo") return rest.includes("--help") || rest.includes("-h") ? usage(DEMO_USAGE) : await demo();
  if (command === "run") return await run(rest);
  if (command === "info") return info(rest);
  throw new Error(`Unknown command "${command}": try "umh --help"`);
}

function usage(text: string): number {
  console.log(text);
  return 0;
}

async function demo(): Promise<number> {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const started = performance.now();
  using blob = loadBlob(blobFor("reqrep"), { name: "umh-demo" });
  const status = await (async (): Promise<HelperStatus> => {
    await using helper = forkUsermodeBlob(blob);
    console.log(`helper "${blob.name}" (${blob.size} bytes, from a sealed memfd) started as pid ${helper.pid}`);
    const writer = helper.stdin.getWriter();
    const frames = new FrameReader(helper.stdout);
    for (const message of ["hello", "!pid", "goodbye"]) {
      await writer.write(encodeFrame(encoder.encode(message)));
      const reply = await frames.next();
      console.log(`  sent ${JSON.stringify(message)}, got ${JSON.stringify(reply && decoder.decode(reply))}`);
    }
    await writer.close(); // EOF on pipe_to_umh: the helper exits
    return await helper.status;
  })();
  console.log(`exited: ${describe(status)} after ${(performance.now() - started).toFixed(1)} ms`);
  await supervisedDemo(blob);
  return status.code;
}

/** The same helper under a UsermodeDriver: killed mid-session, restarted on the next request. */
async function supervisedDemo(blob: UsermodeBlob): Promise<void> {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  console.log("supervised by a UsermodeDriver:");
  await using driver = new UsermodeDriver(blob, { name: "umh-demo", backoffInitialMs: 10 });
  driver.addEventListener("exit", (event) => {
    const { pid, status } = (event as CustomEvent<DriverEventDetail>).detail;
    console.log(`  event: pid ${pid} ${describe(status!)}`);
  });
  driver.addEventListener("restart", (event) => {
    const { pid, previousPid, delayMs } = (event as CustomEvent<DriverEventDetail>).detail;
    console.log(`  event: restarted as pid ${pid} (was ${previousPid}) after ${delayMs} ms`);
  });
  const pid = await driver.start();
  console.log(`  pid ${pid} answers ${JSON.stringify(decoder.decode(await driver.request(encoder.encode("ping"))))}`);
  const inFlight = driver.request(encoder.encode("!sleep 1000"));
  setTimeout(() => driver.kill("SIGKILL"), 50); // as an admin would, mid-request
  const error = await inFlight.then(() => null, (e: unknown) => e);
  console.log(`  request in flight: ${error instanceof Error ? error.message : "answered"}`);
  const reply = decoder.decode(await driver.request(encoder.encode("!pid")));
  console.log(`  next request served by pid ${reply} (restarts: ${driver.restarts})`);
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      integrity: { type: "string" },
      env: { type: "string", multiple: true },
      "clear-env": { type: "boolean" },
      cwd: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return usage(RUN_USAGE);
  const [file, ...helperArgs] = positionals;
  if (file === undefined) throw new Error('Missing file: "umh run <file|-> [-- args...]"');
  const bytes = file === "-" ? await readAll(Deno.stdin.readable) : await Deno.readFile(file);
  const name = values.name ?? (file === "-" ? "stdin" : file.split("/").pop()!);
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`Invalid --env "${pair}": expected KEY=VALUE`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  using blob = loadBlob(bytes, { name, integrity: values.integrity });
  const helper = new BlobCommand(blob, {
    args: helperArgs,
    env,
    clearEnv: values["clear-env"] ?? false,
    cwd: values.cwd,
    stdin: file === "-" ? "null" : "inherit",
  }).spawn();
  return (await helper.status).code;
}

function info(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) return usage(INFO_USAGE);
  const machine = machineInfo();
  console.log(values.json ? JSON.stringify(machine, null, 2) : infoTable(machine));
  return 0;
}

const NOEXEC_MEANING: Record<string, string> = {
  0: "executable memfds allowed",
  1: "memfds are non-executable unless created with MFD_EXEC",
  2: "executable memfds refused: umh uses an unnamed tmpfs file",
  absent: "no such setting: Linux before 6.3, executable memfds allowed",
  unknown: "could not be read",
};

function infoTable(machine: MachineInfo): string {
  const mark = (c: MachineCapability): string => c.ok === true ? "yes" : c.ok === false ? "no " : "?  ";
  const rows: [string, string][] = [
    ["arch", machine.arch],
    ["kernel", machine.kernel],
    ["glibc", machine.glibc],
    ["deno", machine.deno],
    ["vm.memfd_noexec", `${machine.memfdNoexec} (${NOEXEC_MEANING[machine.memfdNoexec]})`],
    ["MFD_EXEC", `${mark(machine.mfdExec)}  ${machine.mfdExec.detail}`],
    ["memfd seals", `${mark(machine.seals)}  ${machine.seals.detail}`],
    ["pidfd_open", `${mark(machine.pidfdOpen)}  ${machine.pidfdOpen.detail}`],
    ["close_range", `${mark(machine.closeRange)}  ${machine.closeRange.detail}`],
    ["execveat", `${mark(machine.execveat)}  ${machine.execveat.detail}`],
    ["/proc", `${mark(machine.proc)}  ${machine.proc.detail}`],
  ];
  return rows.map(([key, value]) => `${key.padEnd(17)}${value}`).join("\n");
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function describe(status: HelperStatus): string {
  return status.signal ? `killed by ${status.signal} (code ${status.code})` : `code ${status.code}`;
}

if (import.meta.main) {
  try {
    Deno.exitCode = await main(Deno.args);
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exitCode = 1;
  }
}
