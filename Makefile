# simmatch: `make run` starts the all-in-one service with the real model,
# `make test` runs every test. Both fetch and build what they need first
# (pinned, checksummed, cached under $(CACHE)), so a second run is instant.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE ?= $(or $(SIMMATCH_CACHE),$(HOME)/.cache/simmatch)
ORT_VERSION := 1.30.0
TOKENIZERS_VERSION := $(shell awk '$$1=="github.com/daulet/tokenizers"{print $$2}' go.mod)
ORT_LIB := $(CACHE)/onnxruntime-$(ORT_VERSION)/libonnxruntime.so
TOKENIZERS_DIR := $(CACHE)/tokenizers-$(TOKENIZERS_VERSION)
# The model store: models/<name>/<version>/ in the sentence-transformers ONNX
# layout. fp32 is the default; int8 is the quantized graph of the same model.
MODEL_ROOT := $(CURDIR)/models/all-MiniLM-L6-v2
MODEL_DIR := $(MODEL_ROOT)/fp32
MODEL_INT8_DIR := $(MODEL_ROOT)/int8
# A second model family, chosen per catalog or request: bge-small-en-v1.5 (docs/models.md).
BGE_ROOT := $(CURDIR)/models/bge-small-en-v1.5

export SIMMATCH_CACHE := $(CACHE)
export CGO_ENABLED := 1
export CGO_LDFLAGS := -L$(TOKENIZERS_DIR)
export SIMMATCH_ORT_LIB ?= $(ORT_LIB)
export SIMMATCH_MODEL_DIR ?= $(MODEL_DIR)

GO_TEST_FLAGS ?= -race -count=1 -timeout 20m
FUZZ_TIME ?= 15s

NATS_SERVER_VERSION := v2.15.2
NATS_SERVER := $(CACHE)/nats-server-$(NATS_SERVER_VERSION)/nats-server
CHAOS_FLAGS ?=

.PHONY: help deps chromium run check-tree test test-go fuzz bench bench-smoke build lint clean bench-compare soak bench-catalog bench-switch bench-jobs bench-keyword bench-match chaos vulncheck

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(ORT_LIB):
	deploy/scripts/fetch-ort.sh $@

$(TOKENIZERS_DIR)/libtokenizers.a:
	deploy/scripts/build-tokenizers.sh $(TOKENIZERS_DIR)

$(MODEL_ROOT)/%/model.onnx:
	deploy/scripts/fetch-model.sh $(MODEL_ROOT)/$* $* all-MiniLM-L6-v2

$(BGE_ROOT)/%/model.onnx:
	deploy/scripts/fetch-model.sh $(BGE_ROOT)/$* $* bge-small-en-v1.5

# int8's serving hints (models/<name>/<version>/simmatch.json), also for a model fetched before them.
$(MODEL_INT8_DIR)/simmatch.json: $(MODEL_INT8_DIR)/model.onnx
	deploy/scripts/fetch-model.sh $(MODEL_INT8_DIR) int8

deps: $(ORT_LIB) $(TOKENIZERS_DIR)/libtokenizers.a $(MODEL_DIR)/model.onnx $(MODEL_INT8_DIR)/model.onnx $(MODEL_INT8_DIR)/simmatch.json $(BGE_ROOT)/fp32/model.onnx $(BGE_ROOT)/int8/model.onnx ## fetch ONNX Runtime, build libtokenizers.a, fetch the models (fp32 and int8 of each)

build: deps ## build the binaries (simmatch, -processor, -bridge, -healthcheck, -load, -chaos, -ceiling, -switchbench) into bin/
	go build -o bin/ ./cmd/...

# A model given to the all-in-one (SIMMATCH_MODEL_DIR, -model-dir) becomes the
# recorded default in its data/; the preset above is not given by you, so
# plain `make run` leaves it out and follows the recorded default.
run: deps ## run the all-in-one (embedded NATS + processor + bridge on :8000)
	$(if $(filter file,$(origin SIMMATCH_MODEL_DIR)),env -u SIMMATCH_MODEL_DIR )go run ./cmd/simmatch

check-tree: ## fail if git tracks a binary, a non-script executable or a file over 1 MiB (testdata/ excepted)
	deploy/scripts/check-tree.sh

chromium: ## install Debian's chromium for the web console's browser test, unless one is there (root or sudo -n)
	deploy/scripts/install-chromium.sh

