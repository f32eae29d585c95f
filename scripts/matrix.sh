#!/usr/bin/env bash
# Prove the README's two set-up commands pass on fresh machines: for each Debian suite, a
# throwaway privileged container made from a minimal debootstrap root filesystem (a "fresh
# machine": Debian, make, a C linker, git, CA certificates, the host's Rust toolchain mounted
# read-only, nothing that scripts/setup-test-env.sh installs) gets a clean clone of the
# repository and runs exactly `make example` then `make test`, with CI=true as .ci/run does.
#
#   bash scripts/matrix.sh                   bookworm (Debian 12, podman 4.3) and trixie
#                                            (Debian 13, podman 5.4), one after the other
#   bash scripts/matrix.sh trixie            only the named suite(s)
#   make matrix [ARGS=trixie]                the same after `make setup`
#
# The root filesystems are built once per machine with debootstrap and kept in the host's
# podman as localhost/pogo-fresh:SUITE-HASH (HASH: of the package list below, so changing the
# list builds new ones and removes the old). Nothing is pulled from a container registry.
# Each run is a clean build (no cargo target dir is shared); only the cargo download cache
# (~/.cargo/registry's index and .crate files) is copied in. Nothing is left on the host
# afterwards but the logs and a summary of the times in target/matrix/ (containers, the inner
# podman's storage and the temporary directories are removed, also on failure or
# interruption).
#
# Needs root (debootstrap, a privileged container), podman, debootstrap, git and a rustup
# toolchain in ~/.rustup and ~/.cargo/bin.
#
# Environment:
#   POGO_MATRIX_SOURCE=head      (default) test a clean `git clone` of the repository's HEAD
#   POGO_MATRIX_SOURCE=worktree  test the working tree as it is (tracked and untracked files,
#                                not the ignored ones such as target/), on top of a clone of
#                                HEAD, so uncommitted work can be tried before it is committed
#   POGO_MATRIX_TESTS            the command run after `make example` (default: make test),
#                                e.g. 'cargo test --test suite rootless::'
#   POGO_MATRIX_MIRROR           Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   POGO_MATRIX_TIMEOUT          seconds one suite may take before it is killed (default 3600)
#   POGO_MATRIX_CARGO_CACHE=0    do not copy the host's cargo download cache in
#   TMPDIR                       where the per-run directories go (default /var/tmp: the
#                                inner podman's storage must be on a real disk, not a tmpfs)
#
# Exit status: 0 when every suite passed, 1 when one failed, 2 when the matrix could not run.

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_NAME=matrix
# shellcheck source=scripts/lib.sh
. "$REPO_ROOT/scripts/lib.sh"
die() { printf '%s: error: %s\n' "$LOG_NAME" "$*" >&2; exit 2; }

# What a user's fresh machine has besides Debian's minimal base: git to clone, make to run the
# README's commands, a C linker for cargo, CA certificates. Nothing that setup-test-env.sh
# installs (podman, iptables, nftables, ...): the matrix proves that it installs them.
FRESH_PACKAGES=(ca-certificates git make gcc libc6-dev)
# Bump to rebuild the images when how they are built changes (not only the package list).
FRESH_FORMAT=1
FRESH_HASH=$(printf '%s\n' "$FRESH_FORMAT" "${FRESH_PACKAGES[@]}" | sha256sum | cut -c1-8)
FRESH_REPO=localhost/pogo-fresh

SOURCE=${POGO_MATRIX_SOURCE:-head}
TESTS=${POGO_MATRIX_TESTS:-make test}
MIRROR=${POGO_MATRIX_MIRROR:-http://deb.debian.org/debian}
TIMEOUT=${POGO_MATRIX_TIMEOUT:-3600}
LOG_DIR=$REPO_ROOT/target/matrix
RUSTUP_DIR=${RUSTUP_HOME:-$HOME/.rustup}
CARGO_DIR=${CARGO_HOME:-$HOME/.cargo}
HOST_CA=/etc/ssl/certs/ca-certificates.crt
IMAGE_PATH_ENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

case "$SOURCE" in head | worktree) ;; *) die "POGO_MATRIX_SOURCE must be head or worktree, not '$SOURCE'" ;; esac
case "$TIMEOUT" in '' | *[!0-9]*) die "POGO_MATRIX_TIMEOUT must be a number of seconds" ;; esac

SUITES=("$@")
[ "${#SUITES[@]}" -gt 0 ] || SUITES=(bookworm trixie)
for suite in "${SUITES[@]}"; do
    case "$suite" in
    bookworm | trixie) ;;
    *) die "unknown suite '$suite' (known: bookworm, trixie)" ;;
    esac
done

