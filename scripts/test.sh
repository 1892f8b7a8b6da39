#!/usr/bin/env bash
# The whole test suite: Rust (fmt, clippy, unit and integration tests), the Python agent on
# 3.11/3.12/3.13/3.14, the client libraries (the JavaScript one in Node and in headless
# Chromium), and the dashboard in headless Chromium.
# Installs what a fresh machine lacks (Debian chromium, npm packages via `npm ci`, PyPI
# packages inside the suites' own venvs). Usage: bash scripts/test.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

passed=0
failed=0
failures=()

suite() {
    local name=$1
    shift
    echo
    echo "=== $name ==="
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "=== $name: ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "=== $name: FAILED ($((SECONDS - start)) s)"
    fi
}

need_chromium() {
    command -v chromium >/dev/null 2>&1 && return 0
    echo "installing chromium (Debian package) for the dashboard tests"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
}

need_tmux() {
    command -v tmux >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq tmux >/dev/null; else sudo apt-get install -y -qq tmux >/dev/null; fi
}

rust_lint() {
    cargo fmt --all --check && cargo clippy --workspace --all-targets --quiet -- -D warnings
}

rust_tests() {
    cargo build --workspace --quiet && cargo test --workspace --quiet
}

npm_suite() {
    local dir=$1
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error && npm --prefix "$dir" test
}

need_tmux
suite "rust: fmt and clippy" rust_lint
suite "rust: tests" rust_tests
# The suites below drive the hub binary built above (target/debug/sightline).
export SIGHTLINE_BIN="$PWD/target/debug/sightline"
suite "python agent (3.11, 3.12, 3.13, 3.14)" bash python/run-tests.sh
# The JavaScript client's tests and the dashboard's both drive the system's headless Chromium.
need_chromium
if [ -f clients/js/package.json ]; then
    suite "javascript client (node and headless chromium)" npm_suite clients/js
fi
suite "dashboard (headless chromium)" npm_suite ui

echo
if [ "$failed" -gt 0 ]; then
    printf 'failed suite: %s\n' "${failures[@]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
