# heartlog developer commands. `make` (or `make help`) lists the targets.
#
# The local service stack (Postgres, Redis, versitygw under var/) is managed by ops/stack.sh;
# see `ops/stack.sh help` and DESIGN.md, "Local stack".

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Go lives in /usr/local/go/bin on our machines, which is not always on PATH.
export PATH := $(PATH):/usr/local/go/bin

GO       ?= go
GOFMT    ?= gofmt
STACK    := ops/stack.sh
# Packages and extra flags for `make test`, e.g. make test PKG=./streams/... TESTFLAGS='-run TestX -v'
PKG      ?= ./...
TESTFLAGS ?=
# Extra flags for `go run ./ops/bench`, and the duration for `make fuzz`.
BENCHFLAGS ?=
# Extra flags for `go run ./ops/chaos`, e.g. make chaos CHAOSFLAGS='-rows poison -v -keep'
CHAOSFLAGS ?=
FUZZTIME ?= 30s

.PHONY: help build run stop status test fmt-check proto proto-check web web-check bench chaos fuzz clean

help: ## List the targets (default)
	@echo "Usage: make TARGET [PKG=./pkg/...] [TESTFLAGS='-run X -v'] [FUZZTIME=30s]"
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## Build bin/heartlog
	$(GO) build -o bin/heartlog ./cmd/heartlog

run: ## Install deps, start the local stack (tag run), build and exec `heartlog dev` (stack stays up: make stop)
	$(STACK) install
	HEARTLOG_STACK_TAG=run $(STACK) up
	$(MAKE) --no-print-directory build
	. var/env && exec bin/heartlog dev

stop: ## Stop every local service under var/
	$(STACK) down

status: ## Show the local services
	@$(STACK) status

# `make test` starts whatever part of the stack is not already running (Postgres without fsync),
# and afterwards stops exactly what it started, also on failure or Ctrl-C, keeping the exit code.
test: fmt-check proto-check web-check ## gofmt + proto + web checks, then go vet and go test against a private stack
	$(STACK) install
	trap 'rc=$$?; $(STACK) down --only-started test || true; exit $$rc' EXIT; \
	HEARTLOG_STACK_PG_FAST=1 HEARTLOG_STACK_TAG=test $(STACK) up; \
	. var/env; \
	$(GO) vet $(PKG); \
	$(GO) test -count=1 -timeout 40m $(TESTFLAGS) $(PKG)

fmt-check: ## Fail if a tracked .go file is not gofmt-clean
	@files="$$(git ls-files -z -- '*.go' | xargs -0 -r $(GOFMT) -l)"; \
	if [ -n "$$files" ]; then \
	  echo "error: these files are not gofmt-formatted (run: gofmt -w FILE):" >&2; \
	  echo "$$files" >&2; \
	  exit 1; \
	fi; \
	echo "fmt-check: ok"

proto: ## Regenerate schema/gen from the .proto files (buf, pinned in tools/go.mod)
	$(GO) tool -modfile=tools/go.mod buf generate

# unchanged-since-regenerated PATHS TARGET: fail if `make TARGET` left changes under PATHS
# (generated code committed stale).
define unchanged-since-regenerated
	@changes="$$(git status --porcelain -- $(1))"; \
	if [ -n "$$changes" ]; then \
	  echo "error: generated code in $(1) is stale: 'make $(2)' changed it:" >&2; \
	  echo "$$changes" >&2; \
	  echo "run 'make $(2)' and commit $(1) together with the change." >&2; \
	  exit 1; \
	fi; \
	echo "$(2)-check: ok ($(1) up to date)"
endef

proto-check: ## Run `make proto` and fail if schema/gen changed (generated code stale)
	$(MAKE) --no-print-directory proto
	$(call unchanged-since-regenerated,schema/gen,proto)

# The dashboard (web/, package heartlog/web). Its bundle web/dist and the client web/src/gen are
# committed, so building and `make run` need no Node; `make web` needs Node 20 and npm.
# npm ci runs only when web/package-lock.json differs from the one last installed.
web: ## Rebuild the dashboard: npm ci (if needed), web/src/gen from the protos, tsc, bundle into web/dist
	@if ! cmp -s web/package-lock.json web/node_modules/.heartlog-installed-lock.json; then \
	  (cd web && npm ci --no-audit --no-fund) && cp web/package-lock.json web/node_modules/.heartlog-installed-lock.json; \
	fi
	$(GO) tool -modfile=tools/go.mod buf generate --template web/buf.gen.yaml
	cd web && node_modules/.bin/tsc --noEmit -p .
	cd web && node build.mjs

web-check: ## Run `make web` and fail if web/dist or web/src/gen changed (bundle stale)
	$(MAKE) --no-print-directory web
	$(call unchanged-since-regenerated,web/dist web/src/gen,web)

bench: ## Run ./ops/bench against the local stack (tag bench), then stop what it started
	$(STACK) install
	trap 'rc=$$?; $(STACK) down --only-started bench || true; exit $$rc' EXIT; \
	HEARTLOG_STACK_TAG=bench $(STACK) up; \
	. var/env; \
	$(GO) run ./ops/bench $(BENCHFLAGS)

# The fault matrix starts a private stack of its own (temp dir, free ports) and never touches
# the one under var/: it stops Postgres and Redis. Not part of `make test`.
chaos: ## Run the fault matrix (ops/chaos) on a private stack, about 10 minutes; CHAOSFLAGS='-rows poison -v -keep'
	$(STACK) install
	$(GO) build -o .tools/bin/nats-server github.com/nats-io/nats-server/v2
	$(MAKE) --no-print-directory build
	$(GO) run ./ops/chaos $(CHAOSFLAGS)

fuzz: ## Fuzz the WakaTime decoder for FUZZTIME (default 30s)
	$(GO) test ./heartbeat -run '^$$' -fuzz FuzzDecodeWakaTime -fuzztime $(FUZZTIME)

clean: ## Stop the local stack and remove var/ and bin/ (keeps .tools/)
	$(STACK) down
	rm -rf var bin
