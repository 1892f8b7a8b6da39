#!/usr/bin/env bash
# The whole test suite: Rust (fmt, clippy, unit and integration tests), the Python agent on
# 3.11/3.12/3.13/3.14, the client libraries (the JavaScript one in Node and in headless
# Chromium), and the dashboard in headless Chromium.
# Installs what a fresh machine lacks (Debian chromium, npm packages via `npm ci`, PyPI
# packages inside the suites' own venvs). Usage: bash scripts/test.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Every hub a test starts without its own --config reads and persists settings under
# $XDG_CONFIG_HOME: point it at an empty directory of this run, so the suite neither obeys the
# developer's own config.toml (tokens there would answer 401 to every test) nor writes into it.
XDG_CONFIG_HOME="$(mktemp -d)"
export XDG_CONFIG_HOME
trap 'rm -rf "$XDG_CONFIG_HOME"' EXIT

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
    # A hub that persisted settings (a token, a rule) must not change the next suite's hubs.
    if [ -e "$XDG_CONFIG_HOME/sightline" ]; then
        echo "note: '$name' left settings in \$XDG_CONFIG_HOME/sightline (a test without its own config); removed"
        rm -rf "$XDG_CONFIG_HOME/sightline"
    fi
    # Disk is the resource a clean CI machine ran out of: say what is left after every suite.
    echo "disk: $(df -h . | awk 'NR==2 {print $4 " free of " $2}')"
}

# SIGHTLINE_CI_LEAN=1 (set by .ci/run): build trees a later suite never reads again are removed
# once their suite has run, so a small CI disk holds the whole run. Never set it on a developer's
# checkout: it throws away incremental builds.
lean() {
    [ "${SIGHTLINE_CI_LEAN:-0}" = 1 ] || return 0
    echo "lean: removing $*"
    rm -rf "$@"
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

# `sightline attach` to CPython 3.11-3.13 drives gdb; its test (crates/sightline-cli/tests/attach.rs)
# fails without it rather than pass unexercised.
need_gdb() {
    command -v gdb >/dev/null 2>&1 && return 0
    echo "installing gdb (Debian package) for the attach test"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb >/dev/null
    fi
}

# The /metrics test scrapes a running hub with a real Prometheus and checks it with promtool.
need_prometheus() {
    command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && return 0
    echo "installing prometheus (Debian package) for the metrics test"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    fi
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
need_prometheus
need_gdb
suite "rust: fmt and clippy" rust_lint
suite "python extension: fmt and clippy" bash python/lint.sh
lean python/target/lint-3.11 python/target/lint-3.12
suite "cargo deny (licenses, duplicate versions, sources)" bash scripts/deny.sh
suite "rust: tests" rust_tests
# A short smoke of every fuzz target on its committed corpus (long runs: see fuzz/README.md).
suite "fuzz: every target 20 s on its corpus" bash scripts/fuzz-smoke.sh
lean fuzz/target
# Every later suite drives only the hub binary; target/debug/sightline is a hard link, so it
# outlives the build tree it came from.
lean target/debug/deps target/debug/build target/debug/.fingerprint target/debug/incremental
# The suites below drive the hub binary built above (target/debug/sightline).
export SIGHTLINE_BIN="$PWD/target/debug/sightline"
suite "api: schemathesis from /openapi.json, no 5xx" bash scripts/schemathesis.sh 25
suite "python agent (3.11, 3.12, 3.13, 3.14)" bash python/run-tests.sh
# The release archive from the debug binary and one agent wheel (CPython 3.12; the full matrix is
# scripts/dist.sh's): run from an empty directory with an empty HOME serving the dashboard, the
# agent installed into a clean venv by `sightline agent install`, a traced program's calls stored.
suite "dist: archive in a clean directory, agent wheel in a clean venv" bash scripts/dist-test.sh
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
