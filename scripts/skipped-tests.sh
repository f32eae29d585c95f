#!/usr/bin/env bash
# The end of `make test`: how many tests (or parts of tests) were skipped, which, and why, from
# the log tests/common's `skipped()` writes. Nothing skipped says so too. Never fails: CI
# fails a skip in the test itself.
set -euo pipefail
log=${1:-target/tmp/pogo-skipped-tests.log}
if [ ! -s "$log" ]; then
    echo "== skipped: none (every test ran all of its parts) =="
    exit 0
fi
count=$(sort -u "$log" | wc -l)
echo "== skipped: $count test(s) or part(s) of tests did not run here =="
sort -u "$log" | sed 's/\t/  -- /; s/^/  /'
