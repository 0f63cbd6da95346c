#!/usr/bin/env bash
# install-chromium.sh: makes sure a Chromium for the web console's browser
# test (cmd/simmatch/console_test.go) is installed. Idempotent: nothing to do
# when $SIMMATCH_CHROMIUM names an executable or `chromium` is on PATH.
# Otherwise it installs Debian's (or Ubuntu's) `chromium` package with apt-get:
# as root, or through `sudo -n` when that works without a password (CI runners);
# anything else fails with what to do.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [[ -n "${SIMMATCH_CHROMIUM:-}" ]]; then
  [[ -x "$SIMMATCH_CHROMIUM" ]] || die "SIMMATCH_CHROMIUM=$SIMMATCH_CHROMIUM is not an executable"
  exit 0
fi
command -v chromium >/dev/null 2>&1 && exit 0

if [[ "$(id -u)" == 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  die "chromium is not installed and installing it needs root: run 'sudo apt-get install -y --no-install-recommends chromium' (or set SIMMATCH_CHROMIUM to a Chromium or Chrome binary), then re-run"
fi
command -v apt-get >/dev/null 2>&1 || die "chromium is not installed and there is no apt-get: install Chromium yourself and put 'chromium' on PATH (or set SIMMATCH_CHROMIUM)"

log "installing chromium with apt-get (for the web console's browser test)"
install() { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
# A fresh machine may have no package lists yet: update once and retry.
install || { "${as_root[@]}" apt-get update && install; } || die "apt-get could not install chromium (see above)"
command -v chromium >/dev/null 2>&1 || die "apt-get installed chromium, but 'chromium' is not on PATH"
log "chromium: $(chromium --version 2>/dev/null | head -1)"
