#!/usr/bin/env bash
# Run the example pipeline (example/.gitlab-ci.yml) locally through pogo's executor phases:
#   bash example/run.sh            every job except the manual one
#   bash example/run.sh deploy     only the named job(s), manual ones included
#   bash example/run.sh -j 3       up to 3 jobs of a stage at a time
#   bash example/run.sh --clean    remove example/.pogo/ (the kept cache and artifacts)
# Other arguments go to `pogo exec` as they are. The jobs get the files of example/ as they
# are on disk (`--dirty`), committed or not.
# `make example` runs scripts/setup-test-env.sh (podman, offline test images) first.
#
# Environment: POGO_EXAMPLE_STATE  where pogo keeps its state (default /tmp/pogo-example)
# Exit status: pogo exec's (0 pipeline passed, 1 a job failed, 2 nothing could run).

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXAMPLE_DIR="$REPO_ROOT/example"
STATE=${POGO_EXAMPLE_STATE:-/tmp/pogo-example}

die() { printf 'example: %s\n' "$*" >&2; exit 2; }

case "$STATE" in /*) ;; *) die "POGO_EXAMPLE_STATE must be an absolute path, not '$STATE'" ;; esac
# The paths end up in HOST:CONTAINER volume arguments.
for p in "$STATE" "$EXAMPLE_DIR"; do
    case "$p" in *[\":\\]* | *$'\n'*) die "the path '$p' contains a quote, colon, backslash or newline: use another directory" ;; esac
done

cd "$REPO_ROOT"
# The debug build: its dependencies are the ones `make test` builds next, so a fresh clone
# compiles them once (a release build took 6 of the 8 minutes of a first `make example`).
# The example's jobs run the same code; pogo's own speed does not show in them.
cargo build -q

mkdir -p "$STATE"
# example/pogo.yaml as it is; only pogo's state goes elsewhere (the environment overrides
# the file's settings)
export POGO_WORKING_DIR="$STATE/work" POGO_CACHE_DIR="$STATE/cache"

dirty=(--dirty)
for arg in "$@"; do
    [ "$arg" = --clean ] && dirty=()
done
status=0
"$REPO_ROOT/target/debug/pogo" --config "$EXAMPLE_DIR/pogo.yaml" exec --dir "$EXAMPLE_DIR" "${dirty[@]}" "$@" || status=$?
exit "$status"
