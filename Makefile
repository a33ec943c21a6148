# kafkaevents: `make` lists the targets.
SHELL := /usr/bin/env bash
GO ?= go
PKGS := ./...
KAFKA_LOCAL := scripts/kafka-local.sh
GOLANGCI_VERSION := v2.15.0

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@tty=; [ -t 1 ] && tty=1; \
	grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -v tty="$$tty" 'BEGIN {FS = ":.*?## "; if (tty) { on = "\033[36m"; off = "\033[0m" }}; {printf "  %s%-12s%s %s\n", on, $$1, off, $$2}'

.PHONY: test
test: ## Run every test with -race on the embedded broker (needs only Go)
	$(GO) test -race -count=1 $(PKGS)

.PHONY: test-ui
test-ui: ## Run only the browser tests of the operator console (needs chromium; skipped without it)
	$(GO) test -race -count=1 -run 'InBrowser' -v ./health/

.PHONY: screenshots
screenshots: ## Regenerate the console screenshots in docs/img with the browser tests (needs chromium)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$$CHROME_PATH" ] || { echo "screenshots: install chromium (apt-get install -y chromium) or set CHROME_PATH" >&2; exit 1; }
	KAFKAEVENTS_SCREENSHOTS=$(CURDIR)/docs/img $(GO) test -count=1 -run 'TestConsoleInBrowser|TestParkedKeysInBrowser' ./health/

.PHONY: test-kafka
test-kafka: ## Run the same suite against a real Apache Kafka (4.4.0; KAFKA_LOCAL_VERSION to change) started from Maven Central jars, then the short chaos scenarios on it
	@set -euo pipefail; \
	trap '$(KAFKA_LOCAL) down' EXIT; \
	trap 'exit 130' INT TERM; \
	exports="$$($(KAFKA_LOCAL) up)"; \
	eval "$$exports"; \
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list $(PKGS) | grep -v /chaos); \
	$(GO) test -race -count=1 -timeout 20m ./chaos/

.PHONY: mutate
mutate: ## Break the implementation one line at a time (scripts/mutate.go) and report which breakages the tests miss (MUTATE_ARGS="-n 10")
	$(GO) run scripts/mutate.go $(MUTATE_ARGS)

.PHONY: bench
bench: ## Benchmarks side by side; writes BENCHMARKS.md (BENCH_SHORT=1: one quick run, prints only; KAFKA_BROKERS: real Kafka)
	$(GO) run ./bench

.PHONY: chaos
chaos: ## Full-size reliability scenarios (RELIABILITY.md): embedded broker, then real Kafka
	KAFKAEVENTS_CHAOS=1 $(GO) test -race -count=1 -timeout 60m -v ./chaos/
	@set -euo pipefail; \
	trap '$(KAFKA_LOCAL) down' EXIT; \
	trap 'exit 130' INT TERM; \
	exports="$$($(KAFKA_LOCAL) up)"; \
	eval "$$exports"; \
	KAFKAEVENTS_CHAOS=1 $(GO) test -race -count=1 -timeout 60m -v ./chaos/

.PHONY: run
run: ## Build, then run the reference service (embedded broker unless KAFKA_BROKERS is set); Ctrl-C stops it
	@echo "Building bin/orders (the first build compiles the dependencies: a minute or two)..."
	@$(GO) build -o bin/orders ./examples/orders
	@echo "Running bin/orders; Ctrl-C stops it."
	@trap '' INT; ./bin/orders; status=$$?; if [ $$status -eq 130 ]; then status=0; fi; exit $$status

.PHONY: build
build: ## Build the reference service into bin/ (the way the Dockerfile does)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/orders ./examples/orders

.PHONY: vet
vet: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: lint
lint: vet ## golangci-lint (v2, curated config) plus go vet
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION) run $(PKGS)

.PHONY: tidy
tidy: ## go mod tidy and fail if it changed anything
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

.PHONY: compose-check
compose-check: ## Validate docker/docker-compose.yml (docker-compose or the docker compose plugin; no engine needed)
	@if command -v docker-compose >/dev/null 2>&1; then \
		docker-compose -f docker/docker-compose.yml config -q; \
	elif docker compose version >/dev/null 2>&1; then \
		docker compose -f docker/docker-compose.yml config -q; \
	else \
		echo "compose-check: install docker-compose (apt-get install -y docker-compose) or the docker compose plugin" >&2; \
		exit 1; \
	fi
	$(GO) test -count=1 ./docker

.PHONY: kafka-up kafka-down
kafka-up: ## Start the local real Kafka and print its exports
	$(KAFKA_LOCAL) up
kafka-down: ## Stop the local real Kafka and delete its data
	$(KAFKA_LOCAL) down
