#!/usr/bin/env bash
# ensure-dockerd.sh: makes sure a Docker engine answers `docker info`.
# Idempotent: does nothing when one already answers. Otherwise installs
# docker.io with apt-get when dockerd is missing and starts dockerd in the
# background with host-only networking:
#   dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false
# so Docker never creates its default bridge network (containers here run
# with --network host only). Pidfile and log: $SIMMATCH_DOCKERD_DIR
# (default $SIMMATCH_CACHE/dockerd). It leaves dockerd running; stop it with
#   kill "$(cat "$SIMMATCH_DOCKERD_DIR/dockerd.pid")"
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

state="${SIMMATCH_DOCKERD_DIR:-$SIMMATCH_CACHE/dockerd}"
pidfile="$state/dockerd.pid"
logfile="$state/dockerd.log"

warn_bridge() {
  # A default bridge network means a dockerd that was not started by this
  # script; say so, but leave another's engine alone. Nothing of ours uses it.
  if docker network inspect bridge >/dev/null 2>&1; then
    log "warning: this Docker engine has a 'bridge' network; simmatch only uses --network host"
  fi
}

if docker info >/dev/null 2>&1; then
  warn_bridge
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  [[ "$(id -u)" == 0 ]] || die "dockerd is missing; install docker.io (apt-get install docker.io) as root"
  log "installing docker.io with apt-get"
  # Keep the package's service from starting with the default (bridged)
  # configuration on machines with an init system: policy-rc.d says no.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq docker.io >&2
  # If a service manager started it anyway, `docker info` answers now:
  # report and keep it (stopping another's service is not our call).
  if docker info >/dev/null 2>&1; then warn_bridge; exit 0; fi
fi
command -v docker >/dev/null 2>&1 || die "the docker client is missing (apt-get install docker.io)"

mkdir -p "$state"
if [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid="$(cat "$pidfile")"
  log "dockerd (pid $pid) is starting; waiting for it"
else
  # dockerd refuses to start over a stale pidfile (it writes its own).
  rm -f "$pidfile"
  log "starting dockerd (host networking only); log: $logfile"
  setsid nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --pidfile "$pidfile" >>"$logfile" 2>&1 </dev/null &
  pid=$!
fi

for _ in $(seq 120); do
  if docker info >/dev/null 2>&1; then
    log "dockerd is up (pid $pid)"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || { tail -20 "$logfile" >&2; die "dockerd exited; see $logfile"; }
  sleep 0.5
done
tail -20 "$logfile" >&2
die "dockerd did not answer within 60s; see $logfile"
