#!/usr/bin/env bash
# Builds the umh CLI (main.ts) into one executable that carries every helper
# blob: blobs/mod.ts imports them `with { type: "bytes" }`, so they are in the
# module graph and nothing is read from beside the binary at run time.
#
# Usage: tools/compile.sh [--out PATH] [--target TRIPLE]
#   --out     where to write the executable (default dist/umh)
#   --target  a deno compile target, e.g. aarch64-unknown-linux-gnu
#
# deno compile copies a `denort` runtime into the output. It downloads one for
# its own version unless DENORT_BIN names a local denort; without network,
# DENORT_BIN is required. DENO (default: deno on PATH) picks the deno binary.
# "unstable": ["raw-imports"] in deno.json applies; the flag is also passed
# explicitly so that the build does not depend on where deno finds its config.
set -euo pipefail
cd "$(dirname "$0")/.."

deno="${DENO:-deno}"
out=dist/umh
target=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --target) target=(--target "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compile: unknown argument \"$1\" (try --help)" >&2; exit 2 ;;
  esac
done

if [ -n "${DENORT_BIN:-}" ]; then
  if [ ! -x "$DENORT_BIN" ]; then
    echo "compile: DENORT_BIN=\"$DENORT_BIN\" is not an executable file" >&2
    exit 1
  fi
  # deno itself is no runtime: its output would start deno's own CLI, not umh.
  if [ "$(realpath "$DENORT_BIN")" = "$(realpath "$(command -v "$deno")")" ]; then
    echo "compile: DENORT_BIN points at deno itself; it must be a denort binary of the same version" >&2
    exit 1
  fi
fi

mkdir -p "$(dirname "$out")"
if ! "$deno" compile --allow-ffi --allow-read --unstable-raw-imports "${target[@]}" --output "$out" main.ts; then
  [ -z "${DENORT_BIN:-}" ] && echo "compile: failed; offline, set DENORT_BIN to a denort binary of $("$deno" --version | head -1)" >&2
  exit 1
fi
echo "compile: wrote $out (run \"$out --help\")"
