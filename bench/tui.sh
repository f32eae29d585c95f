#!/usr/bin/env bash
# Benchmark of the dashboard: RSS and CPU of `pogo tui` idle for DURATION seconds with N
# pogo-labelled containers running, keypress-to-frame latency (tmux send-keys until
# capture-pane shows the change) and external-config-edit-to-frame latency (the hot reload).
# Not a test: prints figures for docs/performance.md.
#
#   bash bench/tui.sh [--containers N] [--duration SECONDS] [--image IMAGE]
#
# Needs podman, tmux and the test images (`make setup`). Creates containers named
# pogo-tuibench-* (label io.pogo.managed-by=pogo) and removes exactly those at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=100
DURATION=30
IMAGE=localhost/pogo-test/busybox:latest
while [ $# -gt 0 ]; do
    case "$1" in
        --containers) N=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --image) IMAGE=$2; shift 2 ;;
        *) echo "usage: $0 [--containers N] [--duration SECONDS] [--image IMAGE]" >&2; exit 2 ;;
    esac
done

for tool in podman tmux; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 1; }
done

cargo build --release --quiet
POGO=$PWD/target/release/pogo
WORK=$(mktemp -d)
SOCK=pogo-tuibench-$$
cleanup() {
    tmux -L "$SOCK" kill-server 2>/dev/null || true
    podman ps -aq --filter label=io.pogo.tuibench="$$" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/pogo.yaml" <<EOF
default_image: $IMAGE
working_dir: $WORK/work
EOF

echo "starting $N labelled containers ($IMAGE)..."
for i in $(seq 1 "$N"); do
    podman run -d --name "pogo-tuibench-$$-$i-0-build" \
        --label io.pogo.managed-by=pogo --label io.pogo.tuibench="$$" \
        --label "io.pogo.job-key=pogo-tuibench-$$-$i-0" --label "io.pogo.job-id=$i" \
        --label "io.pogo.project=bench/p$i" --label io.pogo.job-name=bench \
        "$IMAGE" sleep 3600 >/dev/null
done

tmux -L "$SOCK" -f /dev/null new-session -d -x 120 -y 40 -s bench \
    "env TERM=xterm-256color $POGO --config $WORK/pogo.yaml tui --runner-config $WORK/none.toml"
PID=""
for _ in $(seq 1 100); do
    PID=$(pgrep -f "^$POGO --config $WORK/pogo.yaml tui" | head -n 1 || true)
    [ -n "$PID" ] && break
    sleep 0.1
done
[ -n "$PID" ] || { echo "error: pogo tui did not start" >&2; exit 1; }
# Wait until the jobs are listed.
for _ in $(seq 1 200); do
    tmux -L "$SOCK" capture-pane -p -t bench | grep -q "$N running" && break
    sleep 0.1
done
sleep 3
echo "pogo tui: pid $PID, $(tr "\0" " " < "/proc/$PID/cmdline" | cut -c1-80)"

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
# ... and of the podman processes it starts: the ones it waited for (cutime + cstime) and the
# ones still running (a streaming `podman stats`, `podman events`), all their own and children's
# time; a child that ends during the window moves from the second sum to the first.
child_ticks() {
    local t
    t=$(awk '{print $16 + $17}' "/proc/$PID/stat")
    for c in $(pgrep -P "$PID" || true); do
        t=$((t + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$c/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
hz=$(getconf CLK_TCK)
t0=$(ticks); c0=$(child_ticks)
sleep "$DURATION"
t1=$(ticks); c1=$(child_ticks)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v d="$DURATION" 'BEGIN {printf "%.2f", (b - a) / hz / d * 100}')
children=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v d="$DURATION" 'BEGIN {printf "%.2f", (b - a) / hz / d * 100}')

# Keypress to frame: press j/k alternately, wait until the screen differs.
lat=()
prev=$(tmux -L "$SOCK" capture-pane -p -t bench)
for i in $(seq 1 20); do
    key=j; [ $((i % 2)) -eq 0 ] && key=k
    start=$(date +%s%N)
    tmux -L "$SOCK" send-keys -t bench "$key"
    while :; do
        now=$(tmux -L "$SOCK" capture-pane -p -t bench)
        [ "$now" != "$prev" ] && break
        [ $(( ($(date +%s%N) - start) / 1000000 )) -gt 2000 ] && break
    done
    lat+=($(( ($(date +%s%N) - start) / 1000000 )))
    prev=$now
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maximum() { printf '%s\n' "$@" | sort -n | tail -n 1; }
median=$(median "${lat[@]}")
max=$(maximum "${lat[@]}")

# External config edit to frame: on the Config screen, rewrite the file (as an editor saving
# by rename would) with a new default image, and wait until the screen shows it.
tmux -L "$SOCK" send-keys -t bench 2
shown=""
for _ in $(seq 1 100); do
    tmux -L "$SOCK" capture-pane -p -t bench | grep -q "Preview" && { shown=1; break; }
    sleep 0.05
done
[ -n "$shown" ] || { echo "error: the Config screen did not show" >&2; exit 1; }
reload=()
for i in $(seq 1 10); do
    sleep 0.3
    sed "s|^default_image: .*|default_image: localhost/bench/reload-$i:1|" "$WORK/pogo.yaml" \
        >"$WORK/pogo.yaml.new"
    start=$(date +%s%N)
    mv "$WORK/pogo.yaml.new" "$WORK/pogo.yaml"
    while ! tmux -L "$SOCK" capture-pane -p -t bench | grep -q "reload-$i:1"; do
        if [ $(( ($(date +%s%N) - start) / 1000000 )) -gt 5000 ]; then
            echo "error: edit $i did not show within 5 s" >&2
            exit 1
        fi
    done
    reload+=($(( ($(date +%s%N) - start) / 1000000 )))
done
reload_median=$(median "${reload[@]}")
reload_max=$(maximum "${reload[@]}")

echo
echo "| measure (${N} running pogo containers, ${DURATION} s) | value | target |"
echo "|---|---:|---|"
echo "| RSS of pogo tui | $((rss / 1024)) MB (peak $((hwm / 1024)) MB) | ≤ 30 MB |"
echo "| CPU of pogo tui while idle | ${cpu} % | ~0 % |"
echo "| CPU of the podman processes it started, same window | ${children} % | - |"
echo "| keypress to frame, median / max of 20 (incl. tmux capture) | ${median} / ${max} ms | ≤ 50 ms |"
echo "| external config edit to frame, median / max of 10 (incl. tmux capture) | ${reload_median} / ${reload_max} ms | ≤ 500 ms |"
