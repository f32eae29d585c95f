#!/usr/bin/env bash
# `make dist` (the original tool's `make zip`): a tarball with everything a user needs:
#
#   pogo-VERSION-ARCH-linux/
#     install.sh                                   installs into ~/.local (or $PREFIX)
#     bin/pogo
#     share/man/man1/pogo.1, pogo-COMMAND.1        `pogo man --dir`
#     share/bash-completion/completions/pogo       `pogo completions bash`
#     share/zsh/site-functions/_pogo               `pogo completions zsh`
#     share/fish/vendor_completions.d/pogo.fish    `pogo completions fish`
#     share/pogo/gitlab-runner.service             systemd user unit (`pogo install` adapts it)
#     share/doc/pogo/{README.md,pogo.yaml.example,config.toml.example,assets/*.png,docs/*.md}
#
# Environment: POGO_BIN (use this binary instead of building one with `cargo build --release`),
# DIST_DIR (default target/dist; the files are also left in DIST_DIR/stage, where
# [package.metadata.deb] in Cargo.toml takes the generated ones from).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST_DIR=${DIST_DIR:-$ROOT/target/dist}
CARGO=${CARGO:-cargo}

if [ -z "${POGO_BIN:-}" ]; then
    (cd "$ROOT" && "$CARGO" build --release --locked)
    POGO_BIN=$ROOT/target/release/pogo
fi
[ -x "$POGO_BIN" ] || { echo "dist.sh: $POGO_BIN is not an executable" >&2; exit 1; }

VERSION=$("$POGO_BIN" version | sed -n 's/^pogo //p')
[ -n "$VERSION" ] || { echo "dist.sh: cannot read the version from $POGO_BIN version" >&2; exit 1; }
NAME=pogo-$VERSION-$(uname -m)-linux
STAGE=$DIST_DIR/stage

rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/share/man/man1" "$STAGE/share/bash-completion/completions" \
    "$STAGE/share/zsh/site-functions" "$STAGE/share/fish/vendor_completions.d" \
    "$STAGE/share/pogo" "$STAGE/share/doc/pogo"

install -m 755 "$POGO_BIN" "$STAGE/bin/pogo"
"$POGO_BIN" completions bash >"$STAGE/share/bash-completion/completions/pogo"
"$POGO_BIN" completions zsh >"$STAGE/share/zsh/site-functions/_pogo"
"$POGO_BIN" completions fish >"$STAGE/share/fish/vendor_completions.d/pogo.fish"
"$POGO_BIN" man --dir "$STAGE/share/man/man1" >/dev/null
install -m 644 "$ROOT/packaging/gitlab-runner.service" "$STAGE/share/pogo/"
install -m 644 "$ROOT/README.md" "$ROOT/packaging/pogo.yaml.example" \
    "$ROOT/packaging/config.toml.example" "$STAGE/share/doc/pogo/"
# the README's screenshots, where its image links expect them
install -d "$STAGE/share/doc/pogo/assets"
install -m 644 "$ROOT"/assets/*.png "$STAGE/share/doc/pogo/assets/"
# the documents the README links to, in docs/ next to it as in the repository
install -d "$STAGE/share/doc/pogo/docs"
install -m 644 "$ROOT"/docs/*.md "$STAGE/share/doc/pogo/docs/"
install -m 755 "$ROOT/packaging/install.sh" "$STAGE/install.sh"
find "$STAGE/share" -type f -exec chmod 644 {} +

tarball=$DIST_DIR/$NAME.tar.gz
tar -C "$DIST_DIR" --transform "s,^stage,$NAME," --owner=0 --group=0 --numeric-owner \
    --sort=name -czf "$tarball" stage
echo "$tarball"
