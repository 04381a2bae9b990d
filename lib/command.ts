// BlobCommand: Deno.Command for a blob.

import type { HelperOutput } from "./status.ts";
import type { UsermodeHelper } from "./helper.ts";
import { type BlobSource, type HelperOptions, runHelperSync, spawnHelper, type Stdio, stdioOr } from "./spawn.ts";

/**
 * `Deno.Command` for an executable held in memory: the same options (plus
 * `argv0` defaulting to the blob's name, and `detached`), the same
 * `spawn()`/`output()`/`outputSync()`. Nothing is written to disk and `--allow-run` is not
 * involved: umh needs `--allow-ffi`.
 *
 * @example
 * ```ts
 * import { BlobCommand } from "./mod.ts";
 *
 * const script = new TextEncoder().encode('#!/bin/sh\necho "hello $1"\n');
 * const { code, stdout } = await new BlobCommand(script, { args: ["world"] }).output();
 * console.log(code, new TextDecoder().decode(stdout)); // 0 "hello world\n"
 * ```
 */
export class BlobCommand {
  readonly #source: BlobSource;
  readonly #options: HelperOptions;

  /**
   * Describes how to start `blob`; nothing runs until `spawn()` or `output()`.
   *
   * @param blob The executable: bytes (loaded into a sealed memfd once per
   *   array, then reused) or a {@linkcode UsermodeBlob}.
   * @param options As `Deno.CommandOptions`: `args`, `env`, `clearEnv`, `cwd`,
   *   `stdin`, `stdout`, `stderr`, `signal`, `argv0`, `detached`.
   */
  constructor(blob: BlobSource, options: HelperOptions = {}) {
    this.#source = blob;
    this.#options = options; // read at each spawn, as Deno.Command reads its options
  }

  /**
   * Starts the helper. stdin, stdout and stderr default to `"inherit"`.
   * @returns The running helper; the caller must await its `status` or dispose it.
   */
  spawn(): UsermodeHelper {
    const o = this.#options;
    // null counts as left out here, and output() refuses it: Deno.Command does both.
    return spawnHelper(this.#source, o, [o.stdin ?? "inherit", o.stdout ?? "inherit", o.stderr ?? "inherit"]);
  }

  /**
   * Runs the helper to completion and collects its output. stdin defaults to
   * `"null"`, stdout and stderr to `"piped"`.
   * @returns Status plus `stdout` and `stderr` bytes.
   */
  async output(): Promise<HelperOutput> {
    return await spawnHelper(this.#source, this.#options, this.#outputStdio()).output();
  }

  /**
   * Runs the helper to completion on this thread, as `Deno.Command.outputSync()`:
   * the event loop and every other helper wait meanwhile. stdin defaults to
   * `"null"`, stdout and stderr to `"piped"`.
   * @returns Status plus `stdout` and `stderr` bytes.
   */
  outputSync(): HelperOutput {
    return runHelperSync(this.#source, this.#options, this.#outputStdio());
  }

  /** stdio for output() and outputSync(): stdin `"null"`, stdout and stderr `"piped"` by default; piped stdin refused. */
  #outputStdio(): [Stdio, Stdio, Stdio] {
    const o = this.#options;
    const stdio: [Stdio, Stdio, Stdio] = [
      stdioOr(o.stdin, "null"),
      stdioOr(o.stdout, "piped"),
      stdioOr(o.stderr, "piped"),
    ];
    if (stdio[0] === "piped") {
      throw new TypeError("Piped stdin is not supported for this function, use 'BlobCommand.spawn()' instead");
    }
    return stdio;
  }
}
