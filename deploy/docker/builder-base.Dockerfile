# A local stand-in for the public builder image (golang:1.26-bookworm) on
# machines that cannot pull images: the local Debian base
# (deploy/docker/base-images.sh) + gcc, git, curl, npm from apt + the host's
# Go and Rust toolchains (copied in by base-images.sh: apt's Rust is too old
# for the tokenizers crate) + any extra CA certificates the host trusts (an
# egress proxy's). Built by base-images.sh; not meant for users.
ARG BASE_IMAGE=simmatch-local/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential ca-certificates curl git npm unzip \
 && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY go/ /usr/local/go/
COPY rust/ /usr/local/rust/
ENV PATH=/usr/local/go/bin:/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/usr/local/cargo \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN go version && rustc --version && cargo --version && gcc --version | head -1 && npm --version
