# Developer commands (the original tool's names). `make help` lists them.
CARGO ?= cargo
ARGS ?= help

.PHONY: help build run test setup lint bench example

help:
	@echo "make build            build the release binary (target/release/pogo)"
	@echo "make run ARGS=help    run pogo with ARGS"
	@echo "make setup            install podman & co. if missing, build the offline test images"
	@echo "make test             setup + the whole test suite against real podman"
	@echo "make lint             rustfmt and clippy, warnings are errors"
	@echo "make bench            benchmark a trivial job against plain podman"
	@echo "make example          run example/ through pogo's executor phases"

build:
	$(CARGO) build --release

run:
	$(CARGO) run --quiet --release -- $(ARGS)

setup:
	bash scripts/setup-test-env.sh

test: setup
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: setup
	bash bench/run.sh

example: setup
	bash example/run.sh
