#!/usr/bin/env bash
# Builds every blobs/*.c into static, stripped, reproducible helper binaries:
#   blobs/<name>.x86_64   with ${CC:-cc}
#   blobs/<name>.aarch64  with ${AARCH64_CC:-aarch64-linux-gnu-gcc}
#
# Usage: tools/build_blobs.sh [--arch x86_64|aarch64] [--out DIR] [--check]
#   --arch   build only one architecture (default: both)
#   --out    write binaries to DIR instead of blobs/
#   --check  build into a temp dir and cmp against the committed binaries;
#            exit 1 listing any mismatch
set -euo pipefail

usage() {
  echo "usage: $0 [--arch x86_64|aarch64] [--out DIR] [--check]" >&2
  exit 2
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

arches=(x86_64 aarch64)
arch_given=0
out=""
check=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --arch)
      [[ $# -ge 2 ]] || usage
      case "$2" in x86_64 | aarch64) arches=("$2") ;; *) usage ;; esac
      arch_given=1
      shift 2
      ;;
    --out)
      [[ $# -ge 2 ]] || usage
      out="$2"
      shift 2
      ;;
    --check) check=1; shift ;;
    -h | --help) usage ;;
    *) usage ;;
  esac
done

if [[ $check -eq 1 && -n "$out" ]]; then
  echo "--check and --out cannot be combined" >&2
  exit 2
fi

compiler_for() {
  case "$1" in
    x86_64) echo "${CC:-cc}" ;;
    aarch64) echo "${AARCH64_CC:-aarch64-linux-gnu-gcc}" ;;
  esac
}

# A missing aarch64 compiler skips that architecture with a note, unless
# --arch aarch64 was requested explicitly; any other missing compiler fails.
selected=()
for arch in "${arches[@]}"; do
  cc_bin="$(compiler_for "$arch")"
  if command -v "$cc_bin" >/dev/null 2>&1; then
    selected+=("$arch")
  elif [[ $arch == aarch64 && $arch_given -eq 0 ]]; then
    if [[ $check -eq 1 ]]; then
      echo "note: $cc_bin not found; checking x86_64 binaries only" >&2
    else
      echo "note: $cc_bin not found; aarch64 binaries were left as committed" >&2
    fi
  else
    echo "error: compiler $cc_bin for $arch not found" >&2
    exit 1
  fi
done

if [[ $check -eq 1 ]]; then
  dest="$(mktemp -d)"
  trap 'rm -rf "$dest"' EXIT
else
  dest="${out:-blobs}"
  mkdir -p "$dest"
fi

# Fixed environment and flags so the same compiler yields the same bytes.
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=0
cflags=(
  -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra
  -Os -static -s -fno-ident
  "-ffile-prefix-map=$root=."
  -Wl,--build-id=none
)

# Every helper program in blobs/; the spawn trampoline is a shared object with
# its own build (tools/build_trampoline.sh).
sources=()
for src in blobs/*.c; do
  [ "$src" = blobs/trampoline.c ] || sources+=("$src")
done
mismatches=()
for arch in "${selected[@]}"; do
  cc_bin="$(compiler_for "$arch")"
  for src in "${sources[@]}"; do
    name="$(basename "$src" .c)"
    target="$dest/$name.$arch"
    "$cc_bin" "${cflags[@]}" -o "$target.tmp" "$src"
    mv -f "$target.tmp" "$target"
    if [[ $check -eq 1 ]]; then
      if ! cmp -s "$target" "blobs/$name.$arch"; then
        mismatches+=("blobs/$name.$arch")
      fi
    else
      echo "built $target ($(wc -c <"$target") bytes)"
    fi
  done
done

if [[ $check -eq 1 ]]; then
  if [[ ${#mismatches[@]} -gt 0 ]]; then
    echo "blobs out of date (run tools/build_blobs.sh):" >&2
    printf '  %s\n' "${mismatches[@]}" >&2
    exit 1
  fi
  echo "blobs up to date (${selected[*]})"
fi