is_root || die "run as root: debootstrap and the privileged test containers need it"
for tool in podman debootstrap git tar sha256sum; do
    have "$tool" || die "$tool is missing (\`make setup\` installs podman and debootstrap)"
done
[ -x "$CARGO_DIR/bin/cargo" ] && [ -d "$RUSTUP_DIR/toolchains" ] ||
    die "no rustup toolchain in $RUSTUP_DIR and $CARGO_DIR/bin (it is mounted into the containers)"
[ -r "$HOST_CA" ] || die "$HOST_CA is missing (cargo in the containers needs this machine's CA certificates)"

# The host's podman settings, as the Makefile's targets use them (a sandboxed machine's
# podman needs tests/fixtures/containers.conf; `make setup` writes this file then).
if [ -z "${CONTAINERS_CONF:-}" ] && [ -f "$REPO_ROOT/target/pogo-test-podman.env" ]; then
    set -a
    # shellcheck disable=SC1091
    . "$REPO_ROOT/target/pogo-test-podman.env"
    set +a
fi

COMMIT=$(git -C "$REPO_ROOT" rev-parse HEAD)

# ---------------------------------------------------------------------------------------
# Clean-up: everything this run made on the host, also on failure or interruption.
# ---------------------------------------------------------------------------------------

CLEANUP_DIRS=()
CLEANUP_CONTAINERS=()

