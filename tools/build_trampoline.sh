#!/usr/bin/env bash
# Builds blobs/trampoline.c into freestanding, reproducible shared objects:
#   blobs/trampoline.x86_64.so   with ${CC:-cc}
#   blobs/trampoline.aarch64.so  with ${AARCH64_CC:-aarch64-linux-gnu-gcc}
# and verifies that each imports nothing and needs no relocation (the child
# half runs in a CLONE_VM child where lazy binding or a libc call is unsafe).
#
# Usage: tools/build_trampoline.sh [--arch x86_64|aarch64] [--out DIR] [--check]
#   --arch   build only one architecture (default: both)
#   --out    write the objects to DIR instead of blobs/
#   --check  build into a temp dir and cmp against the committed objects;
#            exit 1 listing any mismatch
set -euo pipefail

# shellcheck source=tools/build_setup.sh
what=objects
source "$(dirname "${BASH_SOURCE[0]}")/build_setup.sh"

# Fixed environment and flags so the same compiler yields the same bytes.
# -z defs fails the link on any undefined symbol (memset, a libgcc helper);
# no unwind tables, stack protector, CET or outline atomics, which would
# need a runtime we do not have.
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=0
cflags=(
  -std=c11 -Wall -Wextra -Werror
  -O2 -fPIC -shared -nostdlib -ffreestanding -fno-builtin
  -fvisibility=hidden -fno-stack-protector -fno-stack-clash-protection
  -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-ident
  "-ffile-prefix-map=$root=."
  -Wl,-z,defs -Wl,-z,now -Wl,-z,noexecstack -Wl,-z,noseparate-code -Wl,-z,norelro -Wl,--hash-style=gnu -Wl,--build-id=none -s
)
arch_flags() {
  case "$1" in
    x86_64) echo "-fcf-protection=none -mno-red-zone" ;;
    aarch64) echo "-mno-outline-atomics -mbranch-protection=none" ;;
  esac
}

# The object must have no NEEDED entry and no dynamic relocation at all.
verify() {
  local so="$1" readelf_bin="${READELF:-readelf}"
  command -v "$readelf_bin" >/dev/null 2>&1 || return 0
  if "$readelf_bin" -d "$so" | grep -q NEEDED; then
    echo "error: $so needs a shared library" >&2
    exit 1
  fi
  if ! "$readelf_bin" -r "$so" | grep -q "no relocations"; then
    echo "error: $so has dynamic relocations:" >&2
    "$readelf_bin" -r "$so" >&2
    exit 1
  fi
}

mismatches=()
for arch in "${selected[@]}"; do
  cc_bin="$(compiler_for "$arch")"
  target="$dest/trampoline.$arch.so"
  # shellcheck disable=SC2046
  "$cc_bin" "${cflags[@]}" $(arch_flags "$arch") -o "$target.tmp" blobs/trampoline.c
  mv -f "$target.tmp" "$target"
  verify "$target"
  if [[ $check -eq 1 ]]; then
    cmp -s "$target" "blobs/trampoline.$arch.so" || mismatches+=("blobs/trampoline.$arch.so")
  else
    echo "built $target ($(wc -c <"$target") bytes)"
  fi
done

if [[ $check -eq 1 ]]; then
  if [[ ${#mismatches[@]} -gt 0 ]]; then
    echo "trampoline out of date (run tools/build_trampoline.sh):" >&2
    printf '  %s\n' "${mismatches[@]}" >&2
    exit 1
  fi
  echo "trampoline up to date (${selected[*]})"
fi
