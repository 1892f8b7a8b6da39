#!/usr/bin/env bash
# Builds the sightline Python agent for CPython 3.11, 3.12, 3.13 and 3.14 (one native build per
# interpreter, in a venv under python/target/venvs) and runs its pytest suite on each, against
# the real hub binary (target/debug/sightline at the repository root, or $SIGHTLINE_BIN).
# Needs the pyenv interpreters and access to PyPI / crates.io; a version pyenv lacks (3.14) is
# fetched from Debian's archive by fetch-python.sh. Exits non-zero on any failure; the last
# line is pytest's summary of all runs.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENVS="${SIGHTLINE_PY_VENVS:-$HERE/target/venvs}"
VERSIONS="${SIGHTLINE_PY_VERSIONS:-3.11 3.12 3.13 3.14}"
export SIGHTLINE_BIN="${SIGHTLINE_BIN:-$REPO/target/debug/sightline}"
mkdir -p "$VENVS"

find_python() {
    local v="$1" p
    for p in "$HOME"/.pyenv/versions/"$v".*/bin/python"$v" "$(command -v python"$v" 2>/dev/null)"; do
        if [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    # Not on the machine (3.14 here): Debian's build, unpacked under python/target.
    "$HERE/fetch-python.sh" "$v"
}

# A venv with pip. Debian's interpreters ship without ensurepip, so such a venv gets pip from
# its PyPI wheel, fetched by an interpreter that has pip.
make_venv() {
    local py="$1" venv="$2" wheels
    "$py" -m venv "$venv" >/dev/null 2>&1 && return 0
    rm -rf "$venv"
    "$py" -m venv --without-pip "$venv" || return 1
    wheels="$(mktemp -d)"
    "$(find_python 3.12)" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: pip -d "$wheels" \
        && "$venv/bin/python" "$(echo "$wheels"/pip-*.whl)/pip" install -q --disable-pip-version-check "$wheels"/pip-*.whl
    local rc=$?
    rm -rf "$wheels"
    return $rc
}

if [ ! -x "$SIGHTLINE_BIN" ]; then
    echo "run-tests.sh: no hub binary at $SIGHTLINE_BIN; building it (cargo build -p sightline)" >&2
    (cd "$REPO" && cargo build -q -p sightline) || { echo "run-tests.sh: cargo build failed" >&2; exit 1; }
fi

# `sightline attach` on 3.11-3.13 needs gdb (the machine image has it; install it if not).
if ! command -v gdb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "run-tests.sh: installing gdb (needed by the attach test)" >&2
    (apt-get update -qq && apt-get install -y -qq gdb) >/dev/null 2>&1 || echo "run-tests.sh: could not install gdb" >&2
fi

status=0
summary=()

# The hub's secret corpus as JSON, for tests/test_secrets.py (one corpus, written from the Rust
# source at test time; the file holds secret-shaped values, so it lives under python/target,
# which git ignores). The corpus test runs on the first interpreter only.
export SIGHTLINE_SECRET_CORPUS="$HERE/target/secret-corpus.json"
export SIGHTLINE_SECRETS_PY="${VERSIONS%% *}"
echo "=== writing the secret corpus (cargo run -p sightline-schema --example secret_corpus) ==="
if ! (cd "$REPO" && cargo run -q -p sightline-schema --example secret_corpus -- "$SIGHTLINE_SECRET_CORPUS"); then
    # No skip: test_secrets.py fails when the file is missing, and this says why.
    echo "run-tests.sh: could not write the secret corpus" >&2
    rm -f "$SIGHTLINE_SECRET_CORPUS"; status=1; summary+=("secret corpus: not written")
fi

# The Rust unit tests of the extension (clock, JSON, HTTP and TLS clients, summaries), linked
# against libpython 3.12: a plain cargo build links it (only maturin sets
# PYO3_BUILD_EXTENSION_MODULE, which leaves it out of the wheel's extension).
py312="$(find_python 3.12)" && {
    echo "=== cargo test (python/) ==="
    libdir="$("$py312" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
    if (cd "$HERE" && PYO3_PYTHON="$py312" LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            cargo test --release -q 2>&1 | tail -5); then
        summary+=("rust unit tests: ok")
    else
        status=1; summary+=("rust unit tests: failed")
    fi
}

for v in $VERSIONS; do
    py="$(find_python "$v")" || { echo "run-tests.sh: Python $v not found (pyenv)" >&2; status=1; summary+=("$v: interpreter missing"); continue; }
    venv="$VENVS/$v"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        make_venv "$py" "$venv" || { status=1; summary+=("$v: venv failed"); continue; }
    fi
    # Test and benchmark dependencies (quiet; pip skips what is already there). maturin 1.9.4+
    # sets PYO3_BUILD_EXTENSION_MODULE, which replaced pyo3's `extension-module` feature.
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9.4,<2" pytest pyyaml pyperformance \
        || { status=1; summary+=("$v: pip install failed"); continue; }
    echo "=== building the agent for Python $v ==="
    (cd "$HERE" && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop --release -q) \
        || { status=1; summary+=("$v: build failed"); continue; }
    echo "=== pytest on Python $v ==="
    log="$HERE/target/pytest-$v.log"
    (cd "$HERE/tests" && "$venv/bin/python" -m pytest -q -p no:cacheprovider) 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    line="$(grep -E '^(=+ )?[0-9]+ (passed|failed)|no tests ran' "$log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')"
    summary+=("$v: ${line:-no summary (exit $rc)}")
    [ "$rc" -eq 0 ] || status=1
done

echo "=== python agent: per-interpreter results ==="
for s in "${summary[@]}"; do echo "  $s"; done
# One closing line in pytest's own format, totalled over the interpreters.
passed=0; failed=0; skipped=0
for s in "${summary[@]}"; do
    p=$(echo "$s" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+'); passed=$((passed + ${p:-0}))
    f=$(echo "$s" | grep -oE '[0-9]+ (failed|error|errors)' | awk '{t += $1} END {print t + 0}'); failed=$((failed + ${f:-0}))
    k=$(echo "$s" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+'); skipped=$((skipped + ${k:-0}))
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
exit $status
