# iotgw developer targets. CI runs `make lint test` and scripts/ci-crossbuild.sh.

GO          ?= go
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)
# Extra arguments for `make bench`, e.g. make bench ARGS="-scenarios burst-1,latency -storage memory".
ARGS        ?=

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/iotgw/iotgw/buildinfo.Version=$(VERSION) \
           -X github.com/iotgw/iotgw/buildinfo.Commit=$(COMMIT)

.PHONY: all build test lint release crossbuild bench demo clean

all: lint test build

# A static binary for this machine in bin/iotgw, stamped like a release.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/iotgw ./cmd/iotgw

# The test command of the README.
test:
	$(GO) test -race -count=1 ./...

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Static binaries for linux/amd64, arm64 and armv7 plus SHA256SUMS in dist/.
release:
	VERSION="$(VERSION)" COMMIT="$(COMMIT)" ./scripts/release.sh

crossbuild:
	./scripts/ci-crossbuild.sh

bench:
	$(GO) run ./bench $(ARGS)

demo:
	$(GO) run ./cmd/iotgw demo

clean:
	rm -rf bin dist
