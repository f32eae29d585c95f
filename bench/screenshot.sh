#!/usr/bin/env bash
# The README's dashboard screenshots, from the real binary: `pogo tui` in a private tmux
# server (100x30, 256 colours) while a small demo pipeline runs through the executor path
# (`pogo exec -j 3`, as example/run.sh does: real podman containers, offline test images).
# Captures the Jobs screen (a job in build_script with its live log), the Config screen (its
# preview set to a tag) and the edit form of an extra-arguments entry, with colours
# (`tmux capture-pane -e`), and turns them into SVG (bench/ansi_svg.rs) and PNG
# (rsvg-convert, 2x). A maintainer tool, not a test; takes about 30 s after the build.
#
#   bash bench/screenshot.sh [--out DIR]        (default: assets/; `make screenshot`)
#
# Writes DIR/dashboard-{jobs,config,form}.{svg,png,txt} (.txt: the plain-text capture).
# Needs podman, tmux and the test images (`make setup`), and rsvg-convert: installed with
# apt-get (package librsvg2-bin) when missing.
# Everything it starts is removed on exit, success or not: the tmux server (its socket is in
# the temp dir), the `pogo exec` run, the demo jobs' containers and pods (labels
# io.pogo.runner=local and io.pogo.project=local/webshop) and the temp dir.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=assets
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
    esac
done

COLS=100
ROWS=30
IMAGE=localhost/pogo-test/bash:latest
PROJECT=local/webshop

LOG_NAME=screenshot
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# rsvg-convert renders the SVGs to PNG (the stand-in /usr/local/bin/convert of some machines
# is no ImageMagick).
ensure_rsvg() {
    have rsvg-convert && return 0
    have apt-get || die "rsvg-convert is missing: install it (Debian/Ubuntu package librsvg2-bin)"
    log "rsvg-convert is missing"
    apt_install librsvg2-bin
}

for tool in podman tmux; do
    have "$tool" || die "$tool is needed (make setup)"
done
podman image exists "$IMAGE" || die "$IMAGE is missing: run make setup"
ensure_rsvg
fc-list 2>/dev/null | grep -qi "DejaVu Sans Mono" ||
    log "warning: the font DejaVu Sans Mono is missing (fonts-dejavu-core): the PNGs use another"

START=$(date +%s)
cargo build --release --quiet --bins --example ansi_svg
POGO=$PWD/target/release/pogo
ANSI_SVG=$PWD/target/release/examples/ansi_svg
mkdir -p "$OUT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pogo-shot.XXXXXX")
SOCK=$WORK/tmux.sock
EXEC_PID=""

# The demo jobs' containers, pods and volumes (volume label filters are ORed: checked here).
remove_jobs() {
    local filters=(--filter label=io.pogo.runner=local --filter "label=io.pogo.project=$PROJECT")
    podman ps -aq "${filters[@]}" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
    podman pod ps -q "${filters[@]}" | xargs -r podman pod rm -f -t 0 >/dev/null 2>&1 || true
    podman volume ls --filter "label=io.pogo.project=$PROJECT" \
        --format '{{.Name}} {{index .Labels "io.pogo.runner"}}' 2>/dev/null |
        awk '$2 == "local" {print $1}' | xargs -r podman volume rm -f >/dev/null 2>&1 || true
}

stop_all() {
    tmux -S "$SOCK" kill-server 2>/dev/null || true
    if [ -n "$EXEC_PID" ] && kill -0 "$EXEC_PID" 2>/dev/null; then
        # Ctrl-C: pogo exec starts no further job and runs the cleanup phase of the running
        # ones, which end at once as their containers go.
        kill -INT "$EXEC_PID" 2>/dev/null || true
        remove_jobs
        for _ in $(seq 1 300); do
            kill -0 "$EXEC_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$EXEC_PID" 2>/dev/null || true
        wait "$EXEC_PID" 2>/dev/null || true
    fi
    EXEC_PID=""
    remove_jobs
}
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- the demo project and the config the dashboard shows ----------------------------------

