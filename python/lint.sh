#!/usr/bin/env bash
# Lints the Python agent's Rust extension (python/src, its own Cargo workspace, outside the
# root one): `cargo fmt --check`, then `cargo clippy --all-targets -- -D warnings` built against
# CPython 3.11 and 3.12, because the code forks on `Py_3_12` (the 3.11 C profile hook against
# `sys.monitoring`) and each side is only compiled, so only linted, against its own interpreter.
# Every `#[allow]` must carry `reason = "..."` and every `unsafe` block a `// SAFETY:` comment.
# The repository's clippy.toml applies here too. Builds in python/target/lint-3.x.
# Usage: bash python/lint.sh        Exits non-zero on any finding.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

find_python() {
    local v="$1" p
    for p in "$HOME"/.pyenv/versions/"$v".*/bin/python"$v" "$(command -v python"$v" 2>/dev/null)"; do
        if [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    return 1
}

status=0
echo "=== cargo fmt --check (python/) ==="
cargo fmt --check || status=1

for v in 3.11 3.12; do
    py="$(find_python "$v")" || { echo "lint.sh: Python $v not found (pyenv or PATH)" >&2; status=1; continue; }
    echo "=== cargo clippy (python/, against Python $v) ==="
    PYO3_PYTHON="$py" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HERE/target}/lint-$v" \
        cargo clippy --all-targets --quiet -- -D warnings \
            -D clippy::allow_attributes_without_reason -D clippy::undocumented_unsafe_blocks \
        || status=1
done
exit $status
