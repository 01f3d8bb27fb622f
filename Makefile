# JimBus. `make run` starts the service with embedded defaults; `make test`
# runs everything CI runs. Both work on a fresh machine: tools that are
# missing are installed into ./.bin (and protoc via apt-get when absent).

GO          ?= go
BIN         := $(CURDIR)/.bin
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
# The vtproto generator must be the version of github.com/planetscale/vtprotobuf
# in go.mod (its generated code calls that module's protohelpers).
PROTOC_GEN_GO_VTPROTO_VERSION := v0.6.1-0.20240319094008-0393e58bdf10
PROTOC      ?= protoc
PROTO_FILES := $(wildcard proto/*.proto)
# Messages with generated SizeVT/MarshalToSizedBufferVT: what grpcout's codec
# sends to every subscriber.
VTPROTO_FILES := proto/balatro_events.proto
export PATH := $(BIN):$(PATH)

.PHONY: all build run test soak-ci nocgo-check vet fmt-check proto proto-check tools gotest nvml-check docker clean

all: build

build:
	$(GO) build -o $(BIN)/jimbus ./cmd/jimbus

run:
	$(GO) run ./cmd/jimbus serve

## test: vet, formatting, proto freshness and compatibility, race tests, the
## build without cgo, a short run of every fuzzer and a short soak of the real
## binary.
test: vet fmt-check proto-check gotest nocgo-check fuzz-ci soak-ci bench-ci

include reliability.mk
include bench.mk

## soak-ci: the soak, bounded for CI (make soak runs 5 minutes).
soak-ci:
	$(MAKE) soak SOAK_DURATION=15s

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$') 2>/dev/null); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

gotest:
	$(GO) test -race -count=1 -timeout 12m ./...

## nocgo-check: the build without cgo (what the go command makes where it
## finds no C compiler) vets clean, and its coordinator falls back from NVML.
nocgo-check:
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./coord

## tools: protoc and the pinned code generators.
tools: $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-go-vtproto
	@command -v $(PROTOC) >/dev/null 2>&1 || { \
		echo "installing protoc (protobuf-compiler) with apt-get"; \
		(apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null) || \
		{ echo "cannot install protoc: install protobuf-compiler 3.21.x"; exit 1; }; }

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) GOFLAGS= $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) GOFLAGS= $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

$(BIN)/protoc-gen-go-vtproto:
	GOBIN=$(BIN) GOFLAGS= $(GO) install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(PROTOC_GEN_GO_VTPROTO_VERSION)

# PROTOC_GEN generates the Go code into directory $(1): the library's
# messages and gRPC stubs, then the vtproto encoders, corrected by
# proto/internal/vtfix (see its doc comment).
PROTOC_GEN = $(PROTOC) -I proto --go_out=$(1) --go_opt=paths=source_relative \
		--go-grpc_out=$(1) --go-grpc_opt=paths=source_relative $(PROTO_FILES) && \
	$(PROTOC) -I proto --go-vtproto_out=$(1) \
		--go-vtproto_opt=paths=source_relative,features=marshal+size $(VTPROTO_FILES) && \
	$(GO) run ./proto/internal/vtfix $(1)/*_vtproto.pb.go

## proto: regenerate the committed Go code from proto/*.proto.
proto: tools
	$(call PROTOC_GEN,proto)

## proto-check: fail when the committed generated code is stale.
proto-check: tools
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(call PROTOC_GEN,$$tmp) && \
	for f in $$tmp/*.go; do \
		if ! cmp -s $$f proto/$$(basename $$f); then \
			echo "proto/$$(basename $$f) is stale: run 'make proto' and commit"; exit 1; fi; \
	done; echo "generated protobuf code is fresh"

nvml-check:
	$(GO) run ./cmd/nvmlcheck

docker:
	docker build -t jimbus .

clean:
	rm -rf $(BIN)
