#!/usr/bin/env bash
# compare.sh: `make bench-compare`. In one run, on this machine, on loopback:
#   1. raw ONNX Runtime's best batched sentences/s for fp32 and int8 (the ceiling),
#   2. the all-in-one simmatch (fp32, then int8) driven by simmatch-load over HTTP,
#   3. the replica of the original service (Flask + sentence-transformers) driven the same way,
# then prints issue 6's workloads with the ratios against the replica, and writes every
# result (JSON), the table and the latency/throughput plots (PNG) under $BENCH_RESULTS.
# Knobs: BENCH_DURATION (per cell, default 20s), BENCH_WARMUP (2s), BENCH_CEILING_DURATION
# (per configuration, 5s), BENCH_PORT (8790), BENCH_RESULTS (results/bench-<time>),
# BENCH_SYSTEMS (replica fp32 int8). Needs `make deps`; builds the replica's venv once.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
source deploy/bench/lib.sh
: "${SIMMATCH_ORT_LIB:?run through make bench-compare (it sets SIMMATCH_ORT_LIB)}"
duration="${BENCH_DURATION:-20s}"
warmup="${BENCH_WARMUP:-2s}"
ceiling_duration="${BENCH_CEILING_DURATION:-5s}"
port="${BENCH_PORT:-8790}"
results="${BENCH_RESULTS:-results/bench-$(date -u +%Y%m%dT%H%M%SZ)}"
systems="${BENCH_SYSTEMS:-replica fp32 int8}"
models="$root/models/all-MiniLM-L6-v2"
bin="$root/bin"
mkdir -p "$results" "$bin"

echo "== build"
go build -o "$bin/" ./cmd/simmatch ./cmd/simmatch-load ./cmd/simmatch-ceiling
[[ " $systems " == *" replica "* ]] && deploy/bench/replica.sh venv >/dev/null

pid=""
trap '[[ -n "$pid" ]] && stop_pid "$pid"' EXIT

echo "== raw ONNX Runtime ceiling (fresh-mix texts, ${ceiling_duration} per configuration)"
ceilings=""
for v in fp32 int8; do
  "$bin/simmatch-ceiling" -model-dir "$models/$v" -model "$v" -duration "$ceiling_duration" -json "$results/ceiling-$v.json"
  ceilings="${ceilings:+$ceilings,}$results/ceiling-$v.json"
done

# cells LABEL URL: the workloads of issue 6's targets. Each mix has its own seed, so no
# text repeats between cells against one server (a cache cannot serve one cell from another).
cells() {
  local label="$1" url="$2" common=(-target "$2" -label "$1" -duration "$duration" -warmup "$warmup" -timeout 30s)
  "$bin/simmatch-load" "${common[@]}" -mix fresh -seed 11 -concurrency 1,4,16 -json "$results/$label-fresh.json" -png "$results/$label-fresh.png"
  "$bin/simmatch-load" "${common[@]}" -mix catalog -seed 12 -concurrency 1,16 -json "$results/$label-catalog.json"
  "$bin/simmatch-load" "${common[@]}" -mix overload -seed 13 -concurrency 2,64 -json "$results/$label-overload.json"
  # The same 64 clients resending at once after a 429 (no backoff): the worst case. The
  # replica never refuses, so for it the two are the same run.
  [[ "$label" == replica ]] || "$bin/simmatch-load" "${common[@]}" -mix overload -seed 14 -concurrency 64 \
    -ignore-retry-after -json "$results/$label-overload-ignoring.json"
}

for s in $systems; do
  port_free "$port"
  case "$s" in
    replica)
      echo "== replica of the original service (Flask + sentence-transformers) on 127.0.0.1:$port"
      deploy/bench/replica.sh run "$port" >"$results/replica.log" 2>&1 &
      pid=$!
      wait_http "http://127.0.0.1:$port/health" 300 "$pid"
      cells replica "http://127.0.0.1:$port" ;;
    fp32 | int8)
      echo "== simmatch all-in-one, model $s, on 127.0.0.1:$port"
      SIMMATCH_MODEL_DIR="$models/$s" "$bin/simmatch" -http-addr "127.0.0.1:$port" -nats-listen "" -data-dir "$results/data-$s" \
        -log-level warn >"$results/simmatch-$s.log" 2>&1 &
      pid=$!
      wait_http "http://127.0.0.1:$port/ready" 120 "$pid"
      cells "simmatch-$s" "http://127.0.0.1:$port" ;;
    *) echo "bench: unknown system $s (want replica, fp32, int8)" >&2; exit 1 ;;
  esac
  stop_pid "$pid"; pid=""
done

shopt -s nullglob # BENCH_SYSTEMS may leave some kinds of results out
echo "== comparison (BENCH_DURATION=$duration per cell; ratios against the replica, same machine, same run)"
"$bin/simmatch-load" report -baseline replica -labels simmatch-fp32,simmatch-int8 -ceiling "$ceilings" \
  -png "$results/latency-throughput.png" "$results"/*-fresh.json "$results"/*-catalog.json "$results"/*-overload.json \
  "$results"/*-overload-ignoring.json | tee "$results/table.txt"
echo "results: $results"
