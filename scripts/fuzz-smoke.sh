#!/usr/bin/env bash
# A short run of every fuzz target (fuzz/fuzz_targets, as `cargo fuzz list` names them: the
# schema's redact, validate_event, filter_parse, timestamp_parse and the source mappings'
# otlp_logs, otlp_traces, otlp_metrics, claude_hook, claude_transcript, opencode, and the store's
# search_query, and the WebSocket protocol's ws_message; each needs
# fuzz/corpus/<target>) on its committed corpus, ~20 s each:
# the corpus replays first, so a change that breaks an input found before fails here, and the
# rest of the time mutates from there. Installs cargo-fuzz (pinned) when it is missing; fails
# loudly when it cannot build or run a target, and when a target crashes.
#
# cargo-fuzz passes nightly flags to rustc (-Zsanitizer=address and friends). The stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1, set here, so no nightly is needed.
#
# Usage: bash scripts/fuzz-smoke.sh            (FUZZ_SECONDS=N to run each target longer)
# Long, plateau runs are described in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}

fail() {
    echo "fuzz-smoke: $*" >&2
    exit 1
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked ||
        fail "could not install cargo-fuzz $CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1

cd fuzz
targets=$(cargo fuzz list) || fail "cargo fuzz list failed"
[ -n "$targets" ] || fail "no fuzz targets in fuzz/fuzz_targets"
cargo fuzz build -O || fail "the fuzz targets do not build"

status=0
for target in $targets; do
    [ -d "corpus/$target" ] || fail "fuzz/corpus/$target is missing: commit a corpus for $target"
    # New inputs go to a scratch directory: the committed corpus changes only by `cargo fuzz cmin`.
    scratch=$(mktemp -d)
    mkdir -p "$scratch/new"
    log="$scratch/log"
    echo "=== fuzz $target (${SECONDS_PER_TARGET} s)"
    if cargo fuzz run -O "$target" "$scratch/new" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
        [ "${runs:-0}" -gt 0 ] || { cat "$log"; fail "$target ran no input"; }
        echo "=== fuzz $target: ok ($runs executions, 0 crashes)"
    else
        tail -n 60 "$log"
        echo "=== fuzz $target: FAILED (crash input under fuzz/artifacts/$target)"
        status=1
    fi
    rm -rf "$scratch"
done
exit "$status"
