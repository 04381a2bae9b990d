# shellcheck shell=bash
# Shared by tools/build_blobs.sh and tools/build_trampoline.sh (sourced, not
# run): parses [--arch x86_64|aarch64] [--out DIR] [--check], picks each
# architecture's compiler, and sets `root` (cwd), `check`, `selected` (the
# architectures to build) and `dest` (where to build; a temp dir for --check).
# The caller sets `what` ("binaries", "objects") for its notes.

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
      echo "note: $cc_bin not found; checking x86_64 $what only" >&2
    else
      echo "note: $cc_bin not found; aarch64 $what were left as committed" >&2
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
