// Deno.Command parity: what a Deno user's code relies on, checked side by
// side against Deno.Command running the same executable from disk.

import assert from "node:assert/strict";
import { BlobCommand } from "../lib/mod.ts";
import { bytes, fdCount, ourChildren, processState, text } from "./test_util.ts";

const ECHO = "/bin/echo";
const CAT = "/bin/cat";
const SLEEP = "/bin/sleep";
const file = (path: string): Uint8Array<ArrayBuffer> => Deno.readFileSync(path);

/** Both commands for the executable at `path`: umh's from its bytes, Deno's from the file. */
function both(path: string, options: Deno.CommandOptions): [BlobCommand, Deno.Command] {
  return [new BlobCommand(file(path), options), new Deno.Command(path, options)];
}

Deno.test("a BlobCommand and its helper type-check where Deno.Command and Deno.ChildProcess are expected", async () => {
  // These assignments are the test: `deno test` type-checks this file.
  const command: Deno.Command = new BlobCommand(file(ECHO), { args: ["typed"], stdout: "piped" });
  const child: Deno.ChildProcess = command.spawn();
  const stream: Deno.SubprocessReadableStream = child.stdout;
  assert.equal(await stream.text(), "typed\n");
  const status: Deno.CommandStatus = await child.status;
  assert.equal(status.success, true);
});

Deno.test("stdout and stderr have text(), json(), bytes() and arrayBuffer(), as Deno's do", async () => {
  for (const command of both(ECHO, { args: ['{"a":[1,2]}'], stdout: "piped", stderr: "piped" })) {
    const child = command.spawn();
    assert.deepEqual(await child.stdout.json(), { a: [1, 2] });
    assert.equal(await child.stderr.text(), "");
    await child.status;
  }
  const results = await Promise.all(
    both(ECHO, { args: ["abc"], stdout: "piped" }).map(async (command) => {
      const [a, b] = [command.spawn(), command.spawn()];
      const buffer = await a.stdout.arrayBuffer();
      const array = await b.stdout.bytes();
      await Promise.all([a.status, b.status]);
      return [buffer.constructor.name, buffer.byteLength, array.constructor.name, text(array)];
    }),
  );
  assert.deepEqual(results[0], ["ArrayBuffer", 4, "Uint8Array", "abc\n"]);
  assert.deepEqual(results[0], results[1]);
});

Deno.test("the collectors keep the stream locked, and json() of non-JSON throws SyntaxError, as Deno's", async () => {
  const outcomes = await Promise.all(
    both(ECHO, { args: ["not json"], stdout: "piped" }).map(async (command) => {
      const child = command.spawn();
      const parsed = await child.stdout.json().then(() => "parsed", (error) => error.constructor.name);
      const again = await child.stdout.text().then(
        () => "read",
        (error) => `${error.constructor.name}: ${error.message}`,
      );
      await child.status;
      return [parsed, again];
    }),
  );
  assert.deepEqual(outcomes[0], ["SyntaxError", "TypeError: ReadableStream is locked"]);
  assert.deepEqual(outcomes[0], outcomes[1]);
});

Deno.test("text() drops a leading BOM and replaces invalid UTF-8, as Deno's", async () => {
  const payload = "\\xef\\xbb\\xbfhi \\xff!";
  const texts = await Promise.all(
    both("/usr/bin/printf", { args: [payload], stdout: "piped" }).map(async (command) => {
      const child = command.spawn();
      const got = await child.stdout.text();
      await child.status;
      return got;
    }),
  );
  assert.equal(texts[0], "hi \ufffd!");
  assert.equal(texts[0], texts[1]);
});

Deno.test("status is null-prototype and output an ordinary object, with the same fields, as Deno's", async () => {
  for (const path of ["/bin/true", "/bin/false"]) {
    const [ours, deno] = both(path, {});
    const [a, b] = await Promise.all([ours.spawn().status, deno.spawn().status]);
    assert.deepEqual(a, b);
    assert.equal(Object.getPrototypeOf(b), null);
    assert.equal(Object.getPrototypeOf(a), Object.getPrototypeOf(b));
    const [x, y] = await Promise.all([ours.output(), deno.output()]);
    const [xs, ys] = [ours.outputSync(), deno.outputSync()];
    for (const [mine, theirs] of [[x, y], [xs, ys]] as const) {
      assert.deepEqual(Object.keys(mine), Object.keys(theirs));
      assert.equal(Object.getPrototypeOf(mine), Object.getPrototypeOf(theirs));
      assert.equal(`${mine}`, `${theirs}`);
      assert.deepEqual([mine.success, mine.code, mine.signal, mine.stdout, mine.stderr], [
        theirs.success,
        theirs.code,
        theirs.signal,
        theirs.stdout,
        theirs.stderr,
      ]);
    }
  }
});

Deno.test("stdin takes any ArrayBuffer or view, as Deno's does", async () => {
  const outputs = await Promise.all(
    both(CAT, { stdin: "piped", stdout: "piped" }).map(async (command) => {
      const child = command.spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new Uint16Array([0x4241]) as unknown as Uint8Array); // "AB" on a little-endian machine
      await writer.write(new Uint8Array([0x43, 0x44, 0x45]).buffer as unknown as Uint8Array);
      await writer.write(new DataView(new Uint8Array([0x46, 0x47]).buffer) as unknown as Uint8Array);
      await writer.write(new Uint8Array(new SharedArrayBuffer(1)).fill(0x48));
      await writer.close();
      return text((await child.output()).stdout);
    }),
  );
  assert.equal(outputs[0], "ABCDEFGH");
  assert.equal(outputs[0], outputs[1]);
});