mkdir -p "$WORK/work" "$WORK/cache" "$WORK/fixtures" "$WORK/ccache" "$WORK/webshop/ci"
# A fresh stamp: the jobs' prepare starts no background `pogo gc --runner local`, which
# would look at every `pogo exec` leftover on the machine, not just these.
touch "$WORK/work/gc-local.stamp"
printf 'id,item,qty\n1,mug,2\n2,tea,1\n' >"$WORK/fixtures/orders.csv"

cat >"$WORK/pogo.yaml" <<EOF
# pogo's config for the dashboard screenshots (bench/screenshot.sh writes it to a temp dir).
default_image: "$IMAGE"
working_dir: "$WORK/work"
cache_dir: "$WORK/cache"
# The test images are built locally (make setup): never pull.
pull_policy: never

mounts:
  # Test data for the integration jobs, read-only.
  - volume: "$WORK/fixtures:/mnt/fixtures"
    tags: [fixtures]
    readonly: true
  # One compiler cache for every build job.
  - volume: "$WORK/ccache:/var/cache/ccache"
    tags: [build]

extra_arguments:
  build: --env CCACHE_DIR=/var/cache/ccache
  # Split like a shell would: the quoted value stays one argument.
  fixtures: --env "SHOP_DATA=/mnt/fixtures read-only" --label tier=e2e
EOF

cat >"$WORK/webshop/.gitlab-ci.yml" <<'EOF'
# bench/screenshot.sh's demo pipeline: a build, then three test jobs at once (-j 3):
# lint fails (allowed), unit-tests and integration run long enough to be captured.
stages: [build, test]

default:
  image: localhost/pogo-test/bash:latest

compile:
  stage: build
  tags: [build]
  script:
    - bash ci/build.sh

lint:
  stage: test
  allow_failure: true
  script:
    - echo "checking 14 files"
    - echo "src/cart.sh:12:101  line too long (104 > 100 characters)"
    - exit 1

unit-tests:
  stage: test
  script:
    - bash ci/unit-tests.sh

integration:
  stage: test
  tags: [fixtures]
  services:
    - name: localhost/pogo-test/httpd:latest
      alias: shop-api
  script:
    - echo "api says $(wget -q -O - http://shop-api/)"
    - echo "$(wc -l < /mnt/fixtures/orders.csv) order lines in $SHOP_DATA"
    - sleep 300
EOF

cat >"$WORK/webshop/ci/build.sh" <<'EOF'
set -e
for m in catalog cart checkout payment; do
    echo "  CC      src/$m.c"
    sleep 0.5
done
mkdir -p out
echo "webshop 1.4.2 built by $CI_JOB_NAME" >out/webshop.txt
echo "  LD      out/webshop"
EOF

cat >"$WORK/webshop/ci/unit-tests.sh" <<'EOF'
set -e
tests="catalog::search_by_name catalog::search_empty catalog::price_in_cents cart::add_item
cart::remove_item cart::merge_guest_cart cart::quantity_limits checkout::address_required
checkout::shipping_zones checkout::vat_rounding payment::card_declined payment::refund_partial
payment::idempotent_retry orders::export_csv orders::cancel_after_shipping stock::reserve
stock::release_on_timeout stock::negative_refused users::password_policy users::login_throttle"
echo "running 20 tests"
for t in $tests; do
    sleep 2
    echo "test $t ... ok"
done
echo "test result: ok. 20 passed; 0 failed"
EOF

# --- run ---------------------------------------------------------------------------------

pane() { tmux -S "$SOCK" capture-pane -p -t shot "$@"; }
shows() { pane | grep -q -- "$1"; }
keys() { tmux -S "$SOCK" send-keys -t shot "$@"; }
# wait_for SECONDS DESCRIPTION TEST...: poll until the command TEST succeeds.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$(($(date +%s) + seconds))
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            printf '%s\n' "--- the screen:" >&2
            pane >&2 || true
            printf '%s\n' "--- pogo exec:" >&2
            tail -n 30 "$WORK/exec.log" >&2 || true
            die "timed out after ${seconds}s waiting for $what"
        fi
        sleep 0.2
    done
}

