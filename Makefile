# The two commands a new user needs are `make demo` and `make test`.
GO      ?= go
SEEDS   ?= 500

.PHONY: demo simulate test deps build vet fuzz simulate-long bench bench-quick

## demo: the main job, on the local cloud: a kvstore instance behind a load
## balancer is replaced three ways (update, unhealthy, az-move) under load.
demo: build
	./bin/handover demo

## simulate: many concurrent handovers under faults, deterministic.
simulate: build
	./bin/handover simulate --seeds $(SEEDS)

## test: installs what the tests need, then runs every test with -race.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

deps:
	./scripts/deps.sh

build:
	$(GO) build -o bin/handover ./cmd/handover
	$(GO) build -o bin/kvstore ./examples/kvstore

## fuzz: every fuzz target for FUZZTIME each (default 10m), one at a time.
FUZZTIME ?= 10m
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

## simulate-long: the long simulation reported in closing notes.
simulate-long: build
	./bin/handover simulate --seeds 100000

## bench: every benchmark, medians of 5, side by side with the alternatives;
## rewrites bench/RESULTS.md (not part of make test; tens of minutes).
bench: deps
	./bench/run.sh

## bench-quick: one short run of each benchmark (under 3 minutes).
bench-quick: deps
	./bench/run.sh --quick
