# Tone: run `make help` for the targets.

GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
BIN       := bin/tone
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: help run build test test-short bench fuzz lint tidy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

run: ## start the server on the embedded default (in-memory, http://127.0.0.1:8080)
	$(GO) run ./cmd/tone serve

build: ## build bin/tone
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/tone

test: ## run every test with the race detector (needs PostgreSQL and Redis; CI=true makes them mandatory)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

test-short: ## run the fast tests only
	$(GO) test -short -count=1 $(PKGS)

bench: ## run the Go benchmarks (see docs/benchmarks.md for the load tests)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

fuzz: ## run each fuzz target for FUZZTIME
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

tidy: ## tidy go.mod and go.sum
	$(GO) mod tidy

clean: ## remove build output
	rm -rf bin
