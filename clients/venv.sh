#!/usr/bin/env bash
# Prints the path of a Python with the pinned packages of a requirements file (the
# argument; default clients/requirements.txt, the client SDKs), making the venv first if
# needed. The venv is cached under $SIMMATCH_CACHE (default ~/.cache/simmatch), named by
# the requirements' hash, so a change of pins makes a new one.
# It reaches only the Python package index, through pip, with every file checked by hash.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
req=$(realpath "${1:-$here/requirements.txt}")
cache=${SIMMATCH_CACHE:-$HOME/.cache/simmatch}
sum=$(sha256sum "$req" | cut -c1-12)
venv=$cache/clients-venv-$sum
if [[ ! -x $venv/bin/python || ! -f $venv/.complete ]]; then
	rm -rf "$venv"
	mkdir -p "$cache"
	python3 -m venv "$venv" >&2
	"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
		--only-binary=:all: --require-hashes -r "$req" >&2
	touch "$venv/.complete"
fi
echo "$venv/bin/python"
