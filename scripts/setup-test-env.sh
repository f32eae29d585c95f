#!/usr/bin/env bash
# Prepare this machine for pogo's test suite (`make test` runs this first).
#
# pogo's executor tests run against a real Podman, so this script makes sure that:
#   1. the system packages are installed (podman, runc, busybox-static, ...);
#   2. in CI only, the container engine settings sandboxed CI machines need are in place;
#   3. the offline test images localhost/pogo-test/{busybox,bash,httpd}:latest exist
#      (nothing is ever pulled: the CI machines cannot reach any registry), and the helper
#      image localhost/pogo-test/helper:latest (Debian with git, git-lfs and the stand-in
#      gitlab-runner, built with debootstrap from the Debian mirror, ~1 min, once), and the
#      image-build image localhost/pogo-test/buildah:latest (that Debian base plus Debian's
#      buildah, installed with apt from the same mirror, ~20 s, once);
#   4. when run as root, an unprivileged user (pogo-ci) with working rootless Podman
#      exists for the rootless part of the suite, described in /etc/pogo-test-rootless.env,
#      with the test images and (copied from root's storage) the helper and buildah images.
#
# It is idempotent and quick when there is nothing to do.
#
# Environment:
#   CI=true                            allow changes to machine-wide configuration
#                                      (/etc/containers/containers.conf, /dev/net/tun and
#                                      /dev/fuse modes)
#   POGO_TEST_WRITE_CONTAINERS_CONF=1  the same outside CI
#   POGO_TEST_ROOTLESS_USER            name of the rootless test user (default: pogo-ci)
#   POGO_TEST_BUSYBOX, POGO_TEST_BASH_STATIC
#                                      static binaries copied into the images
#                                      (default: Debian's /bin/busybox and /bin/bash-static)
#   POGO_TEST_DEBIAN_MIRROR            mirror for the helper image's debootstrap
#                                      (default: http://deb.debian.org/debian)
#   POGO_TEST_NO_HELPER=1              do not build the helper image nor the buildah image
#                                      (their tests then skip, except in CI)

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIXTURE_CONF="$REPO_ROOT/tests/fixtures/containers.conf"
SYSTEM_CONF=/etc/containers/containers.conf
ROOTLESS_USER=${POGO_TEST_ROOTLESS_USER:-pogo-ci}
ROOTLESS_ENV_FILE=/etc/pogo-test-rootless.env
# Written (outside CI) when this machine's podman needs the test settings; the Makefile's
# targets source it.
PODMAN_ENV_FILE="$REPO_ROOT/target/pogo-test-podman.env"
BUSYBOX=${POGO_TEST_BUSYBOX:-/bin/busybox}
BASH_STATIC=${POGO_TEST_BASH_STATIC:-/bin/bash-static}

