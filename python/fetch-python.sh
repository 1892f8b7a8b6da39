#!/usr/bin/env bash
# Provides a CPython that pyenv lacks (3.14 on this machine image) from Debian unstable's
# binary packages, so the agent is tested on the newest Python too (sys.remote_exec attach).
#
#   python/fetch-python.sh 3.14 [DEST]      prints the interpreter's path on stdout
#
# The packages come from the Debian archive (a package registry, like PyPI): the current
# package names, files and SHA-256 sums are read from unstable's index, each download is
# checked, and the files are unpacked under DEST (default python/target/python3.14). Unstable
# is built against a newer glibc than this machine's, so its libc6 (and libssl) are unpacked
# beside it and the interpreter is pointed at them with patchelf (its ELF interpreter and
# RPATH, which also covers the extension modules it loads): the result runs, and starts child processes, like any other `python3.14`.
# Nothing is installed system-wide except curl, patchelf and xz (from apt) when missing.
set -euo pipefail

V="${1:?usage: fetch-python.sh VERSION [DEST]}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${2:-$HERE/target/python$V}"
PY="$DEST/usr/bin/python$V"
MIRROR="${SIGHTLINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ -x "$PY" ] && "$PY" -c 'import ssl, sqlite3, ctypes' 2>/dev/null; then
    echo "$PY"
    exit 0
fi

need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "fetch-python.sh: installing $2" >&2
        (apt-get update -qq && apt-get install -y -qq "$2") >/dev/null 2>&1
    fi
    command -v "$1" >/dev/null 2>&1 || { echo "fetch-python.sh: $1 is required (apt-get install $2)" >&2; exit 1; }
}
need curl curl
need patchelf patchelf
need xz xz-utils
need dpkg-deb dpkg

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetch-python.sh: reading Debian unstable's package index" >&2
curl -fsS --retry 3 "$MIRROR/dists/sid/main/binary-amd64/Packages.xz" | xz -dc > "$work/Packages"

# Prints "Filename SHA256" of a binary package in the index.
locate() {
    awk -v want="$1" '
        /^Package: / { p = ($2 == want) }
        p && /^Filename: / { f = $2 }
        p && /^SHA256: / { s = $2 }
        /^$/ { if (p && f != "") { print f, s; exit } p = 0 }
    ' "$work/Packages"
}

rm -rf "$DEST.partial"
mkdir -p "$DEST.partial/sys"
for pkg in "python$V-minimal" "libpython$V-minimal" "libpython$V-stdlib" "python$V" libc6 libssl3t64; do
    read -r file sum < <(locate "$pkg") || { echo "fetch-python.sh: no package $pkg in Debian unstable" >&2; exit 1; }
    echo "fetch-python.sh: $file" >&2
    curl -fsS --retry 3 -o "$work/pkg.deb" "$MIRROR/$file"
    echo "$sum  $work/pkg.deb" | sha256sum -c --quiet - >&2
    case "$pkg" in
        libc6|libssl3t64) dpkg-deb -x "$work/pkg.deb" "$DEST.partial/sys" ;;
        *) dpkg-deb -x "$work/pkg.deb" "$DEST.partial" ;;
    esac
done

lib="$DEST/sys/usr/lib/x86_64-linux-gnu"
patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath \
    --set-rpath "$lib:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" \
    "$DEST.partial/usr/bin/python$V"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
"$PY" -c 'import ssl, sqlite3, ctypes, sys; assert sys.version_info[:2] == tuple(map(int, sys.argv[1].split(".")))' "$V" >&2
echo "$PY"
