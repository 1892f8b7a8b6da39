#!/usr/bin/env bash
# Property-based API test: schemathesis generates requests from the hub's own /openapi.json and
# checks that no answer is a 5xx (what a user types must never be a server error). Runs against
# the hub binary ($SIGHTLINE_BIN, default target/debug/sightline) on a temporary database, and
# ends only the hub it started, by its pid. Installs a pinned schemathesis into a venv under
# target/ the first time. Usage: bash scripts/schemathesis.sh [EXAMPLES_PER_OPERATION]
set -uo pipefail
cd "$(dirname "$0")/.."
VERSION=4.32.5
EXAMPLES="${1:-25}"
BIN="${SIGHTLINE_BIN:-$PWD/target/debug/sightline}"
VENV="$PWD/target/schemathesis-$VERSION"
if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "schemathesis==$VERSION" \
        || { echo "could not install schemathesis $VERSION from PyPI"; exit 1; }
fi
[ -x "$BIN" ] || { echo "no hub binary at $BIN: build it with cargo build -p sightline"; exit 1; }
DIR="$(mktemp -d)"
# Its own config directory: the settings routes write what they change to the config file, and
# the generated requests must never reach the user's ~/.config/sightline/config.toml.
# An owner token from the start, sent with every request: the document lets POST /api/v1/tokens
# make a token, and a hub's first token turns authentication on, which would lock the rest of
# the run out (401, then 429 for repeated failures) instead of testing it.
TOKEN="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
XDG_CONFIG_HOME="$DIR" "$BIN" serve --port 0 --db "$DIR/db.sqlite" --token "$TOKEN" >"$DIR/out" 2>"$DIR/err" &
HUB=$!
trap 'kill "$HUB" 2>/dev/null; wait "$HUB" 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do
    grep -q "listening on" "$DIR/out" 2>/dev/null && break
    sleep 0.1
done
URL="$(sed -n 's/^sightline listening on //p' "$DIR/out")"
[ -n "$URL" ] || { echo "the hub did not start:"; cat "$DIR/err"; exit 1; }
# The endless streams and the shutdown route are left out: the first never end, the last would
# stop the hub under test.
"$VENV/bin/schemathesis" run "$URL/openapi.json" --url "$URL" -c not_a_server_error \
    --exclude-path /api/v1/shutdown --exclude-path-regex '^/ws' --exclude-path /api/v1/events/stream \
    -H "Authorization: Bearer $TOKEN" -n "$EXAMPLES" --workers 2
status=$?
kill -0 "$HUB" 2>/dev/null || { echo "the hub died during the run"; cat "$DIR/err"; exit 1; }
exit $status