IMG_BUSYBOX=localhost/pogo-test/busybox:latest
IMG_BASH=localhost/pogo-test/bash:latest
IMG_HTTPD=localhost/pogo-test/httpd:latest
IMAGES=("$IMG_BUSYBOX" "$IMG_BASH" "$IMG_HTTPD")
# The helper image for the predefined stages (helper_image): a Debian base with git, built
# once and kept, plus the stand-in gitlab-runner as a thin layer, rebuilt when it changes.
IMG_DEBIAN_GIT=localhost/pogo-test/debian-git:bookworm
IMG_HELPER=localhost/pogo-test/helper:latest
RUNNER_STAND_IN="$REPO_ROOT/tests/fixtures/gitlab-runner"
# The image-build tests' job image: the Debian base plus buildah (chroot isolation, as in
# buildah's own images) and an OCI archive of the busybox test image to build FROM offline.
IMG_BUILDAH=localhost/pogo-test/buildah:latest
BUILDAH_BASE_ARCHIVE=/opt/pogo-test/busybox.oci.tar
DEBIAN_MIRROR=${POGO_TEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Debian packages, and a command or file that proves each is present on other distros.
# netavark/aardvark-dns: the network stack the suite is measured on (without recommends, apt
# may pick CNI instead); iptables (netavark 1.4, Debian 12) and nftables (netavark 1.14, Debian
# 13): netavark runs them for every container with a network and neither comes with it, so a
# fresh machine failed every job with "netavark: No such file or directory"; passt: podman 5's
# default rootless network (pasta); crun: podman's default runtime, and runc for machines where
# crun cannot run containers (below); gcc and libc6-dev: the C linker cargo needs (rustup does
# not bring one: "linker `cc` not found"); git, rpm (rpmspec) and systemd (systemd-analyze): tests
# that check the sources, the RPM spec and the unit.
REQUIRED_PACKAGES=(podman crun runc uidmap slirp4netns passt netavark aardvark-dns iptables nftables
                   fuse-overlayfs catatonit busybox-static bash-static docker-registry
                   apache2-utils tmux debootstrap git rpm systemd gcc libc6-dev)

# Applets the tests may rely on; the images link every applet busybox has, and
# fail the build if one of these is missing.
REQUIRED_APPLETS=(sh sleep cat echo ls wget httpd nc tar gzip mkdir rm kill ps env id true
                  false touch grep sed head tail wc printf test chmod cp mv ln date hostname
                  find sort uniq tee dd stat readlink basename dirname xargs expr seq)

IMAGE_PATH_ENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

LOG_NAME=pogo
# shellcheck source=scripts/lib.sh
. "$REPO_ROOT/scripts/lib.sh"

# Machine-wide changes are only made where they are expected: on a CI machine, or on request.
may_change_machine() {
    case "${CI:-}" in true | TRUE | True | 1) return 0 ;; esac
    [ "${POGO_TEST_WRITE_CONTAINERS_CONF:-}" = 1 ]
}

# ---------------------------------------------------------------------------------------
# 1. System packages
# ---------------------------------------------------------------------------------------

missing_packages() {
    local pkg status
    if have dpkg-query; then
        for pkg in "${REQUIRED_PACKAGES[@]}"; do
            status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
            [ "$status" = "install ok installed" ] || printf '%s\n' "$pkg"
        done
        return
    fi
    # No dpkg: look for what each package provides instead.
    have podman         || echo podman
    have crun           || echo crun
    have runc           || echo runc
    have newuidmap      || echo uidmap
    have slirp4netns    || echo slirp4netns
    have fuse-overlayfs || echo fuse-overlayfs
    have iptables || [ -x /usr/sbin/iptables ] || echo iptables
    have nft || [ -x /usr/sbin/nft ] || echo nftables
    have catatonit || [ -x /usr/libexec/podman/catatonit ] || echo catatonit
    [ -x "$BUSYBOX" ]     || echo busybox-static
    [ -x "$BASH_STATIC" ] || echo bash-static
    have docker-registry || have registry || echo docker-registry
    have htpasswd       || echo apache2-utils
    have debootstrap    || echo debootstrap
    have git            || echo git
    have rpmspec        || echo rpm
    have systemd-analyze || echo systemd
    have cc             || echo gcc
}

ensure_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    [ "${#missing[@]}" -eq 0 ] && return 0

    if ! have apt-get; then
        die "missing test dependencies (Debian package names): ${missing[*]}." \
            "This is not a Debian/Ubuntu system: install the equivalent packages and" \
            "set POGO_TEST_BUSYBOX / POGO_TEST_BASH_STATIC to static busybox and bash binaries."
    fi
    apt_install "${missing[@]}"
}

# ---------------------------------------------------------------------------------------
# 2. Container engine settings (CI only)
# ---------------------------------------------------------------------------------------

# True when FILE sets the runtime and the rlimits the way the fixture does.
conf_has_settings() {
    [ -r "$1" ] &&
        grep -Eq '^[[:space:]]*runtime[[:space:]]*=[[:space:]]*"runc"' "$1" &&
        grep -Fq '"nofile=1024:1024", "nproc=1000:1000"' "$1"
}

# Can podman start a container with the machine's settings as they are (podman 5's crun and
# rlimits on Debian 13, in a privileged container too)? Sandboxed machines cannot: crun there
# fails with "cgroups in hybrid mode not supported", podman's rlimits with "Operation not
# permitted".
machine_settings_work() {
    podman run --rm --network none "$IMG_BUSYBOX" true >/dev/null 2>&1
}

# The busybox test image in this user's storage, for the checks above (built once).
ensure_busybox_image() {
    podman image exists "$IMG_BUSYBOX" && return 0
    log "building $IMG_BUSYBOX (self storage)"
    import_image self "$IMG_BUSYBOX" busybox
}

