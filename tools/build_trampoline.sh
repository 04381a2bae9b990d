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
    echo "note: $cc_bin not found; blobs/trampoline.aarch64.so left as committed" >&2
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
