# shellcheck shell=bash
# Shell helpers shared by scripts/setup-test-env.sh and bench/screenshot.sh.
# Source it after setting LOG_NAME, the prefix of every message (default: pogo).

log()  { printf '%s: %s\n' "${LOG_NAME:-pogo}" "$*"; }
warn() { printf '%s: warning: %s\n' "${LOG_NAME:-pogo}" "$*" >&2; }
die()  { printf '%s: error: %s\n' "${LOG_NAME:-pogo}" "$*" >&2; exit 1; }

have()    { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root: directly, or through sudo.
as_root() {
    if is_root; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        return 1
    fi
}

# Install Debian packages with apt-get, saying so first. Without root or sudo, stop with the
# command to run as root.
apt_install() {
    if ! is_root && ! have sudo; then
        die "missing packages and not root (no sudo): run as root:" \
            "apt-get install --no-install-recommends $*"
    fi
    log "installing missing system packages with apt-get: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}
