#!/usr/bin/env bash
# pogo's benchmark: a trivial job as plain `podman run --rm`, as a minimal shell driver
# (podman run -d / exec / rm) and through pogo, interleaved, in one run.
#
#   bash bench/run.sh [--runs N] [--warmup N] [--markdown] [--image IMAGE]
#
# Builds the release binary (target/release/pogo) and the bench example, then runs it.
# Needs podman and the offline test image (`make setup` builds it). Progress goes to stderr,
# the report to stdout (`--markdown`: tables to paste into README.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --quiet --release --bin pogo
exec cargo run --quiet --release --example bench -- "$@"