# remove_tree DIR: unmount whatever is still mounted below DIR (a failed debootstrap can
# leave proc/sys mounted), then remove it without crossing into other file systems.
remove_tree() {
    local dir=$1 mnt
    [ -e "$dir" ] || return 0
    while read -r mnt; do
        case "$mnt" in "$dir"/*) umount -l "$mnt" 2>/dev/null || true ;; esac
    done < <(findmnt -rn -o TARGET 2>/dev/null | sort -r)
    rm -rf --one-file-system "$dir"
}

cleanup() {
    local c d
    for c in "${CLEANUP_CONTAINERS[@]}"; do
        podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
    done
    for d in "${CLEANUP_DIRS[@]}"; do
        remove_tree "$d" || warn "could not remove $d"
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fmt_secs N: "7m 05s"
fmt_secs() { printf '%dm %02ds' $(($1 / 60)) $(($1 % 60)); }

# ---------------------------------------------------------------------------------------
# The fresh-machine images
# ---------------------------------------------------------------------------------------

# ensure_fresh_image SUITE: build localhost/pogo-fresh:SUITE-HASH unless it is there. Sets
# IMAGE_SECS to the time it took (0 when reused).
IMAGE_SECS=0
ensure_fresh_image() {
    local suite=$1 image=$FRESH_REPO:$1-$FRESH_HASH start rootfs out old include
    IMAGE_SECS=0
    if podman image exists "$image"; then
        log "$suite: reusing $image"
        return 0
    fi
    start=$SECONDS
    rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/pogo-matrix-rootfs.XXXXXX")
    CLEANUP_DIRS+=("$rootfs")
    include=$(IFS=,; printf '%s' "${FRESH_PACKAGES[*]}")
    log "$suite: building $image: debootstrap --variant=minbase --include=$include $suite ($MIRROR)"
    if ! out=$(debootstrap --variant=minbase --include="$include" "$suite" "$rootfs/root" "$MIRROR" 2>&1); then
        printf '%s\n' "$out" | tail -n 30 >&2
        die "debootstrap of $suite failed"
    fi
    rm -rf "$rootfs/root/var/cache/apt/archives"/*.deb "$rootfs/root/var/lib/apt/lists"/*
    if ! out=$(tar --numeric-owner -C "$rootfs/root" -c . |
        podman import --quiet --change "$IMAGE_PATH_ENV" --change 'CMD ["/bin/bash"]' \
            - "$image" 2>&1); then
        printf '%s\n' "$out" >&2
        die "importing $image failed"
    fi
    remove_tree "$rootfs"
    IMAGE_SECS=$((SECONDS - start))
    log "$suite: built $image in $(fmt_secs "$IMAGE_SECS")"
    # Images of an older package list are not used any more.
    while read -r old; do
        [ "$old" = "$image" ] && continue
        case "$old" in "$FRESH_REPO:$suite-"*)
            log "$suite: removing the outdated $old"
            podman rmi "$old" >/dev/null 2>&1 || warn "could not remove $old"
            ;;
        esac
    done < <(podman images --format '{{.Repository}}:{{.Tag}}' "$FRESH_REPO" 2>/dev/null)
}

# Rlimits as on a normal machine (a login's 1024 open files up to the machine's hard limit,
# its process limit), not the low ones a sandbox's containers.conf gives every container;
# where podman may not set a process limit that high (a sandbox's conmon has a lower one),
# the highest of a few lower ones that works; else the containers.conf defaults.
ULIMITS=()
choose_ulimits() {
    local image=$1 nofile nproc
    nofile=$(ulimit -Hn)
    [ "$nofile" = unlimited ] && nofile=1048576
    for nproc in "$(ulimit -Hu)" 65536 32768 16384 4096; do
        [ "$nproc" = unlimited ] && nproc=4194304
        if podman run --rm --network none --ulimit "nofile=1024:$nofile" \
            --ulimit "nproc=$nproc:$nproc" "$image" true >/dev/null 2>&1; then
            ULIMITS=(--ulimit "nofile=1024:$nofile" --ulimit "nproc=$nproc:$nproc")
            log "the containers get nofile=1024:$nofile, nproc=$nproc:$nproc"
            return 0
        fi
    done
    warn "podman cannot raise the containers' rlimits here: they get the configured defaults"
}

# ---------------------------------------------------------------------------------------
# One suite
# ---------------------------------------------------------------------------------------

# The script the container runs: clone, then exactly the README's two commands. It records
# each step's duration and status in /mnt/matrix/times (name<TAB>seconds<TAB>status).
INNER_SCRIPT='
set -euo pipefail
out=/mnt/matrix
record() { printf "%s\t%s\t%s\n" "$1" "$2" "$3" >>"$out/times"; }
say() { printf "\n==> %s\n" "$*"; }
step() {
    local name=$1 start=$SECONDS status=0
    shift
    say "$name"
    "$@" || status=$?
    record "$name" $((SECONDS - start)) "$status"
    say "$name: exit $status after $((SECONDS - start)) s"
    return "$status"
}
prepare() {
    git clone -q file:///mnt/repo /root/pogo
    cd /root/pogo
    if [ "$(git rev-parse HEAD)" != "$POGO_MATRIX_COMMIT" ]; then
        git checkout -q --detach "$POGO_MATRIX_COMMIT"
    fi
    if [ "$POGO_MATRIX_SOURCE" = worktree ]; then
        # The working tree as it is: drop the tracked files, unpack those of the host.
        git ls-files -z | xargs -0 rm -f --
        tar -C /root/pogo -xf /mnt/matrix/worktree.tar
        echo "working tree of $(git rev-parse --short HEAD), with these changes:"
        git status --short | sed -n 1,50p
    else
        echo "clean clone of $(git rev-parse --short HEAD): $(git log -1 --format=%s | cut -c1-100)"
    fi
    if [ -d /mnt/cargo-registry ]; then
        mkdir -p "$CARGO_HOME/registry"
        for d in index cache; do
            [ ! -d "/mnt/cargo-registry/$d" ] || cp -a "/mnt/cargo-registry/$d" "$CARGO_HOME/registry/"
        done
    fi
}
# On a booted machine / is a shared mount (systemd makes it so), in a container it is
# private, and rootless podman warns about that on every command.
mount --make-rshared /
. /etc/os-release
say "fresh $PRETTY_NAME ($(uname -r)), $(nproc) cpus; $(cargo --version)"
export -f prepare
step "clone" bash -euo pipefail -c prepare
cd /root/pogo
step "make example" make example
command -v podman >/dev/null && podman version --format "{{.Client.Version}}" >"$out/podman-version" 2>/dev/null || true
step "tests: $POGO_MATRIX_TESTS" bash -c "$POGO_MATRIX_TESTS"
'

# prefix_lines TAG: prefix each line with TAG and the seconds since the suite started.
prefix_lines() {
    local tag=$1 start=$SECONDS line
    while IFS= read -r line || [ -n "$line" ]; do
        printf '[%s %4d] %s\n' "$tag" $((SECONDS - start)) "$line"
    done
}

# Summary lines, printed at the end.
SUMMARY=()
FAILED=()

run_suite() {
    local suite=$1 image=$FRESH_REPO:$1-$FRESH_HASH work name log start status=0 total
    local -a mounts env_args
    ensure_fresh_image "$suite"
    [ "${#ULIMITS[@]}" -gt 0 ] || choose_ulimits "$image"

    work=$(mktemp -d "${TMPDIR:-/var/tmp}/pogo-matrix-$suite.XXXXXX")
    CLEANUP_DIRS+=("$work")
    mkdir -p "$work/matrix" "$work/storage"
    printf '%s\n' "$INNER_SCRIPT" >"$work/matrix/inner.sh"
    : >"$work/matrix/times"

    if [ "$SOURCE" = worktree ]; then
        # Tracked and untracked files as they are on disk (deleted ones left out), not the
        # ignored ones (target/, example/.pogo/).
        (cd "$REPO_ROOT" &&
            git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do
                if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
            done | sort -zu | tar --null --no-recursion -T - -cf "$work/matrix/worktree.tar")
    fi

    mounts=(
        -v "$REPO_ROOT:/mnt/repo:ro"
        -v "$work/matrix:/mnt/matrix"
        -v "$work/storage:/var/lib/containers"
        -v "$RUSTUP_DIR:/root/.rustup:ro"
        -v "$CARGO_DIR/bin:/root/.cargo/bin:ro"
        -v "$HOST_CA:/mnt/host-ca.crt:ro"
    )
    if [ "${POGO_MATRIX_CARGO_CACHE:-1}" != 0 ] && [ -d "$CARGO_DIR/registry" ]; then
        mounts+=(-v "$CARGO_DIR/registry:/mnt/cargo-registry:ro")
    fi
    env_args=(
        -e CI=true
        -e HOME=/root
        -e USER=root
        -e LANG=C.UTF-8
        -e PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        -e RUSTUP_HOME=/root/.rustup
        -e CARGO_HOME=/root/.cargo
        -e CARGO_TERM_COLOR=never
        # cargo reaches crates.io through this machine's CA (a proxy's, on sandboxed machines)
        -e SSL_CERT_FILE=/mnt/host-ca.crt
        -e CARGO_HTTP_CAINFO=/mnt/host-ca.crt
        -e POGO_MATRIX_COMMIT="$COMMIT"
        -e POGO_MATRIX_SOURCE="$SOURCE"
        -e POGO_MATRIX_TESTS="$TESTS"
    )

    name=pogo-matrix-$suite-$$
    CLEANUP_CONTAINERS+=("$name")
    mkdir -p "$LOG_DIR"
    log=$LOG_DIR/$suite.log
    log "$suite: running make example, then $TESTS, in a fresh $suite container ($SOURCE of ${COMMIT:0:12}); log: $log"
    start=$SECONDS
    # The network is slirp4netns, not the host's podman bridge: a bridge's NAT rules change
    # whenever a container on the host starts or stops (another `make test` here), and the
    # container's DNS lookups then fail in bursts ("wget: unable to resolve host address",
    # debootstrap failing), which a real machine never sees.
    # In the background, so that an interruption runs the clean-up (which removes the
    # container) at once instead of after the suite.
    {
        local rc=0
        podman run --rm --name "$name" --privileged --cgroupns=host --init \
            --hostname "fresh-$suite" --timeout "$TIMEOUT" --network slirp4netns \
            "${ULIMITS[@]}" \
            "${mounts[@]}" "${env_args[@]}" \
            "$image" bash /mnt/matrix/inner.sh </dev/null || rc=$?
        echo "$rc" >"$work/status"
    } 2>&1 | prefix_lines "$suite" | tee "$log" &
    wait $! || true
    status=$(cat "$work/status" 2>/dev/null || echo 1)
    total=$((SECONDS - start))

    local line parts=() times_name secs st result=PASS version
    while IFS=$'\t' read -r times_name secs st; do
        parts+=("$times_name $(fmt_secs "$secs")$([ "$st" = 0 ] || printf ' (exit %s)' "$st")")
        [ "$st" = 0 ] || result=FAIL
    done <"$work/matrix/times"
    [ "$status" = 0 ] || result=FAIL
    version=$(cat "$work/matrix/podman-version" 2>/dev/null || echo "?")
    line="$suite (podman $version): image $([ "$IMAGE_SECS" = 0 ] && echo reused || fmt_secs "$IMAGE_SECS")"
    for p in "${parts[@]}"; do line+=" | $p"; done
    line+=" | container total $(fmt_secs "$total") | $result"
    SUMMARY+=("$line")
    # cargo's own build times, for the record
    while read -r p; do SUMMARY+=("    $p"); done < <(grep -o 'Finished `[a-z]*` profile.*' "$log" || true)
    [ "$result" = PASS ] || FAILED+=("$suite")

    remove_tree "$work"
}

mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR/summary"
matrix_start=$SECONDS
for suite in "${SUITES[@]}"; do
    run_suite "$suite"
done

{
    printf '== matrix (%s of %s, %s) ==\n' "$SOURCE" "${COMMIT:0:12}" "$(fmt_secs $((SECONDS - matrix_start)))"
    printf '%s\n' "${SUMMARY[@]}"
} >"$LOG_DIR/summary"
printf '\n'
cat "$LOG_DIR/summary"
if [ "${#FAILED[@]}" -gt 0 ]; then
    printf 'FAILED: %s (logs in %s)\n' "${FAILED[*]}" "$LOG_DIR"
    exit 1
fi
printf 'all passed (logs in %s)\n' "$LOG_DIR"
