#!/usr/bin/env bash
# pogo's benchmark (issue 7): a trivial job as plain `podman run --rm` (the floor), as a
# minimal shell driver (podman run -d / exec / rm) and through pogo on both stage paths
# (`stage_runner: exec` and the fast path, `agent`), interleaved, in one run; plus per-stage
# overhead, log throughput and `pogo run`'s memory on a 100 MB stage, and `pogo config`; jobs
# per minute; cold starts (a fresh working_dir; an image pulled from a registry on 127.0.0.1);
# `pogo exec` against gitlab-ci-local (installed by bench/gitlab-ci-local.sh, npm).
#
#   bash bench/run.sh [--runs N] [--warmup N] [--markdown] [--image IMAGE] [--log-mb MB]
#
# Builds the release binary (target/release/pogo) and the bench example, then runs it (on a
# copy of the binary, so a concurrent build cannot swap it mid-run). Needs podman and the
# offline test image (`make setup` builds it). Progress goes to stderr, the report to stdout
# (`--markdown`: tables to paste into docs/performance.md). Everything it starts is labelled and
# removed at the end, also on errors and Ctrl-C; it never prunes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --quiet --release --bin pogo
exec cargo run --quiet --release --example bench -- "$@"
