# telestra-sip: build, test and package the daemon.
# The two README commands are `make run` and `make check`.

VERSION ?= $(shell cat VERSION 2>/dev/null || echo 0.1.0)
# Go from PATH, else where the official tarball installs it.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOFMT   ?= $(shell command -v gofmt 2>/dev/null || echo /usr/local/go/bin/gofmt)
LDFLAGS := -X main.version=$(VERSION)
PLAN    ?= testdata/quickstart.toml
export CGO_ENABLED ?= 1

.PHONY: all build run test integration check lint fuzz bench soak dist rpm selinux man clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/telestra-sipd ./cmd/telestra-sipd
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/telestra-sipctl ./cmd/telestra-sipctl

# README command 1: the daemon on the bundled quick-start plan (loopback audio,
# two local accounts, no registrar).
run: build
	bin/telestra-sipd -plan $(PLAN)

# Hermetic unit tests (no external servers).
test:
	$(GO) test -race -count=1 ./...

# Tests against real Kamailio, baresip and PulseAudio, which the tests start
# themselves; a missing program is a failure naming what to install.
integration:
	$(GO) test -race -count=1 -p 1 -tags integration -timeout 20m ./...

# README command 2: installs what the tests need (root on Debian), then runs
# every test and check. CI runs exactly this.
check:
	.ci/test-all

lint:
	$(GO) vet ./...
	@out=$$($(GOFMT) -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags integration ./...

# Short coverage-guided run of every fuzz target (seeds live in testdata/fuzz).
fuzz:
	.ci/fuzz-all $${FUZZTIME:-10s}

bench:
	.ci/bench

# The reliability suite at full length (CI runs it shortened inside
# `make check`): a 10 000-call soak, the INVITE flood, malformed SIP and the
# faults, then the memory, goroutine, fd, thread and latency budgets as
# benchmarks (docs/benchmarks.md). About 8-10 minutes here; SOAK_CALLS to change.
soak:
	SOAK_CALLS=$${SOAK_CALLS:-10000} $(GO) test -count=1 -p 1 -tags integration -timeout 60m -v ./cmd/internal/reliability/
	SOAK_CALLS=$${SOAK_CALLS:-10000} $(GO) test -count=1 -tags integration -run '^$$' -bench Budget -benchtime 1x -timeout 60m ./cmd/internal/reliability/

dist:
	packaging/make-dist $(VERSION)

rpm: dist
	rpm/build-rpm $(VERSION)

selinux:
	$(MAKE) -C selinux

man:
	$(GO) run ./cmd/internal/mangen -out bin/man docs/man

clean:
	rm -rf bin dist
