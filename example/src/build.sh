#!/usr/bin/env bash
# The example's "build": writes out/app.txt from the sources and the cached dependency.
# Run by the `build` job; `test-artifact` checks what it wrote.
set -euo pipefail
mkdir -p out
{
    echo "app $(cat VERSION) built by ${CI_JOB_NAME:-hand} from commit ${CI_COMMIT_SHORT_SHA:-none}"
    echo "with $(cat .deps/lib.txt)"
} > out/app.txt
cat out/app.txt
