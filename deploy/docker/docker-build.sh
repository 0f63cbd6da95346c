#!/usr/bin/env bash
# docker-build.sh ARGS...: `docker build ARGS...` with BuildKit (the Dockerfile
# uses cache mounts). Uses `docker buildx build --load` when the buildx plugin
# is there; else a docker client that has BuildKit built in (20.10 to 22.x,
# e.g. Debian's docker.io, whose /usr/bin/docker may be shadowed by a newer
# client without buildx).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

if docker buildx version >/dev/null 2>&1; then
  exec docker buildx build --load "$@"
fi
# every docker on PATH (type -a would stop at the one bash has hashed)
mapfile -t clients < <(IFS=:; for d in $PATH; do [[ -x "$d/docker" ]] && readlink -f "$d/docker"; done | awk '!seen[$0]++')
for client in "${clients[@]}"; do
  v="$("$client" version --format '{{.Client.Version}}' </dev/null 2>/dev/null || true)"
  major="${v%%.*}"
  if [[ "$major" =~ ^[0-9]+$ ]] && (( major >= 18 && major < 23 )); then
    DOCKER_BUILDKIT=1 exec "$client" build "$@"
  fi
done
die "no docker client with BuildKit: install the buildx plugin (docker-buildx) or Debian's docker.io"