# Does podman here need the fixture's settings (the machine-wide file has them, or
# CONTAINERS_CONF points at the fixture)? The rootless user then gets them too.
uses_fixture_settings() {
    conf_has_settings "$SYSTEM_CONF" || [ "${CONTAINERS_CONF:-}" = "$FIXTURE_CONF" ]
}

ensure_engine_settings() {
    [ -r "$FIXTURE_CONF" ] || die "missing $FIXTURE_CONF (is this a complete checkout?)"
    if ! may_change_machine; then
        return 0 # never touch a developer's machine config; see the hint after the images
    fi

    if ! conf_has_settings "$SYSTEM_CONF" && ensure_busybox_image && machine_settings_work; then
        log "podman runs containers with this machine's own settings (runtime" \
            "$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo '?')):" \
            "$SYSTEM_CONF is left as it is"
    elif ! conf_has_settings "$SYSTEM_CONF"; then
        if [ -e "$SYSTEM_CONF" ]; then
            # Merging TOML in shell is fragile; keep the old file next to the new one.
            warn "replacing $SYSTEM_CONF (old version kept as $SYSTEM_CONF.pogo-backup)"
            as_root cp -p "$SYSTEM_CONF" "$SYSTEM_CONF.pogo-backup" ||
                die "cannot write $SYSTEM_CONF (need root or sudo)"
        fi
        log "writing $SYSTEM_CONF (runtime runc, low default rlimits) for this CI machine"
        as_root install -D -m 0644 "$FIXTURE_CONF" "$SYSTEM_CONF" ||
            die "cannot write $SYSTEM_CONF (need root or sudo);" \
                "or export CONTAINERS_CONF=$FIXTURE_CONF"
    fi

    # Rootless networking (slirp4netns) opens /dev/net/tun; some sandboxes make it 0600.
    if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
        log "making /dev/net/tun usable by unprivileged users (chmod 666) for rootless networking"
        as_root chmod 666 /dev/net/tun || warn "could not chmod /dev/net/tun"
    fi
    # Rootless storage on an overlay file system (podman 5 when the user's home is on one, as
    # in a container) goes through fuse-overlayfs, which opens /dev/fuse: 0600 on the same
    # sandboxes ("fuse: failed to open /dev/fuse: Permission denied"); normal hosts have 0666.
    if [ -c /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
        log "making /dev/fuse usable by unprivileged users (chmod 666) for rootless storage"
        as_root chmod 666 /dev/fuse || warn "could not chmod /dev/fuse"
    fi
}

# ---------------------------------------------------------------------------------------
# 3. Test images, built offline from static binaries
# ---------------------------------------------------------------------------------------

# Podman as the current user ("self"), or as the rootless test user ("rootless").
# The rootless user gets a clean environment so that nothing from the caller's
# (root's) environment leaks into its Podman.
ROOTLESS_UID="" ROOTLESS_GID="" ROOTLESS_HOME="" ROOTLESS_XDG="" ROOTLESS_CONF=""
as_rootless() {
    (cd / && runuser -u "$ROOTLESS_USER" -- env -i \
        HOME="$ROOTLESS_HOME" USER="$ROOTLESS_USER" LOGNAME="$ROOTLESS_USER" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        XDG_RUNTIME_DIR="$ROOTLESS_XDG" CONTAINERS_CONF="$ROOTLESS_CONF" \
        "$@")
}
pod() {
    local who=$1
    shift
    if [ "$who" = self ]; then
        podman "$@"
    else
        as_rootless podman "$@"
    fi
}

# The root filesystems are built once per run, in a temporary directory, and only if an
# image is actually missing.
ROOTFS_DIR=""
cleanup() { [ -z "$ROOTFS_DIR" ] || rm -rf "$ROOTFS_DIR"; }
trap cleanup EXIT

# build_rootfs DIR KIND: KIND is busybox, bash or httpd.
build_rootfs() {
    local dir=$1 kind=$2 applet
    mkdir -p "$dir"/{bin,etc,root,tmp,proc,sys,dev,usr/bin,var/tmp}
    chmod 1777 "$dir/tmp" "$dir/var/tmp"
    chmod 0700 "$dir/root"

    install -m 0755 "$BUSYBOX" "$dir/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        case "$applet" in
        busybox) continue ;;
        bash) continue ;; # the busybox image must really have no bash
        esac
        ln -s busybox "$dir/bin/$applet"
    done
    for applet in "${REQUIRED_APPLETS[@]}"; do
        [ -e "$dir/bin/$applet" ] || die "$BUSYBOX has no '$applet' applet"
    done
    ln -s ../../bin/busybox "$dir/usr/bin/env" # for `#!/usr/bin/env sh` scripts

    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$dir/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$dir/etc/group"

    case "$kind" in
    bash)
        # gitlab-runner's generated job scripts need bash; a static one needs no libc.
        install -m 0755 "$BASH_STATIC" "$dir/bin/bash"
        ;;
    httpd)
        mkdir -p "$dir/www"
        printf 'pogo-service-ok' >"$dir/www/index.html"
        ;;
    esac
}