tmux -S "$SOCK" -f /dev/null new-session -d -x "$COLS" -y "$ROWS" -s shot \
    "env -u NO_COLOR TERM=xterm-256color $POGO --config $WORK/pogo.yaml tui --runner-config $WORK/none.toml"
tmux -S "$SOCK" set-option -t shot remain-on-exit on >/dev/null
wait_for 20 "the dashboard" shows '1 Jobs'

log "running the demo pipeline (pogo exec -j 3, log: $WORK/exec.log)"
"$POGO" --config "$WORK/pogo.yaml" exec --dir "$WORK/webshop" -j 3 >"$WORK/exec.log" 2>&1 &
EXEC_PID=$!

jobs_ready() {
    local s
    s=$(pane)
    grep -q "unit-tes.*build_script" <<<"$s" && grep -q "integrat.*build_script" <<<"$s" &&
        grep -q "lint.*failed" <<<"$s" && grep -q "compile.*success" <<<"$s"
}
wait_for 120 "the test stage" jobs_ready

# Select unit-tests (its id from its row; the NAME column cuts it to `unit-tes…`): to the top, then down until the log is its own.
# (the focused pane is framed ┃, the other │)
SHOWN_JOB=$(pane | awk '/ unit-tes/ {sub(/^(│|┃)/, "", $1); print $1; exit}')
for _ in $(seq 1 8); do keys k; done
for _ in $(seq 1 8); do
    sleep 0.3
    pane | grep -q "log · job $SHOWN_JOB " && break
    keys j
done
log_ready() {
    local s
    s=$(pane)
    grep -q "log · job $SHOWN_JOB build_script" <<<"$s" &&
        [ "$(grep -c 'test .* \.\.\. ok' <<<"$s")" -ge 9 ] &&
        grep "unit-tes" <<<"$s" | grep -q "%" # its CPU and memory arrived
}
wait_for 90 "unit-tests' log" log_ready
# The dashboard lists every pogo job of this user, those of other runs (tests) too: wait a
# little for them to end.
others() { pane | awk -v p="$PROJECT" '/^(│|┃)[0-9]/ && $2 != p {print $2}' | sort -u | tr '\n' ' '; }
for _ in $(seq 1 40); do
    [ -z "$(others)" ] && break
    sleep 0.5
done
[ -z "$(others)" ] || log "warning: other pogo jobs show in the capture: $(others)"
log_ready || die "unit-tests ended before the capture"
sleep 0.5
pane -e >"$WORK/jobs.ansi"
pane >"$WORK/jobs.txt"
log "captured the Jobs screen"

# Config: the preview for a job tagged fixtures, then the form of its extra arguments
# (the last row: the settings, the mounts, then the tags with extra arguments).
keys 2
wait_for 10 "the Config screen" shows '┌ Config'
keys t
sleep 0.3
keys fixtures Enter
for _ in $(seq 1 12); do keys j; done
wait_for 10 "the preview" shows 'fixtures:/mnt/fixtures'
sleep 0.5
pane -e >"$WORK/config.ansi"
pane >"$WORK/config.txt"
log "captured the Config screen"

keys Enter
wait_for 10 "the edit form" shows 'edit extra arguments of tag fixtures'
sleep 0.5
pane -e >"$WORK/form.ansi"
pane >"$WORK/form.txt"
log "captured the extra-arguments form"
keys Escape

stop_all

# --- convert -------------------------------------------------------------------------------

for shot in jobs config form; do
    "$ANSI_SVG" --cols "$COLS" --rows "$ROWS" "$WORK/$shot.ansi" "$OUT/dashboard-$shot.svg"
    rsvg-convert --zoom 2 --format png --output "$OUT/dashboard-$shot.png" "$OUT/dashboard-$shot.svg"
    # The plain text without the pane's trailing blank lines.
    sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$WORK/$shot.txt" >"$OUT/dashboard-$shot.txt"
    log "wrote $OUT/dashboard-$shot.{svg,png,txt}"
done
log "done in $(($(date +%s) - START)) s"