# check-tree first: it takes milliseconds and needs none of deps.
test: check-tree deps chromium ## run every test (real NATS, real ONNX Runtime, real model, headless chromium)
	go vet ./...
	CGO_ENABLED=0 go build ./bridge/... ./contracts/... ./cmd/simmatch-bridge
	go test $(GO_TEST_FLAGS) ./...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory bench-smoke
	$(MAKE) --no-print-directory test-docker

fuzz: ## run each fuzz target briefly
	deploy/scripts/fuzz.sh FuzzDecodeRequest ./contracts/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzDecodeCatalog ./contracts/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzDecodeEmbedRequest ./contracts/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzDecodeJobRequest ./contracts/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzDecodeReply ./contracts/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzAckInterval ./contracts/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzTimeout ./contracts/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzTokenize ./processor/internal/embed/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzTokenize ./processor/catalog/keyword/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzAuthHeaders ./bridge/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzParseKeys ./bridge/security/ $(FUZZ_TIME)
	deploy/scripts/fuzz.sh FuzzDecodeValue ./processor/cache/ $(FUZZ_TIME)

BENCH ?= .
bench: deps ## benchmarks (BENCH=regexp): ONNX Runtime alone and end to end through the bridge
	go test -run '^$$' -bench '$(BENCH)' -benchtime 3s ./processor/...

BENCH_DURATION ?= 20s
bench-compare: deps ## ceiling, simmatch fp32/int8 and the original's replica side by side (BENCH_DURATION per cell; results/)
	BENCH_DURATION=$(BENCH_DURATION) deploy/bench/compare.sh

SOAK_DURATION ?= 10m
soak: deps ## steady load on the all-in-one for SOAK_DURATION, sampling its RSS: start/end/max, flat or not
	SOAK_DURATION=$(SOAK_DURATION) deploy/bench/soak.sh
JOB_QUERIES ?= 100000
bench-jobs: deps ## a JOB_QUERIES-query job (default 100,000) against the 46-product catalog with 1 and 3 processors: prints the times
	SIMMATCH_JOB_BENCH_QUERIES=$(JOB_QUERIES) go test -run '^$$' -bench '^BenchmarkJob$$' -benchtime 1x -timeout 3h ./processor/jobs/

SWITCH_CLIENTS ?= 16
SWITCHES ?= 10
SWITCH_EVERY ?= 2s
bench-switch: deps ## SWITCH_CLIENTS steady clients while loading int8 and switching fp32<->int8 SWITCHES times: non-OK answers, p99, RSS
	go run ./cmd/simmatch-switchbench -clients $(SWITCH_CLIENTS) -switches $(SWITCHES) -every $(SWITCH_EVERY)

bench-smoke: deps ## run each scheduler and stage benchmark once (proves they work; figures meaningless)
	go test -run '^$$' -bench 'LoneRequest|Scheduler|Stages|Rank' -benchtime 1x ./processor/...
	SIMMATCH_BENCH_CATALOG_ROWS=20000 SIMMATCH_BENCH_MODE_ROWS=20000 go test -run '^$$' -bench '^(BenchmarkScan|BenchmarkSharedPass|BenchmarkSearchModes)$$' -benchtime 1x ./processor/catalog/
CATALOG_ROWS ?= 1000000
MODE_ROWS ?= 100000
LOAD_ROWS ?= 100000
bench-catalog: deps ## catalogs: fp32 and int8 scans vs memory read and shared passes (CATALOG_ROWS x 384), search modes (MODE_ROWS), load time (LOAD_ROWS), search vs inline, upsert vs raw model
	SIMMATCH_BENCH_CATALOG_ROWS=$(CATALOG_ROWS) go test -run '^$$' -bench '^(BenchmarkScan|BenchmarkSharedPass)$$' -benchtime 10x -timeout 30m ./processor/catalog/
	SIMMATCH_BENCH_MODE_ROWS=$(MODE_ROWS) go test -run '^$$' -bench '^BenchmarkSearchModes$$' -benchtime 500x -timeout 30m ./processor/catalog/
	SIMMATCH_BENCH_LOAD_ROWS=$(LOAD_ROWS) go test -run '^$$' -bench '^BenchmarkCatalogLoad$$' -benchtime 3x -timeout 30m ./processor/catalog/
	go test -run '^$$' -bench '^(BenchmarkSearch46|BenchmarkUpsert)$$' -benchtime 5s -timeout 30m ./processor/catalog/

ROWS ?= 100000
bench-match: deps ## an N x N dedupe of random unit vectors (N = ROWS, default 100,000; 384 dims): wall time, GFLOP/s vs the measured peak, peak RSS, per pass size
	SIMMATCH_BENCH_MATCH_ROWS=$(ROWS) go test -run '^$$' -bench '^BenchmarkDedupe$$' -benchtime 1x -timeout 6h ./processor/catalog/