# The temporary directory is made in this shell (never in a $(...) subshell), so that the
# EXIT trap sees it and removes it.
ensure_rootfs_dir() {
    [ -n "$ROOTFS_DIR" ] || ROOTFS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pogo-test-rootfs.XXXXXX")
}

# rootfs_for KIND: the root filesystem of KIND, built on first use.
rootfs_for() {
    local kind=$1
    ensure_rootfs_dir
    if [ ! -d "$ROOTFS_DIR/$kind" ]; then
        build_rootfs "$ROOTFS_DIR/$kind" "$kind"
    fi
}

# import_image WHO IMAGE KIND: tar the rootfs (as the caller, who can read it) and import it
# through stdin, so the rootless user never needs access to the temporary directory.
import_image() {
    local who=$1 image=$2 kind=$3 dir
    local -a changes=(--change "$IMAGE_PATH_ENV")
    case "$kind" in
    busybox) changes+=(--change 'CMD ["/bin/sh"]') ;;
    bash) changes+=(--change 'CMD ["/bin/bash"]') ;;
    httpd) changes+=(--change 'EXPOSE 80/tcp'
        --change 'CMD ["/bin/httpd","-f","-p","80","-h","/www"]') ;;
    esac
    rootfs_for "$kind"
    dir=$ROOTFS_DIR/$kind
    local out
    if ! out=$(tar --numeric-owner --owner=0 --group=0 -C "$dir" -c . |
        pod "$who" import --quiet "${changes[@]}" - "$image" 2>&1); then
        printf '%s\n' "$out" >&2
        warn "importing $image failed ($who)"
        return 1
    fi
}

kind_of() {
    case "$1" in
    "$IMG_BUSYBOX") echo busybox ;;
    "$IMG_BASH") echo bash ;;
    "$IMG_HTTPD") echo httpd ;;
    esac
}

# A quick run of each freshly built image proves it starts and has what it should.
# (--network none: this checks the image; networking is checked separately.)
verify_image() {
    local who=$1 image=$2
    case "$image" in
    "$IMG_BASH") pod "$who" run --rm --network none "$image" bash -c 'echo ok' ;;
    "$IMG_HTTPD") pod "$who" run --rm --network none "$image" cat /www/index.html && echo ;;
    *) pod "$who" run --rm --network none "$image" sh -c 'echo ok' ;;
    esac
}

# ensure_images WHO: build whatever is missing in WHO's image storage; fails (after
# printing podman's output) when a freshly built image does not run.
ensure_images() {
    local who=$1 image out
    for image in "${IMAGES[@]}"; do
        pod "$who" image exists "$image" && continue
        log "building $image ($who storage)"
        import_image "$who" "$image" "$(kind_of "$image")" || return 1
        if ! out=$(verify_image "$who" "$image" 2>&1); then
            printf '%s\n' "$out" >&2
            warn "$image was built but does not run ($who)"
            return 1
        fi
        log "  $image works: $(printf '%s' "$out" | tail -n 1)"
    done
}

