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
MODEL_DIR := $(CURDIR)/models/all-MiniLM-L6-v2

export SIMMATCH_CACHE := $(CACHE)
export CGO_ENABLED := 1
export CGO_LDFLAGS := -L$(TOKENIZERS_DIR)
export SIMMATCH_ORT_LIB ?= $(ORT_LIB)
export SIMMATCH_MODEL_DIR ?= $(MODEL_DIR)

GO_TEST_FLAGS ?= -race -count=1 -timeout 20m
FUZZ_TIME ?= 15s

.PHONY: help deps run test test-go fuzz bench build lint clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(ORT_LIB):
	deploy/scripts/fetch-ort.sh $@

$(TOKENIZERS_DIR)/libtokenizers.a:
	deploy/scripts/build-tokenizers.sh $(TOKENIZERS_DIR)

$(MODEL_DIR)/model.onnx:
	deploy/scripts/fetch-model.sh $(MODEL_DIR)

deps: $(ORT_LIB) $(TOKENIZERS_DIR)/libtokenizers.a $(MODEL_DIR)/model.onnx ## fetch ONNX Runtime, build libtokenizers.a, fetch the model

build: deps ## build the three binaries into bin/
	go build -o bin/ ./cmd/...

run: deps ## run the all-in-one (embedded NATS + processor + bridge on :8000)
	go run ./cmd/simmatch

test: deps ## run every test (real NATS, real ONNX Runtime, real model)
	go vet ./...
	CGO_ENABLED=0 go build ./bridge/... ./contracts/... ./cmd/simmatch-bridge
	go test $(GO_TEST_FLAGS) ./...
	$(MAKE) --no-print-directory fuzz

fuzz: ## run each fuzz target briefly
	go test -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZ_TIME) ./contracts/

BENCH ?= .
bench: deps ## benchmarks (BENCH=regexp): ONNX Runtime alone and end to end through the bridge
	go test -run '^$$' -bench '$(BENCH)' -benchtime 3s ./processor/...

clean: ## remove build outputs (keeps the download cache)
	rm -rf bin models
