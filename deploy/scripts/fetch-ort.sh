#!/usr/bin/env bash
# fetch-ort.sh DEST: installs the ONNX Runtime shared library (pinned version,
# checked by sha256) at DEST. The library comes from the onnxruntime-node npm
# package, which ships the official Linux x64 build.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ORT_VERSION="${ORT_VERSION:-1.30.0}"
TGZ_SHA256="6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75"
LIB_SHA256="ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23"
dest="${1:?usage: fetch-ort.sh DEST}"

[[ -s "$dest" ]] && exit 0
[[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || die "only linux/x86_64 is scripted; set SIMMATCH_ORT_LIB to an ONNX Runtime $ORT_VERSION library for your platform"
need npm tar sha256sum

dl="$SIMMATCH_CACHE/downloads"
mkdir -p "$dl"
tgz="$dl/onnxruntime-node-$ORT_VERSION.tgz"
if [[ ! -s "$tgz" ]]; then
  log "downloading onnxruntime-node@$ORT_VERSION from the npm registry (~110 MB)"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
  mv "$tmp/onnxruntime-node-$ORT_VERSION.tgz" "$tgz"
fi
verify_sha256 "$tgz" "$TGZ_SHA256"

mkdir -p "$(dirname "$dest")"
tar -xzf "$tgz" -O package/bin/napi-v6/linux/x64/libonnxruntime.so.1 >"$dest.tmp"
verify_sha256 "$dest.tmp" "$LIB_SHA256"
mv "$dest.tmp" "$dest"
log "ONNX Runtime $ORT_VERSION -> $dest"
