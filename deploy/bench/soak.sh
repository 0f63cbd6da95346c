#!/usr/bin/env bash
# soak.sh: `make soak`. Runs the all-in-one simmatch (SOAK_MODEL: fp32) on a loopback port under
# a steady fresh-mix load (SOAK_CONCURRENCY clients, default 8) for SOAK_DURATION (10m), samples
# the process's resident memory every SOAK_SAMPLE (5s) into $SOAK_RESULTS/rss.csv, then prints
# start, end and max RSS and whether it is flat: the end within 10% (and 32 MiB) of the RSS
# after the first tenth of the run, when allocators and ONNX Runtime's arenas have warmed up.
# Fresh texts never repeat, so the embedding cache grows until its budget is full; the soak
# gives it SOAK_CACHE_BYTES (32 MiB, full within the first minute) so that growth after the
# first tenth is a leak, not the cache (with the default 256 MiB the RSS rises for about six
# minutes, to about 800 MiB on the development machine, and then stays there).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
source deploy/bench/lib.sh
: "${SIMMATCH_ORT_LIB:?run through make soak (it sets SIMMATCH_ORT_LIB)}"
duration="${SOAK_DURATION:-10m}"
sample="${SOAK_SAMPLE:-5}"
clients="${SOAK_CONCURRENCY:-8}"
model="${SOAK_MODEL:-fp32}"
cache_bytes="${SOAK_CACHE_BYTES:-33554432}"
port="${BENCH_PORT:-8790}"
results="${SOAK_RESULTS:-results/soak-$(date -u +%Y%m%dT%H%M%SZ)}"
bin="$root/bin"
mkdir -p "$results" "$bin"
go build -o "$bin/" ./cmd/simmatch ./cmd/simmatch-load

port_free "$port"
SIMMATCH_CACHE_BYTES="$cache_bytes" SIMMATCH_MODEL_DIR="$root/models/all-MiniLM-L6-v2/$model" "$bin/simmatch" -http-addr "127.0.0.1:$port" -nats-listen "" \
  -log-level warn >"$results/simmatch.log" 2>&1 &
pid=$!
load=""
trap '[[ -n "$load" ]] && stop_pid "$load"; stop_pid "$pid"' EXIT
wait_http "http://127.0.0.1:$port/ready" 120 "$pid"

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
"$bin/simmatch-load" -target "http://127.0.0.1:$port" -label "soak-$model" -mix fresh -seed 21 -concurrency "$clients" \
  -duration "$duration" -fail-on-error -json "$results/load.json" >"$results/load.txt" 2>&1 &
load=$!
echo "seconds,rss_kib" >"$results/rss.csv"
start=$(date +%s)
while kill -0 "$load" 2>/dev/null; do
  echo "$(( $(date +%s) - start )),$(rss "$pid")" >>"$results/rss.csv"
  sleep "$sample"
done
status=0; wait "$load" || status=$?
load=""
cat "$results/load.txt"
awk -F, 'NR > 1 { t[n] = $1; r[n++] = $2; if ($2 > max) max = $2 }
  END {
    if (n < 3) { print "soak: too few samples"; exit 1 }
    w = int(n / 10); base = r[w]; end = r[n - 1]
    flat = (end <= base * 1.10 && end - base <= 32768)
    printf "RSS: start %.1f MiB, after warm-up (%ds) %.1f MiB, end %.1f MiB, max %.1f MiB; %s (%d samples)\n",
      r[0] / 1024, t[w], base / 1024, end / 1024, max / 1024, flat ? "flat" : "GROWING", n
    exit flat ? 0 : 2
  }' "$results/rss.csv" | tee "$results/summary.txt"
flat=${PIPESTATUS[0]}
echo "results: $results"
[[ $status -eq 0 && $flat -eq 0 ]]
