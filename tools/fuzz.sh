#!/usr/bin/env bash
# Fuzzes the frame parser of blobs/reqrep.c with libFuzzer for a bounded time.
#
# Usage: tools/fuzz.sh [--seconds N] [--regressions DIR] [--build DIR] [--replay-only]
#   --seconds N        how long to fuzz (default 60)
#   --regressions DIR  where a crashing input is saved (default blobs/fuzz/regressions)
#   --build DIR        where the fuzzer binary and working corpus go (default: a temp dir, removed after)
#   --replay-only      build, replay the saved regression inputs and the seed corpus, do not fuzz
#
# Builds blobs/fuzz/reqrep_fuzz.c (which compiles reqrep.c itself) with
# ${FUZZ_CC:-clang} -fsanitize=fuzzer,address,undefined, replays every saved
# regression input, then fuzzes starting from blobs/fuzz/corpus. The working
# corpus lives in the build dir, so the repository only changes when a crash is
# found: that input is copied to the regressions dir and the script exits 1.
#
# Exit status: 0 nothing found, 1 a crash/leak/timeout was found (or a saved
# regression still fails), 2 usage error, 3 no clang with libFuzzer here.
set -euo pipefail

usage() {
  echo "usage: $0 [--seconds N] [--regressions DIR] [--build DIR] [--replay-only]" >&2
  exit 2
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds=60
regressions="blobs/fuzz/regressions"
build=""
replay_only=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds)
      [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage
      seconds="$2"
      shift 2
      ;;
    --regressions)
      [[ $# -ge 2 ]] || usage
      regressions="$2"
      shift 2
      ;;
    --build)
      [[ $# -ge 2 ]] || usage
      build="$2"
      shift 2
      ;;
    --replay-only) replay_only=1; shift ;;
    -h | --help) usage ;;
    *) usage ;;
  esac
done

cc_bin="${FUZZ_CC:-clang}"
if ! command -v "$cc_bin" >/dev/null 2>&1; then
  echo "error: $cc_bin not found: fuzzing needs clang with libFuzzer (Debian: apt-get install clang)" >&2
  exit 3
fi

if [[ -z "$build" ]]; then
  build="$(mktemp -d)"
  trap 'rm -rf "$build"' EXIT
fi
mkdir -p "$build/corpus" "$build/artifacts" "$regressions"

fuzzer="$build/reqrep_fuzz"
if ! "$cc_bin" -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -o "$fuzzer" blobs/fuzz/reqrep_fuzz.c 2>"$build/cc.log"; then
  if grep -qi 'fuzzer' "$build/cc.log"; then
    cat "$build/cc.log" >&2
    echo "error: $cc_bin cannot link libFuzzer (-fsanitize=fuzzer); install clang's runtime (libclang-rt / clang)" >&2
    exit 3
  fi
  cat "$build/cc.log" >&2
  exit 1
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
common=(-timeout=5 -rss_limit_mb=2048 -max_len=65536 "-dict=blobs/fuzz/reqrep.dict")

# 1. Every saved regression input and seed must pass before new fuzzing starts.
mapfile -t saved < <(find "$regressions" blobs/fuzz/corpus -type f ! -name '*.md' | sort)
if [[ ${#saved[@]} -gt 0 ]]; then
  if ! "$fuzzer" "${common[@]}" "${saved[@]}" >"$build/replay.log" 2>&1; then
    cat "$build/replay.log" >&2
    echo "error: a saved input still fails (see above)" >&2
    exit 1
  fi
  echo "replayed ${#saved[@]} saved inputs: all pass"
fi
[[ $replay_only -eq 1 ]] && exit 0

# 2. Fuzz. New corpus entries go to the first dir (the build dir), never to the repo.
echo "fuzzing reqrep's frame parser for ${seconds}s"
status=0
"$fuzzer" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$build/artifacts/" "$build/corpus" blobs/fuzz/corpus >"$build/fuzz.log" 2>&1 || status=$?
grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^Done' "$build/fuzz.log" || true

shopt -s nullglob
found=("$build"/artifacts/*)
if [[ $status -ne 0 || ${#found[@]} -gt 0 ]]; then
  if grep -qE 'ERROR|runtime error' "$build/fuzz.log"; then
    sed -n '/ERROR\|runtime error/,$p' "$build/fuzz.log" | head -n 80 >&2 # the report, not the progress lines
  else
    tail -n 60 "$build/fuzz.log" >&2
  fi
  for artifact in "${found[@]}"; do
    cp "$artifact" "$regressions/"
    echo "saved $regressions/$(basename "$artifact"): tests/fuzz_test.ts replays it" >&2
  done
  echo "error: the fuzzer found a failure (exit $status)" >&2
  exit 1
fi
echo "no crash found"
