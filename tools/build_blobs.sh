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

# shellcheck source=tools/build_setup.sh
what=binaries
source "$(dirname "${BASH_SOURCE[0]}")/build_setup.sh"

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
