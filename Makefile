# Developer commands (the original tool's names). `make help` lists them.
CARGO ?= cargo
ARGS ?= help

.PHONY: help build run test setup lint bench soak example screenshot dist

help:
	@echo "make build            build the release binary (target/release/pogo)"
	@echo "make run ARGS=help    run pogo with ARGS"
	@echo "make setup            install podman & co. if missing, build the offline test images"
	@echo "make test             setup + the whole test suite against real podman"
	@echo "make lint             rustfmt and clippy, warnings are errors"
	@echo "make bench            benchmark a trivial job against plain podman"
	@echo "make soak             200 mixed jobs, 4 at once, then leftover checks (ARGS=\"--jobs 20\")"
	@echo "make example          run example/ through pogo's executor phases"
	@echo "make screenshot       the README's dashboard screenshots (assets/dashboard-*.png)"
	@echo "make dist             release tarball (binary, configs, unit, completions, man, install.sh)"

build:
	$(CARGO) build --release

run:
	$(CARGO) run --quiet --release -- $(ARGS)

setup:
	bash scripts/setup-test-env.sh

test: setup
	POGO_TEST_SUITE_START=$$(date +%s) $(CARGO) test --all-targets
	@echo "== the executor scenarios again on the podman exec stage path =="
	POGO_STAGE_RUNNER=exec $(CARGO) test --test executor

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: setup
	bash bench/run.sh

# ARGS only when given (its default, help, is for `make run`).
soak: setup
	bash bench/soak.sh $(if $(filter-out default file,$(origin ARGS)),$(ARGS))

example: setup
	bash example/run.sh

screenshot: setup
	bash bench/screenshot.sh

dist:
	CARGO="$(CARGO)" bash packaging/dist.sh
