#!/usr/bin/env bash
# Shared by compare.sh and soak.sh: start a server in the background on a
# loopback port, wait (bounded) until it answers, stop it by its PID.
set -euo pipefail

# wait_http URL SECONDS PID: polls URL until it answers 200, fails after SECONDS
# or when PID exits.
wait_http() {
  local url="$1" secs="$2" pid="$3" i
  for ((i = 0; i < secs * 4; i++)); do
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "bench: the server (pid $pid) exited before $url answered" >&2; return 1; }
    sleep 0.25
  done
  echo "bench: $url did not answer within ${secs}s" >&2
  return 1
}

# port_free PORT: fails, saying so, when something already listens on 127.0.0.1:PORT (its
# answers would be measured instead of the server the bench starts).
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "bench: 127.0.0.1:$1 is already in use; stop what listens there or set BENCH_PORT" >&2
    return 1
  fi
}

# stop_pid PID: SIGTERM, then wait (bounded) for it to exit, then SIGKILL.
stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 120; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.25
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
