#!/bin/sh
# Installs pogo from this unpacked tarball into ~/.local (or $PREFIX), the original tool's
# `make setup`: the binary, man pages, completions for bash, zsh and fish, the example
# configurations and the systemd user unit template. Nothing outside $PREFIX is touched.
#
#   ./install.sh             install into ~/.local
#   PREFIX=/opt/pogo ./install.sh
#   ./install.sh --dry-run   print what would be done
#
# Then: pogo register (adds the runner to gitlab-runner's config.toml), pogo install (runs
# gitlab-runner as a systemd user service), pogo doctor (checks this machine).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-${HOME:?HOME is not set}/.local}
dry_run=0
case "${1:-}" in
--dry-run) dry_run=1 ;;
"") ;;
-h | --help)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "install.sh: unknown argument '$1' (use --dry-run or --help)" >&2
    exit 2
    ;;
esac

run() {
    echo "+ $*"
    if [ "$dry_run" = 0 ]; then "$@"; fi
}

[ -x "$here/bin/pogo" ] || {
    echo "install.sh: $here/bin/pogo is missing: run install.sh from the unpacked pogo tarball" >&2
    exit 1
}

# Every file under bin/ and share/ goes to the same place under $PREFIX.
(cd "$here" && find bin share -type f | sort) | while IFS= read -r f; do
    case "$f" in
    bin/*) mode=755 ;;
    *) mode=644 ;;
    esac
    run mkdir -p "$PREFIX/$(dirname "$f")"
    run install -m "$mode" "$here/$f" "$PREFIX/$f"
done

echo
if [ "$dry_run" = 1 ]; then
    echo "dry run: nothing was installed"
    exit 0
fi
echo "pogo $("$PREFIX/bin/pogo" version | sed 's/^pogo //') is installed in $PREFIX/bin/pogo"
case ":$PATH:" in
*":$PREFIX/bin:"*) ;;
*) echo "note: $PREFIX/bin is not in your PATH; add to your shell profile: export PATH=\"$PREFIX/bin:\$PATH\"" ;;
esac
echo "zsh completions: add  fpath+=($PREFIX/share/zsh/site-functions)  before compinit in ~/.zshrc"
echo "example configs: $PREFIX/share/doc/pogo/"
echo
echo "next:"
echo "  1. create a runner in GitLab (Settings > CI/CD > Runners) and copy its glrt- token"
echo "  2. POGO_RUNNER_TOKEN=glrt-... pogo register --url https://gitlab.example.com"
echo "  3. pogo install     # gitlab-runner as a systemd user service"
echo "  4. pogo doctor      # checks podman, rootless set-up, gitlab-runner, config"
