#!/usr/bin/env bash
# build-tokenizers.sh DESTDIR: builds libtokenizers.a (the Rust half of
# github.com/daulet/tokenizers) from the module source at the version pinned in
# go.mod, with the crate versions pinned by its Cargo.lock, into DESTDIR.
# Link Go code with CGO_LDFLAGS=-L<DESTDIR>.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

destdir="${1:?usage: build-tokenizers.sh DESTDIR}"
[[ -s "$destdir/libtokenizers.a" ]] && exit 0
need go cargo

root="$(cd "$(dirname "$0")/../.." && pwd)"
version="$(cd "$root" && go list -m -f '{{.Version}}' github.com/daulet/tokenizers)"
# go mod download verifies the module zip against go.sum: the source is pinned.
src="$(cd "$root" && go mod download -json "github.com/daulet/tokenizers@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
[[ -d "$src" ]] || die "could not download github.com/daulet/tokenizers@$version"

work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
log "building libtokenizers.a ($version) with cargo; takes a few minutes once"
export CARGO_TARGET_DIR="$SIMMATCH_CACHE/cargo-target-tokenizers-$version"
(cd "$work" && cargo build --release --locked --quiet)
mkdir -p "$destdir"
cp "$CARGO_TARGET_DIR/release/libtokenizers.a" "$destdir/libtokenizers.a.tmp"
mv "$destdir/libtokenizers.a.tmp" "$destdir/libtokenizers.a"
log "libtokenizers.a -> $destdir"