# ensure_debian_base: the Debian base with git (debootstrap, ~1 min), only when missing.
ensure_debian_base() {
    local rootfs out
    podman image exists "$IMG_DEBIAN_GIT" && return 0
    ensure_rootfs_dir
    rootfs=$ROOTFS_DIR/debian-git
    log "building $IMG_DEBIAN_GIT with debootstrap from $DEBIAN_MIRROR (about a minute, once)"
    if ! out=$(as_root debootstrap --variant=minbase --include=git,git-lfs,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" 2>&1); then
        printf '%s\n' "$out" | tail -n 20 >&2
        as_root rm -rf "$rootfs"
        warn "debootstrap failed: the helper image is missing (set POGO_TEST_DEBIAN_MIRROR?)"
        return 1
    fi
    as_root rm -rf "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/*
    # (called from an `if`, so `set -e` does not stop here: check the import by hand)
    if ! out=$(as_root tar --numeric-owner -C "$rootfs" -c . |
        podman import --quiet --change "$IMAGE_PATH_ENV" --change 'CMD ["/bin/bash"]' \
            - "$IMG_DEBIAN_GIT" 2>&1); then
        printf '%s\n' "$out" | tail -n 20 >&2
        as_root rm -rf "$rootfs"
        warn "importing $IMG_DEBIAN_GIT failed: the helper image is missing"
        return 1
    fi
    as_root rm -rf "$rootfs"
}

# ensure_helper_image: the helper layer (the stand-in gitlab-runner at
# /usr/local/bin/gitlab-runner) on the Debian base, when missing or when the stand-in changed
# (its checksum is a label of the image).
ensure_helper_image() {
    local sum current ctx out
    [ "${POGO_TEST_NO_HELPER:-}" = 1 ] && return 0
    sum=$(sha256sum "$RUNNER_STAND_IN" | cut -d' ' -f1)
    current=$(podman image inspect --format '{{index .Labels "io.pogo.test.stand-in"}}' \
        "$IMG_HELPER" 2>/dev/null || true)
    [ "$current" = "$sum" ] && return 0
    ensure_debian_base || return 1

    log "building $IMG_HELPER (stand-in gitlab-runner $sum)"
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/pogo-test-helper.XXXXXX")
    install -m 0755 "$RUNNER_STAND_IN" "$ctx/gitlab-runner"
    printf '%s\n' "FROM $IMG_DEBIAN_GIT" \
        'COPY gitlab-runner /usr/local/bin/gitlab-runner' \
        "LABEL io.pogo.test.stand-in=$sum" >"$ctx/Containerfile"
    if ! out=$(podman build --pull=never -q -t "$IMG_HELPER" -f "$ctx/Containerfile" "$ctx" 2>&1); then
        rm -rf "$ctx"
        printf '%s\n' "$out" >&2
        warn "building $IMG_HELPER failed"
        return 1
    fi
    rm -rf "$ctx"
    image_works self "$IMG_HELPER" built \
        'git --version && git lfs version && gitlab-runner --version | head -n 1'
}

# ensure_buildah_image: Debian's buildah (with fuse-overlayfs and uidmap, as buildah's own
# images have) on the Debian base, installed with apt from the mirror the base came from (the
# container needs the network, like debootstrap; jobs and tests then run offline), with
# BUILDAH_ISOLATION=chroot and the busybox test image as an OCI archive, so a Containerfile
# can build FROM it without a registry. About 10-25 s, once. `podman run` + `podman commit`,
# not a `podman build` RUN: podman 5's build raises RLIMIT_NOFILE for RUN where `podman run`
# does not ("setrlimit `RLIMIT_NOFILE`: Operation not permitted" in a fresh Debian 13
# container with a lower hard limit).
ensure_buildah_image() {
    local ctx out name=pogo-test-buildah-setup
    [ "${POGO_TEST_NO_HELPER:-}" = 1 ] && return 0
    podman image exists "$IMG_BUILDAH" && return 0
    ensure_debian_base || return 1
    log "building $IMG_BUILDAH (apt-get install buildah from the base's mirror, about 20 s, once)"
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/pogo-test-buildah.XXXXXX")
    chmod 0755 "$ctx"
    podman rm -f -i "$name" >/dev/null 2>&1 || true
    if ! out=$(podman save --format oci-archive -o "$ctx/busybox.oci.tar" "$IMG_BUSYBOX" 2>&1 &&
        chmod 0644 "$ctx/busybox.oci.tar" &&
        podman run --name "$name" -v "$ctx:/ctx:ro,z" "$IMG_DEBIAN_GIT" sh -c \
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends buildah fuse-overlayfs uidmap >/dev/null && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb && install -D -m 0644 /ctx/busybox.oci.tar $BUILDAH_BASE_ARCHIVE" 2>&1 &&
        podman commit -q --change 'ENV BUILDAH_ISOLATION=chroot' "$name" "$IMG_BUILDAH" 2>&1); then
        podman rm -f -i "$name" >/dev/null 2>&1 || true
        rm -rf "$ctx"
        printf '%s\n' "$out" | tail -n 20 >&2
        warn "building $IMG_BUILDAH failed (apt-get in the container needs the Debian mirror)"
        return 1
    fi
    podman rm -f -i "$name" >/dev/null 2>&1 || true
    rm -rf "$ctx"
    image_works self "$IMG_BUILDAH" built "buildah --version && test -s $BUILDAH_BASE_ARCHIVE"
}

# image_works WHO IMAGE HOW CHECKS: run CHECKS in IMAGE as WHO and show what they printed,
# or why the image (just HOW: built, copied) does not run.
image_works() {
    local who=$1 image=$2 how=$3 checks=$4 out
    if ! out=$(pod "$who" run --rm --network none "$image" sh -c "$checks" 2>&1); then
        printf '%s\n' "$out" >&2
        warn "$image was $how but does not run ($who)"
        return 1
    fi
    log "  $image works ($who): $(printf '%s' "$out" | tr '\n' ';')"
}

# ensure_rootless_copy IMAGE CHECKS: give the rootless user root's IMAGE (built above, once)
# through `podman save | podman load` on stdin, so the user needs no access to root's storage
# and nothing is built twice. Quick when the user already has the same image (same image ID
# as root's); a stale copy (the helper's stand-in changed) is replaced.
ensure_rootless_copy() {
    local image=$1 checks=$2 want current out
    [ "${POGO_TEST_NO_HELPER:-}" = 1 ] && return 0
    # Without root's image there is nothing to copy (building it said why).
    want=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null) || return 0
    current=$(pod rootless image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    [ "$current" = "$want" ] && return 0

    log "copying $image to $ROOTLESS_USER's storage (podman save | podman load)"
    if ! out=$({ podman save -q "$image" | pod rootless load -q; } 2>&1); then
        printf '%s\n' "$out" >&2
        warn "copying $image to $ROOTLESS_USER failed"
        return 1
    fi
    current=$(pod rootless image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    if [ "$current" != "$want" ]; then
        warn "$image in $ROOTLESS_USER's storage is ${current:-missing}, not root's $want"
        return 1
    fi
    image_works rootless "$image" copied "$checks"
}

# Outside CI the machine's own podman settings are used, as they are. When they cannot run a
# container here but the test settings can (sandboxed machines: crun's "cgroups in hybrid
# mode", setrlimit refused), pogo's make targets use the test settings through
# CONTAINERS_CONF (written to $PODMAN_ENV_FILE for them); the machine's configuration is not
# changed. A CONTAINERS_CONF the caller set is left alone.
choose_podman_settings() {
    rm -f "$PODMAN_ENV_FILE"
    may_change_machine && return 0
    [ -z "${CONTAINERS_CONF:-}" ] || return 0
    ensure_busybox_image || return 0
    machine_settings_work && return 0
    if CONTAINERS_CONF=$FIXTURE_CONF podman run --rm --network none "$IMG_BUSYBOX" true \
        >/dev/null 2>&1; then
        export CONTAINERS_CONF=$FIXTURE_CONF
        mkdir -p "$(dirname "$PODMAN_ENV_FILE")"
        printf "CONTAINERS_CONF='%s'\n" "$FIXTURE_CONF" >"$PODMAN_ENV_FILE"
        log "podman cannot run containers here with this machine's settings (a sandbox?);" \
            "pogo's make targets use $FIXTURE_CONF (runtime runc, low rlimits) through" \
            "CONTAINERS_CONF instead; the machine's configuration is not changed"
    fi
}

engine_hint() {
    may_change_machine && return 0
    warn "podman cannot run containers here with its current settings. On sandboxed machines" \
        "(crun: 'cgroups in hybrid mode', or 'setrlimit ... Operation not permitted') use:" \
        "export CONTAINERS_CONF=$FIXTURE_CONF"
}

# ---------------------------------------------------------------------------------------
# 4. Rootless test user (only when run as root)
# ---------------------------------------------------------------------------------------

ROOTLESS_STATUS="not set up"

# first_free_subid FILE: the first id after every range in /etc/subuid or /etc/subgid
# (at least 100000, Debian's SUB_UID_MIN), so a new range overlaps none of them.
first_free_subid() {
    awk -F: 'BEGIN { next_free = 100000 }
             NF >= 3 && $2 + $3 > next_free { next_free = $2 + $3 }
             END { print next_free }' "$1"
}

ensure_subids() {
    local file flag start changed=1
    for file in /etc/subuid /etc/subgid; do
        [ -e "$file" ] || touch "$file"
        if grep -Eq "^($ROOTLESS_USER|$ROOTLESS_UID):" "$file"; then
            continue
        fi
        start=$(first_free_subid "$file")
        if [ "$file" = /etc/subuid ]; then flag=--add-subuids; else flag=--add-subgids; fi
        log "adding $ROOTLESS_USER:$start:65536 to $file"
        usermod "$flag" "$start-$((start + 65535))" "$ROOTLESS_USER"
        changed=0
    done
    return $changed # 0 when a range was added
}

ensure_rootless_user() {
    local needs_migrate=1 entry conf_copy env_content out

    if ! is_root; then
        ROOTLESS_STATUS="skipped (not running as root)"
        return 0
    fi

    if ! id -u "$ROOTLESS_USER" >/dev/null 2>&1; then
        log "creating rootless test user $ROOTLESS_USER"
        useradd -m -s /bin/bash "$ROOTLESS_USER"
        needs_migrate=0
    fi
    ROOTLESS_UID=$(id -u "$ROOTLESS_USER")
    ROOTLESS_GID=$(id -g "$ROOTLESS_USER")
    entry=$(getent passwd "$ROOTLESS_USER")
    ROOTLESS_HOME=$(printf '%s' "$entry" | cut -d: -f6)
    ROOTLESS_XDG=/run/user/$ROOTLESS_UID

    # Rootless podman maps the container's uids onto the user's subordinate ranges.
    if ensure_subids; then needs_migrate=0; fi

    # Rootless podman keeps its runtime state in XDG_RUNTIME_DIR; without a login session
    # nobody creates it (and /run is a tmpfs, so it is recreated after each reboot).
    install -d -m 0700 -o "$ROOTLESS_UID" -g "$ROOTLESS_GID" "$ROOTLESS_XDG"

    # The user's podman needs the same engine settings: give the user its own copy. Not the
    # checkout's file: the checkout may sit where the user cannot read (e.g. under /root),
    # and the machine-wide description below outlives it (another checkout, or a checkout
    # seen at another path, would then point the user's podman at a file that is not there).
    # Where the machine's own settings work, the user keeps them (a copy an earlier run made
    # goes).
    conf_copy=$ROOTLESS_HOME/.config/containers/containers.conf
    if uses_fixture_settings; then
        if ! cmp -s "$FIXTURE_CONF" "$conf_copy"; then
            as_rootless mkdir -p "$ROOTLESS_HOME/.config/containers"
            install -m 0644 -o "$ROOTLESS_UID" -g "$ROOTLESS_GID" "$FIXTURE_CONF" "$conf_copy"
        fi
        ROOTLESS_CONF=$conf_copy
    else
        if cmp -s "$FIXTURE_CONF" "$conf_copy"; then rm -f "$conf_copy"; fi
        ROOTLESS_CONF=
    fi

    # After subordinate ids change (or for a new user), podman must re-create its
    # user namespace.
    if [ "$needs_migrate" -eq 0 ]; then
        as_rootless podman system migrate >/dev/null 2>&1 || true
    fi

    if ! ensure_images rootless; then
        if [ -c /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
            warn "/dev/fuse is not usable by $ROOTLESS_USER (fuse-overlayfs may need it):" \
                "chmod 666 /dev/fuse, or run with CI=true"
        fi
        rootless_not_ready "its test images do not run"
        return 0
    fi
    # The helper and buildah images are optional like root's: their rootless tests skip
    # without them (in CI they fail, so a failure to copy one is an error there).
    local image checks
    for image in "$IMG_HELPER" "$IMG_BUILDAH"; do
        checks='git --version && gitlab-runner --version | head -n 1'
        [ "$image" = "$IMG_HELPER" ] || checks='buildah --version'
        if ! ensure_rootless_copy "$image" "$checks"; then
            may_change_machine && die "the image $image could not be given to $ROOTLESS_USER"
            warn "the rootless tests that use $image will be skipped"
        fi
    done

    # Write the description the Rust tests read, only when it changes.
    env_content=$(printf '%s\n' \
        "POGO_TEST_ROOTLESS_USER=$ROOTLESS_USER" \
        "POGO_TEST_ROOTLESS_UID=$ROOTLESS_UID" \
        "POGO_TEST_ROOTLESS_GID=$ROOTLESS_GID" \
        "POGO_TEST_ROOTLESS_HOME=$ROOTLESS_HOME" \
        "POGO_TEST_ROOTLESS_XDG_RUNTIME_DIR=$ROOTLESS_XDG" \
        "POGO_TEST_ROOTLESS_CONTAINERS_CONF=$ROOTLESS_CONF")

    if out=$(as_rootless podman run --rm "$IMG_BASH" bash -c 'echo rootless-ok' 2>&1) &&
        [ "$(printf '%s' "$out" | tail -n 1)" = rootless-ok ]; then
        if [ "$(cat "$ROOTLESS_ENV_FILE" 2>/dev/null || true)" != "$env_content" ]; then
            # Write and rename, so a test reading it concurrently never sees half a file.
            printf '%s\n' "$env_content" >"$ROOTLESS_ENV_FILE.tmp.$$"
            chmod 0644 "$ROOTLESS_ENV_FILE.tmp.$$"
            mv -f "$ROOTLESS_ENV_FILE.tmp.$$" "$ROOTLESS_ENV_FILE"
            log "wrote $ROOTLESS_ENV_FILE"
        fi
        log "rootless podman as $ROOTLESS_USER: $(printf '%s' "$out" | tail -n 1)"
        ROOTLESS_STATUS="ready ($ROOTLESS_USER, uid $ROOTLESS_UID)"
        return 0
    fi

    printf '%s\n' "$out" >&2
    if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
        warn "/dev/net/tun is not usable by $ROOTLESS_USER (slirp4netns needs it):" \
            "chmod 666 /dev/net/tun, or run with CI=true"
    fi
    rootless_not_ready "'podman run' failed"
}

# In CI a broken rootless setup is an error; elsewhere the rootless tests are skipped.
rootless_not_ready() {
    # Without a working user, the rootless tests must not think they can run.
    rm -f "$ROOTLESS_ENV_FILE"
    ROOTLESS_STATUS="NOT ready as $ROOTLESS_USER: $1 (see above)"
    if may_change_machine; then
        die "rootless podman does not work as $ROOTLESS_USER: $1"
    fi
}

# ---------------------------------------------------------------------------------------

main() {
    local version present=() image

    ensure_packages
    ensure_engine_settings
    choose_podman_settings
    if ! ensure_images self; then
        engine_hint
        die "podman cannot run the test images"
    fi

    # Outside CI the machine's own podman settings are used; say how to fix them if they
    # do not work here. (In CI the images were verified when built, and the rootless
    # check below runs a container anyway.)
    if ! may_change_machine && ! podman run --rm "$IMG_BUSYBOX" true >/dev/null 2>&1; then
        engine_hint
    fi

    if ! ensure_helper_image && may_change_machine; then
        die "the helper image $IMG_HELPER could not be built"
    fi
    if ! ensure_buildah_image && may_change_machine; then
        die "the image-build test image $IMG_BUILDAH could not be built"
    fi

    ensure_rootless_user

    version=$(podman version --format '{{.Client.Version}}' 2>/dev/null || echo unknown)
    for image in "${IMAGES[@]}" "$IMG_HELPER" "$IMG_BUILDAH"; do
        if podman image exists "$image"; then present+=("${image#localhost/pogo-test/}"); fi
    done
    log "test environment: podman $version; images: ${present[*]:-none};" \
        "rootless user: $ROOTLESS_STATUS"
}

main "$@"
