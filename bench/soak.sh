#!/usr/bin/env bash
# pogo's soak test: N jobs (default 200) with mixed outcomes -- success, script failure,
# SIGTERM cancel, service, prepare failure, SIGKILL mid-prepare -- through the gitlab-runner
# imitation and the release pogo, P at once (default 4); then `pogo gc` and leftover checks.
#
#   bash bench/soak.sh [--jobs N] [--parallel P] [--markdown]
#
# Builds the release binary (target/release/pogo) and the soak example, then runs it. Needs
# podman and the offline test images (`make setup` builds them). Progress goes to stderr, the
# report to stdout (`--markdown`: a table for docs/performance.md). Exit status 0 only when every job
# ended as expected and nothing was left behind; `--jobs 20` is a short version for CI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --quiet --release --bin pogo
exec cargo run --quiet --release --example soak -- "$@"
