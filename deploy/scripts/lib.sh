#!/usr/bin/env bash
# Shared helpers for the fetch/build scripts: a cache directory, sha256
# verification and atomic installs, so a re-run with a warm cache is instant.
set -euo pipefail

SIMMATCH_CACHE="${SIMMATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simmatch}"
mkdir -p "$SIMMATCH_CACHE"

log() { printf 'simmatch-setup: %s\n' "$*" >&2; }
die() { printf 'simmatch-setup: error: %s\n' "$*" >&2; exit 1; }

# verify_sha256 FILE WANT: fails loudly when FILE does not hash to WANT.
verify_sha256() {
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  [[ "$got" == "$2" ]] || die "$1: sha256 $got, want $2 (a corrupt download or a changed upstream artifact; delete it and re-run)"
}

# need CMD...: fails with a clear message when a required tool is missing.
need() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "'$c' is required but not on PATH"; done
}