Deno.test("a chunk that is not bytes errors stdin with TypeError and closes it: the helper sees EOF", async () => {
  const fds = fdCount();
  const results = await Promise.all(
    both(CAT, { stdin: "piped", stdout: "piped" }).map(async (command) => {
      const child = command.spawn();
      const writer = child.stdin.getWriter();
      await writer.write(bytes("kept "));
      const first = await writer.write("a string" as unknown as Uint8Array).catch((error) => error);
      const second = await writer.write(bytes("x")).catch((error) => error);
      const { code, stdout } = await child.output(); // cat ends: it saw EOF
      return [first.constructor.name, second === first, code, text(stdout)];
    }),
  );
  assert.deepEqual(results[0], ["TypeError", true, 0, "kept "]);
  assert.deepEqual(results[0], results[1]);
  // At most as many: Deno may close an earlier test's unread pipes meanwhile.
  assert.ok(fdCount() <= fds, `${fdCount()} fds, ${fds} before`);
});

Deno.test("kill() takes signal numbers and Linux's alias names, as Deno's does", async () => {
  for (const [signal, name] of [[9, "SIGKILL"], ["SIGIOT", "SIGABRT"], ["SIGPOLL", "SIGIO"]] as const) {
    const statuses = await Promise.all(
      both(SLEEP, { args: ["30"] }).map((command) => {
        const child = command.spawn();
        child.kill(signal as Deno.Signal);
        return child.status;
      }),
    );
    assert.equal(statuses[0]!.signal, name, String(signal));
    assert.deepEqual(statuses[0], statuses[1]);
  }
});

Deno.test("kill() of an unknown signal is a TypeError; after the exit, 'already terminated' comes first", async () => {
  const [ours] = both(SLEEP, { args: ["30"] });
  const child = ours.spawn();
  for (const bad of ["SIGFOO", 99, -1, 2.5]) {
    assert.throws(() => child.kill(bad as Deno.Signal), (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /^Invalid signal: /);
      return true;
    });
  }
  child.kill(0 as unknown as Deno.Signal); // signal 0: only asks whether it is there
  child.kill();
  await child.status;
  assert.throws(() => child.kill("SIGFOO" as Deno.Signal), {
    name: "TypeError",
    message: "Child process has already terminated",
  });
  assert.deepEqual(ourChildren(), []);
});

Deno.test("kill() of a helper that has exited but was not yet reaped throws 'already terminated', as Deno's", async () => {
  // stdout piped and never read, status not awaited: nothing has looked at the exit yet.
  const child = new BlobCommand(Deno.readFileSync("/bin/true"), { stdout: "piped" }).spawn();
  const deadline = Date.now() + 5_000;
  while (processState(child.pid) !== "Z") {
    assert.ok(Date.now() < deadline, "the helper did not exit");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.throws(() => child.kill(), { name: "TypeError", message: "Child process has already terminated" });
  assert.equal(processState(child.pid), null, "kill() reaped it");
  assert.deepEqual({ ...await child.status }, { success: true, code: 0, signal: null });
  await child.stdout.cancel();
});

Deno.test("args that are not strings become strings, as Deno.Command makes them", async () => {
  const args = [1, true, null, 2n] as unknown as string[];
  const outputs = await Promise.all(both(ECHO, { args }).map(async (command) => text((await command.output()).stdout)));
  assert.equal(outputs[0], "1 true null 2\n");
  assert.equal(outputs[0], outputs[1]);
});

Deno.test("an env value that is not a string is a TypeError, as in Deno.Command", () => {
  for (const value of [5, undefined, null]) {
    const env = { UMH_TEST_VALUE: value } as unknown as Record<string, string>;
    for (const command of both("/bin/true", { env })) {
      assert.throws(() => command.outputSync(), TypeError, String(value));
    }
  }
});

Deno.test('cwd "" is the current directory, as for Deno.Command', async () => {
  const outputs = await Promise.all(
    both("/bin/pwd", { cwd: "" }).map(async (command) => text((await command.output()).stdout)),
  );
  assert.equal(outputs[0], `${Deno.cwd()}\n`);
  assert.equal(outputs[0], outputs[1]);
});

Deno.test("options are read at each spawn, not when the command is made, as Deno.Command reads them", async () => {
  const makers = [
    (options: Deno.CommandOptions) => new BlobCommand(file(ECHO), options),
    (options: Deno.CommandOptions) => new Deno.Command(ECHO, options),
  ];
  const results = await Promise.all(makers.map(async (make) => {
    const options: Deno.CommandOptions = { args: ["first"], stdout: "piped" };
    const command = make(options);
    const first = text((await command.output()).stdout);
    options.stdout = "null"; // the next output() has no stdout to give
    const second = await command.output();
    const stdout = ((): string => {
      try {
        return text(second.stdout);
      } catch (error) {
        return (error as Error).constructor.name;
      }
    })();
    return [first, stdout];
  }));
  assert.deepEqual(results[0], ["first\n", "TypeError"]);
  assert.deepEqual(results[0], results[1]);
});

Deno.test("stdio null: spawn() takes it as left out, output() and outputSync() refuse it, as Deno.Command does", async () => {
  for (const stream of ["stdin", "stdout", "stderr"] as const) {
    const options = { [stream]: null } as unknown as Deno.CommandOptions;
    for (const command of both("/bin/true", options)) {
      const child = command.spawn();
      assert.equal((await child.status).success, true);
      assert.throws(() => child.stdout, TypeError, "stdout defaults to inherit for spawn()");
      await assert.rejects(async () => await command.output(), TypeError, stream);
      assert.throws(() => command.outputSync(), TypeError, stream);
    }
  }
  assert.deepEqual(ourChildren(), []);
});
