# Dashtam developer entry points. `make run` and `make test` are the contract of
# the README: they work on a fresh machine with Go and the PostgreSQL
# server binaries, and use $DATABASE_URL instead of a private cluster when set.

GO        ?= go
BIN       := bin/dashtam
STATICCHECK := bin/staticcheck

# Packages and flags, overridable: make test TESTPKGS='./migrations/... ./cmd/...' TESTFLAGS=-race
TESTPKGS  ?= ./...
TESTFLAGS ?=
# Benchmarks stay bounded: a short -benchtime per benchmark and a global timeout.
BENCHPKGS ?= ./...
BENCH     ?= .
BENCHTIME ?= 500ms
BENCHOUT  ?= bench.txt

DASHTAM_DATA_DIR ?= ./.dashtam

.PHONY: build run test bench lint stop

build:
	$(GO) build -o $(BIN) ./cmd/dashtam

# Start or reuse the private cluster (unless DATABASE_URL is set), generate dev
# secrets once, then serve. Extra serve flags: make run ARGS='--http-addr ...'
run: build
	DASHTAM_DATA_DIR='$(DASHTAM_DATA_DIR)' scripts/run.sh $(BIN) $(ARGS)

# The whole suite against a throwaway cluster that is deleted afterwards.
test: build
	scripts/with-test-cluster.sh $(BIN) $(GO) test -count=1 $(TESTFLAGS) $(TESTPKGS)

bench: build
	scripts/with-test-cluster.sh $(BIN) bash -o pipefail -c \
	  '$(GO) test -count=1 -run "^$$" -bench "$(BENCH)" -benchtime=$(BENCHTIME) -benchmem -timeout 15m $(TESTFLAGS) $(BENCHPKGS) 2>&1 | tee $(BENCHOUT)'

lint: $(STATICCHECK)
	@unformatted=$$(find . -name '*.go' -not -path './.dashtam/*' -not -path './bin/*' -not -path './.git/*' -print0 | xargs -0 gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt: these files need formatting:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# staticcheck is pinned in its own module (scripts/tools/go.mod) and built from
# the Go module proxy; see that file for why it is not a tool of the main module.
$(STATICCHECK): scripts/tools/go.mod scripts/tools/go.sum
	$(GO) build -C scripts/tools -o '$(CURDIR)/$(STATICCHECK)' honnef.co/go/tools/cmd/staticcheck

stop: build
	$(BIN) --data-dir '$(DASHTAM_DATA_DIR)' dev db stop