KW_ROWS ?= 1000000
bench-keyword: ## keyword index vs bleve (nested module internal/kwbench): build time, heap per 1M products, p50/p99 top-10 (KW_ROWS products)
	cd internal/kwbench && SIMMATCH_KW_ROWS=$(KW_ROWS) go test -run '^$$' -bench . -benchtime 1x -timeout 60m

$(NATS_SERVER):
	GOBIN=$(dir $@) go install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)

chaos: build $(NATS_SERVER) ## chaos suite (real binaries, loopback, ~5 min): faults under load via /predict, catalog search, /v1/embeddings; table of lost per door (CHAOS_FLAGS=-scenarios=kill9,... -doors=...)
	bin/simmatch-chaos -bin bin -nats-server $(NATS_SERVER) $(CHAOS_FLAGS)

vulncheck: ## govulncheck (needs vuln.go.dev: runs in CI, not in `make test`)
	go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 ./...

clean: ## remove build outputs (keeps the download cache)
	rm -rf bin models results

# ---- container images --------------------------------------------------------
# `make image` builds the runtime image from the public base images (a machine
# that can pull). `make test-docker` builds the same Dockerfile and runs NATS +
# processor + bridge containers (host networking) with testcontainers-go. By
# default it builds from local base images (TEST_DOCKER_BASES=local:
# deploy/docker/base-images.sh, debootstrap + docker import, nothing pulled,
# needs root) on a dockerd with host networking only
# (deploy/docker/ensure-dockerd.sh); TEST_DOCKER_BASES=public uses the
# Dockerfile's public defaults instead (a machine that can pull, e.g. GitHub).
.PHONY: image test-docker
IMAGE ?= simmatch:latest
BAKE_MODEL ?= 0
DOCKER_BUILD := deploy/docker/docker-build.sh
DOCKER_BUILD_FLAGS ?=
TEST_DOCKER_BASES ?= local
LOCAL_RUNTIME_BASE ?= simmatch-local/debian:bookworm
LOCAL_BUILDER_BASE ?= simmatch-local/builder:bookworm
TEST_IMAGE ?= simmatch:test
TEST_NATS_IMAGE ?= simmatch-nats:test
ifeq ($(TEST_DOCKER_BASES),local)
TEST_BUILD_ARGS = --network host --build-arg BUILDER_IMAGE=$(LOCAL_BUILDER_BASE) \
	--build-arg NODE_IMAGE=$(LOCAL_BUILDER_BASE) --build-arg RUNTIME_IMAGE=$(LOCAL_RUNTIME_BASE)
else ifeq ($(TEST_DOCKER_BASES),public)
TEST_BUILD_ARGS =
else
$(error TEST_DOCKER_BASES must be local or public)
endif

image: ## build the runtime image (IMAGE=simmatch:latest) from public base images; BAKE_MODEL=1 bakes the model in
	$(DOCKER_BUILD) $(DOCKER_BUILD_FLAGS) --build-arg BAKE_MODEL=$(BAKE_MODEL) -t $(IMAGE) .

test-docker: $(if $(filter 1,$(BAKE_MODEL)),,$(MODEL_DIR)/model.onnx) ## build the images (TEST_DOCKER_BASES=local: nothing pulled) and test them in containers
	deploy/docker/ensure-dockerd.sh
ifeq ($(TEST_DOCKER_BASES),local)
	SIMMATCH_RUNTIME_BASE=$(LOCAL_RUNTIME_BASE) SIMMATCH_BUILDER_BASE=$(LOCAL_BUILDER_BASE) deploy/docker/base-images.sh
endif
	$(DOCKER_BUILD) $(TEST_BUILD_ARGS) $(DOCKER_BUILD_FLAGS) --target nats -t $(TEST_NATS_IMAGE) .
	$(DOCKER_BUILD) $(TEST_BUILD_ARGS) $(DOCKER_BUILD_FLAGS) --build-arg BAKE_MODEL=$(BAKE_MODEL) -t $(TEST_IMAGE) .
	@docker image ls --format 'image {{.Repository}}:{{.Tag}} {{.Size}}' $(TEST_IMAGE)
	SIMMATCH_IMAGE=$(TEST_IMAGE) SIMMATCH_NATS_IMAGE=$(TEST_NATS_IMAGE) SIMMATCH_BAKED_MODEL=$(BAKE_MODEL) \
	TESTCONTAINERS_RYUK_DISABLED=true go test -tags docker -count=1 -timeout 30m ./deploy/dockertest/
