#!/usr/bin/env bash
# Builds sightline's release for this platform in one command:
#
#   bash scripts/dist.sh [--bin PATH] [--python "3.11 3.12 3.13 3.14"] [--out DIR] [--hub-wheel]
#
# It writes DIR/sightline-VERSION-TRIPLE.tar.gz (and its .sha256), which unpacks to one
# directory holding what a machine without Rust or the source needs:
#
#   sightline                      the binary, dashboard embedded (cargo build --release)
#   completions/                   bash (sightline.bash), zsh (_sightline), fish (sightline.fish)
#   man/man1/                      sightline.1 and one page per subcommand
#   python/                        the Python agent's wheels, one per CPython (sightline_agent-*.whl),
#                                  which `sightline agent install` finds here
#   README.md INSTALL.md LICENSE-MIT LICENSE-APACHE THIRD-PARTY-LICENSES.md
#
# Completions and man pages are printed by the binary itself from its one clap definition
# (hidden `sightline completions SHELL` and `sightline man DIR`). Wheels are built with maturin,
# for each CPython in --python (default 3.11 3.12 3.13 3.14; pyenv's, else PATH's, else Debian's
# via python/fetch-python.sh), with maturin's manylinux check and then `auditwheel show`: a wheel
# that is not manylinux-compatible fails the build. maturin and auditwheel are installed from PyPI
# into python/target/dist-tools (the extension builds in python/target, or $SIGHTLINE_PY_TARGET).
# --bin uses an already built binary instead of building one (the CI test uses the debug build).
# --hub-wheel also writes DIR/sightline_hub-VERSION-py3-none-manylinux_….whl, the hub binary as a
# wheel for pipx/uv (packaging/hub-wheel; maturin `bindings = "bin"`, built from the source, so
# not with --bin). Exits non-zero on any failure; the last line names the archive.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=""
PYTHONS="3.11 3.12 3.13 3.14"
OUT="$REPO/target/dist"
HUB_WHEEL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN="$2"; shift 2 ;;
        --python) PYTHONS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --hub-wheel) HUB_WHEEL=1; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "dist.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
say() { echo "dist.sh: $*" >&2; }

# --- the binary ----------------------------------------------------------------------------
if [ -z "$BIN" ]; then
    [ -f "$REPO/ui/dist/index.html" ] || { say "ui/dist is missing: build the dashboard (npm --prefix ui ci && npm --prefix ui run build)"; exit 1; }
    say "building the release binary (cargo build --release --locked -p sightline)"
    (cd "$REPO" && cargo build --release --locked -q -p sightline)
    BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/sightline"
fi
[ -x "$BIN" ] || { say "no binary at $BIN"; exit 1; }
VERSION="$("$BIN" --version | awk '{print $2}')"
TRIPLE="$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')"
TRIPLE="${TRIPLE:-$(uname -m)-unknown-linux-gnu}"
NAME="sightline-$VERSION-$TRIPLE"
STAGE="$OUT/$NAME"
rm -rf "$STAGE" "$OUT/$NAME.tar.gz" "$OUT/$NAME.tar.gz.sha256"
mkdir -p "$STAGE/completions" "$STAGE/man/man1" "$STAGE/python"

cp "$BIN" "$STAGE/sightline"
# The release profile keeps line tables for backtraces in development; the shipped binary does
# without them (about a third of its size).
if command -v strip >/dev/null 2>&1; then strip --strip-debug "$STAGE/sightline"; fi
"$STAGE/sightline" completions bash > "$STAGE/completions/sightline.bash"
"$STAGE/sightline" completions zsh > "$STAGE/completions/_sightline"
"$STAGE/sightline" completions fish > "$STAGE/completions/sightline.fish"
"$STAGE/sightline" man "$STAGE/man/man1"
cp "$REPO/README.md" "$STAGE/README.md"
cp "$REPO/docs/INSTALL.md" "$STAGE/INSTALL.md"
cp "$REPO/LICENSE-MIT" "$REPO/LICENSE-APACHE" "$STAGE/"

