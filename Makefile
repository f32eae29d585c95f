# Developer commands (the original tool's names). `make help` lists them.
CARGO ?= cargo
ARGS ?= help
# On a machine whose podman needs the test settings to run containers at all (a sandbox),
# `make setup` writes this file (outside CI; the machine's config is not changed) and the
# targets below run with it.
WITH_PODMAN_ENV = set -a; if [ -f target/pogo-test-podman.env ]; then . ./target/pogo-test-podman.env; fi; set +a;

.PHONY: help build run test setup lint bench soak example screenshot dist matrix

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
	@echo "make matrix           make example + make test on fresh Debian 12 and 13 containers (ARGS=trixie)"

build:
	$(CARGO) build --release

run:
	$(WITH_PODMAN_ENV) $(CARGO) run --quiet --release -- $(ARGS)

setup:
	bash scripts/setup-test-env.sh

# Skipped tests are noted in target/tmp/pogo-skipped-tests.log and listed at the end.
# The leftover check is a step of its own once every test has ended (both executor passes).
test: setup
	@rm -f target/tmp/pogo-skipped-tests.log
	@mkdir -p target/tmp && date +%s > target/tmp/pogo-suite-start
	$(WITH_PODMAN_ENV) $(CARGO) test --all-targets
	@echo "== the executor scenarios again on the podman exec stage path =="
	$(WITH_PODMAN_ENV) POGO_STAGE_RUNNER=exec $(CARGO) test --test suite executor::
	@echo "== nothing the suite's jobs created remains in podman =="
	$(WITH_PODMAN_ENV) POGO_TEST_SUITE_START=$$(cat target/tmp/pogo-suite-start) $(CARGO) test --test suite leftovers:: -- --ignored
	@bash scripts/skipped-tests.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: setup
	$(WITH_PODMAN_ENV) bash bench/run.sh

# ARGS only when given (its default, help, is for `make run`).
soak: setup
	$(WITH_PODMAN_ENV) bash bench/soak.sh $(if $(filter-out default file,$(origin ARGS)),$(ARGS))

example: setup
	$(WITH_PODMAN_ENV) bash example/run.sh

screenshot: setup
	$(WITH_PODMAN_ENV) bash bench/screenshot.sh

dist:
	CARGO="$(CARGO)" bash packaging/dist.sh

# The README's two commands on fresh Debian 12 and 13 machines (throwaway privileged
# containers); ARGS picks the suites (bookworm, trixie). POGO_MATRIX_SOURCE=worktree tests
# uncommitted changes.
matrix: setup
	$(WITH_PODMAN_ENV) bash scripts/matrix.sh $(if $(filter-out default file,$(origin ARGS)),$(ARGS))
