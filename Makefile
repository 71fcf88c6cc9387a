# Shoal — see README.md. Everything runs through the Go toolchain; the
# tools (buf, protoc plugins, staticcheck) are pinned in tools/go.mod and
# built into bin/.
GO      ?= go
TOOLS   := bin/buf bin/protoc-gen-go bin/protoc-gen-go-grpc bin/staticcheck
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/shoal-run/shoal/daemon.Version=$(VERSION)

.PHONY: all build test unit e2e lint fmt proto bench demo tools clean

all: build

# build embeds the small shim (runtime/shim/cmd/shoal-shim) in shoal.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o internal/shimbin/shoal-shim ./runtime/shim/cmd/shoal-shim
	CGO_ENABLED=0 $(GO) build -tags shimembed -ldflags "$(LDFLAGS)" -o bin/shoal ./cmd/shoal

tools: $(TOOLS)

$(TOOLS) &: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../bin/ github.com/bufbuild/buf/cmd/buf \
		google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc \
		honnef.co/go/tools/cmd/staticcheck

# proto regenerates the Go code from proto/ with the pinned local plugins.
proto: tools
	bin/buf format -w
	bin/buf lint
	PATH="$(CURDIR)/bin:$$PATH" bin/buf generate

# lint fails on unformatted code, vet or staticcheck findings, proto lint
# or format problems, and generated code that is out of date.
lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	bin/staticcheck ./...
	bin/buf lint
	bin/buf format --diff --exit-code
	@if git rev-parse --verify -q main >/dev/null; then bin/buf breaking --against '.git#branch=main'; fi
	@tmp=$$(mktemp -d /tmp/shoal-gen.XXXX) && cp -r proto $$tmp/ && PATH="$(CURDIR)/bin:$$PATH" bin/buf generate && \
		if ! diff -r $$tmp/proto proto >/dev/null; then rm -rf proto && cp -r $$tmp/proto proto && rm -rf $$tmp; \
			echo "generated code is out of date: run make proto and commit"; exit 1; fi; rm -rf $$tmp

# unit: fast tests with the race detector.
unit:
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /tests)
	$(GO) test -race -count=1 -run 'History|Appends' ./tests/harness/

# e2e: real daemons (and, with later issues, namespaces and containers).
e2e:
	$(GO) test -count=1 -timeout 25m ./tests/...

# test is what CI runs: lint, unit tests, end-to-end tests.
test: lint unit e2e

# demo is the README's first command: a real cluster on this machine.
demo: build
	SHOAL_BIN=$(CURDIR)/bin/shoal $(GO) run ./tests/cmd/democluster $(DEMO_ARGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./tests/bench/failover
	$(GO) run ./tests/bench/writes
	$(GO) run ./tests/bench/rss

clean:
	rm -rf bin