# --- the Python agent's wheels -------------------------------------------------------------
find_python() {
    local v="$1" p
    for p in "$HOME"/.pyenv/versions/"$v".*/bin/python"$v" "$(command -v python"$v" 2>/dev/null)"; do
        if [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    "$REPO/python/fetch-python.sh" "$v"
}

# The extension's own workspace builds in python/target (or $SIGHTLINE_PY_TARGET), whatever the
# caller's CARGO_TARGET_DIR points at; the build tools live there too.
PY_TARGET="${SIGHTLINE_PY_TARGET:-$REPO/python/target}"
TOOLS="$PY_TARGET/dist-tools"
tools_python="$(find_python 3.12 2>/dev/null || command -v python3)"
if [ ! -x "$TOOLS/bin/auditwheel" ] || [ ! -x "$TOOLS/bin/maturin" ]; then
    say "installing maturin and auditwheel from PyPI into $TOOLS"
    rm -rf "$TOOLS"
    "$tools_python" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.7,<2" "auditwheel>=6"
fi

if [ "$HUB_WHEEL" = 1 ]; then
    say "building the hub wheel (packaging/hub-wheel, maturin bindings = bin)"
    rm -f "$OUT"/sightline_hub-*.whl
    (cd "$REPO/packaging/hub-wheel" && "$TOOLS/bin/maturin" build --release --locked -q --auditwheel check --out "$OUT")
    hub_wheel="$(ls "$OUT"/sightline_hub-*.whl)"
    "$TOOLS/bin/auditwheel" show "$hub_wheel" 2>&1 | tr '\n' ' ' | grep -q 'consistent with the following platform tag: "manylinux' \
        || { say "$hub_wheel is not manylinux-compatible"; exit 1; }
    say "hub wheel: $hub_wheel"
fi

for v in $PYTHONS; do
    py="$(find_python "$v")" || { say "no Python $v (pyenv, PATH or python/fetch-python.sh)"; exit 1; }
    say "building the agent wheel for CPython $v ($py)"
    (cd "$REPO/python" && CARGO_TARGET_DIR="$PY_TARGET" "$TOOLS/bin/maturin" build --release --locked -q \
        -i "$py" --auditwheel check --out "$STAGE/python")
done
shopt -s nullglob
wheels=("$STAGE"/python/*.whl)
shopt -u nullglob
[ "${#wheels[@]}" -gt 0 ] || { say "no wheels were built"; exit 1; }
for w in "${wheels[@]}"; do
    report="$("$TOOLS/bin/auditwheel" show "$w" 2>&1)" || { echo "$report" >&2; say "auditwheel could not read $w"; exit 1; }
    tag="$(echo "$report" | tr '\n' ' ' | grep -oE 'consistent with the following platform tag: "?[a-z0-9_]+' | grep -oE '[a-z0-9_]+$' || true)"
    case "$tag" in
        manylinux*) say "$(basename "$w"): auditwheel says $tag" ;;
        *) echo "$report" >&2; say "$(basename "$w") is not manylinux-compatible"; exit 1 ;;
    esac
    # What the agent needs at run time is in the wheel, and nothing of the build is.
    "$TOOLS/bin/python" - "$w" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["sightline/__init__.py", "sightline/_bootstrap/sitecustomize.py"]
missing = [n for n in need if n not in names]
native = [n for n in names if n.startswith("sightline/_native")]
stray = [n for n in names if "__pycache__" in n]
if missing or len(native) != 1 or stray:
    sys.exit(f"{sys.argv[1]}: missing {missing}, native modules {native}, stray {stray}")
PY
done

# --- third-party licenses --------------------------------------------------------------------
# Every crate compiled into the binary or a wheel (normal dependencies, for this target), with
# its license expression and the license files it ships.
meta="$(mktemp -d)"
trap 'rm -rf "$meta"' EXIT
(cd "$REPO" && cargo metadata --locked --format-version 1 --filter-platform "$TRIPLE") > "$meta/hub.json"
(cd "$REPO/python" && cargo metadata --locked --format-version 1 --filter-platform "$TRIPLE") > "$meta/agent.json"
"$TOOLS/bin/python" - "$meta/hub.json" "$meta/agent.json" > "$STAGE/THIRD-PARTY-LICENSES.md" <<'PY'
import json, os, sys
out = ["# Third-party licenses", "",
       "The crates compiled into `sightline` and into the Python agent's wheels, with their licenses.",
       "The dashboard embedded in the binary is built with Svelte (MIT).", ""]
seen = set()
for path in sys.argv[1:]:
    meta = json.load(open(path))
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    # The binary's package and the extension's: not the workspace's test and bench tools.
    todo = [m for m in meta["workspace_members"] if pkgs[m]["name"] in ("sightline", "sightline-python")]
    reach = set()
    while todo:
        i = todo.pop()
        if i in reach:
            continue
        reach.add(i)
        for d in nodes[i]["deps"]:
            # Normal dependencies only: build scripts and dev-dependencies ship nothing.
            if any(k["kind"] is None for k in d["dep_kinds"]):
                todo.append(d["pkg"])
    for i in sorted(reach, key=lambda i: (pkgs[i]["name"], pkgs[i]["version"])):
        p = pkgs[i]
        key = (p["name"], p["version"])
        if p["source"] is None or key in seen:
            continue
        seen.add(key)
        out += [f"## {p['name']} {p['version']} ({p['license'] or 'see its files'})", ""]
        d = os.path.dirname(p["manifest_path"])
        for f in sorted(os.listdir(d)):
            full = os.path.join(d, f)
            if f.upper().startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE", "UNLICENSE")) and os.path.isfile(full):
                text = open(full, encoding="utf-8", errors="replace").read().strip()
                out += [f"### {f}", "", "```", text, "```", ""]
print("\n".join(out))
PY

# --- the archive -----------------------------------------------------------------------------
# Reproducible: sorted names, no owner, the last commit's time.
epoch="$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -C "$OUT" -czf "$OUT/$NAME.tar.gz" "$NAME"
(cd "$OUT" && sha256sum "$NAME.tar.gz" > "$NAME.tar.gz.sha256")
say "contents:"
(cd "$STAGE" && find . -type f | sort | sed 's/^\.\//  /') >&2
if command -v objdump >/dev/null 2>&1; then
    say "the binary needs $(objdump -T "$STAGE/sightline" | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -1) or newer"
fi
say "$(du -h "$OUT/$NAME.tar.gz" | cut -f1) archive, binary $(du -h "$STAGE/sightline" | cut -f1), ${#wheels[@]} wheels"
echo "$OUT/$NAME.tar.gz"
