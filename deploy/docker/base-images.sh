#!/usr/bin/env bash
# base-images.sh: makes the two local base images the Dockerfile builds from on
# a machine that cannot pull images (nothing is pulled; each is skipped when it
# exists and is current):
#   $SIMMATCH_RUNTIME_BASE (simmatch-local/debian:bookworm): a minimal Debian
#       bookworm root filesystem made with debootstrap from the Debian mirror and
#       `docker import`ed; stands in for debian:bookworm-slim. The rootfs tarball
#       is cached under $SIMMATCH_CACHE/docker, so a re-import takes seconds.
#   $SIMMATCH_BUILDER_BASE (simmatch-local/builder:bookworm): that + apt's
#       build-essential/git/curl/npm + the host's Go (checked against go.mod) and
#       Rust toolchains; stands in for golang:1.26-bookworm (+ Rust, npm).
# Needs a running Docker engine (ensure-dockerd.sh) and root for debootstrap.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

RUNTIME_BASE="${SIMMATCH_RUNTIME_BASE:-simmatch-local/debian:bookworm}"
BUILDER_BASE="${SIMMATCH_BUILDER_BASE:-simmatch-local/builder:bookworm}"
SUITE=bookworm
need docker

# The Debian mirror: $DEBIAN_MIRROR, else the one this host's apt uses for
# $SUITE (one-line or deb822 sources), so a local mirror or proxy is honoured.
apt_mirror() {
  awk -v suite="$SUITE" '$1 == "deb" {
      for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1) == suite) { print $i; exit } ; break }
    }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
  awk -v suite="$SUITE" 'BEGIN { RS = "" }
    $0 ~ ("(^|\n)Types:[^\n]*[ \t]deb([ \t\n]|$)") && $0 ~ ("(^|\n)Suites:[^\n]*[ \t]" suite "([ \t\n]|$)") {
      if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { u = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); print u; exit }
    }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
}
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror | awk 'NR == 1')}"
[[ -n "$MIRROR" ]] || die "no Debian mirror for $SUITE in this host's apt sources; set DEBIAN_MIRROR"
cachedir="$SIMMATCH_CACHE/docker"
mkdir -p "$cachedir"

label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

# ---- runtime base: debootstrap + docker import ------------------------------
rootfs_version=2 # bump when the rootfs recipe below changes
rootfs_recipe="debootstrap minbase $SUITE $MIRROR v$rootfs_version"
rootfs_tar="$cachedir/debian-$SUITE-minbase-v$rootfs_version.tar"
if [[ "$(label "$RUNTIME_BASE" simmatch.recipe)" != "$rootfs_recipe" ]]; then
  if [[ ! -s "$rootfs_tar" ]]; then
    [[ "$(id -u)" == 0 ]] || die "debootstrap needs root (on a machine that can pull images: make test-docker TEST_DOCKER_BASES=public)"
    if ! command -v debootstrap >/dev/null 2>&1; then
      log "installing debootstrap with apt-get"
      apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends debootstrap >&2
    fi
    work="$(mktemp -d "$cachedir/rootfs.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    log "debootstrap $SUITE (minbase) from $MIRROR; takes a few minutes once"
    debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
      || { tail -30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    r="$work/rootfs"
    # Slim it like debian:*-slim: no docs, man pages or translations now or
    # for packages installed later; no apt lists or caches.
    cat >"$r/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
      "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
      "$r"/var/log/* "$r"/tmp/* "$r"/root/.cache
    # keep the man section directories: some postinst scripts (Java's
    # update-alternatives) link into them
    mkdir -p "$r"/usr/share/man/man{1,2,3,4,5,6,7,8}
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$r/etc/apt/sources.list"
    : >"$r/etc/resolv.conf"; : >"$r/etc/hostname"
    tar --numeric-owner --xattrs -C "$r" -cf "$rootfs_tar.tmp" .
    mv "$rootfs_tar.tmp" "$rootfs_tar"
    rm -rf "$work"; trap - EXIT
    log "rootfs cached at $rootfs_tar ($(du -h "$rootfs_tar" | cut -f1))"
  fi
  log "docker import -> $RUNTIME_BASE"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL simmatch.recipe=\"$rootfs_recipe\"" \
    "$rootfs_tar" "$RUNTIME_BASE" >/dev/null
fi

# ---- builder base: runtime base + apt packages + host Go and Rust ------------
need go rustc cargo
goroot="$(go env GOROOT)"
gover="$(go env GOVERSION)"
want_go="go$(awk '$1=="go"{print $2}' "$root/go.mod")"
# the host's Go must be at least go.mod's (a container cannot fetch toolchains
# from anywhere but the module proxy, and we don't want it to).
[[ "$(printf '%s\n%s\n' "$want_go" "$gover" | sort -V | head -1)" == "$want_go" ]] \
  || die "host Go is $gover; go.mod wants $want_go or newer"
sysroot="$(rustc --print sysroot)"
rustver="$(rustc --version | awk '{print $2}')"
# Extra CA certificates the host trusts that Debian's ca-certificates lacks
# (e.g. an egress proxy's): the builds inside reach the registries through it.
ca_tmp="$(mktemp -d)"; trap 'rm -rf "$ca_tmp"' EXIT
mkdir -p "$ca_tmp/ca"
if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
  # one awk pass: PEM bodies of Debian's certs vs the host's bundle
  cat /usr/share/ca-certificates/mozilla/*.crt 2>/dev/null | awk -v out="$ca_tmp/ca" '
    FNR == NR { if (/BEGIN CERT/) { b = "" } else if (/END CERT/) { known[b] = 1 } else { b = b $0 }; next }
    /BEGIN CERT/ { b = ""; pem = $0 "\n"; next }
    /END CERT/   { pem = pem $0 "\n"; if (!(b in known)) { n++; f = sprintf("%s/host-extra-%d.crt", out, n); printf "%s", pem > f; close(f) }; next }
    { b = b $0; pem = pem $0 "\n" }
  ' - /etc/ssl/certs/ca-certificates.crt
fi
ca_sum="$(cat "$ca_tmp"/ca/*.crt 2>/dev/null | sha256sum | cut -c1-12)"
builder_recipe="$(sha256sum "$here/builder-base.Dockerfile" | cut -c1-12) $gover rust-$rustver ca-$ca_sum base-$(docker image inspect -f '{{.Id}}' "$RUNTIME_BASE" | cut -c8-19)"
if [[ "$(label "$BUILDER_BASE" simmatch.recipe)" == "$builder_recipe" ]]; then
  exit 0
fi
log "building $BUILDER_BASE ($gover, rust $rustver, $(ls "$ca_tmp/ca" | wc -l) extra CA certs)"
ctx="$ca_tmp/ctx"
mkdir -p "$ctx/rust"
mv "$ca_tmp/ca" "$ctx/ca"
# hard links when on the same file system, else copies
cp -al "$goroot" "$ctx/go" 2>/dev/null || cp -a "$goroot" "$ctx/go"
for d in bin lib libexec; do
  [[ -d "$sysroot/$d" ]] || continue
  cp -al "$sysroot/$d" "$ctx/rust/$d" 2>/dev/null || cp -a "$sysroot/$d" "$ctx/rust/$d"
done
rm -rf "$ctx/rust/lib/rustlib/src" "$ctx/go/pkg/obj" "$ctx/go/.git"
"$here/docker-build.sh" --network host -f "$here/builder-base.Dockerfile" \
  --build-arg BASE_IMAGE="$RUNTIME_BASE" --label "simmatch.recipe=$builder_recipe" \
  -t "$BUILDER_BASE" "$ctx"
