#!/usr/bin/env bash
# Tests the release archive as a user meets it, on this machine but outside the source tree:
#
#   bash scripts/dist-test.sh [ARCHIVE]
#
# Without ARCHIVE it makes one with scripts/dist.sh from an already built binary
# ($SIGHTLINE_BIN, default target/debug/sightline, built when missing) and one agent wheel
# (CPython $SIGHTLINE_DIST_PYTHON, default 3.12): the full wheel matrix and the release build
# belong to dist.sh itself, not to every test run. Then, in a fresh temporary directory:
#
#   1. unpacks the archive; checks the completions (bash parses its script) and the man pages;
#   2. runs the archive's binary from an empty directory, with an environment holding only
#      PATH=/usr/bin:/bin and HOME (and nothing else) pointing at an empty directory, and
#      fetches the dashboard (GET / answers the embedded HTML, not the placeholder);
#   3. makes a clean venv; `sightline agent install` without a terminal and without --yes must
#      refuse; `sightline run` on the venv's python must name the install command;
#   4. `sightline agent install --python VENV/bin/python --yes` from the archive's python/;
#   5. `sightline run -- VENV/bin/python prog.py` against the running hub, and asserts the
#      program's function `call` events were committed (GET /api/v1/runs/RUN/timeline).
#
# Installs nothing outside its temporary directory; ends only the hub it started (by pid).
# Exits 0 when every check passed, 1 on the first that failed (it says which).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYV="${SIGHTLINE_DIST_PYTHON:-3.12}"
WORK="$(mktemp -d)"
HUB_PID=""
cleanup() {
    if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "dist-test: FAILED: $*" >&2; exit 1; }
ok() { echo "dist-test: ok: $*"; }

find_python() {
    local v="$1" p
    for p in "$HOME"/.pyenv/versions/"$v".*/bin/python"$v" "$(command -v python"$v" 2>/dev/null)"; do
        if [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    "$REPO/python/fetch-python.sh" "$v"
}

ARCHIVE="${1:-}"
if [ -z "$ARCHIVE" ]; then
    bin="${SIGHTLINE_BIN:-$REPO/target/debug/sightline}"
    if [ ! -x "$bin" ]; then
        (cd "$REPO" && cargo build -q -p sightline)
        bin="${CARGO_TARGET_DIR:-$REPO/target}/debug/sightline"
    fi
    ARCHIVE="$(bash "$REPO/scripts/dist.sh" --bin "$bin" --python "$PYV" --out "$WORK/dist" | tail -1)"
fi
[ -f "$ARCHIVE" ] || fail "no archive at $ARCHIVE"

# --- 1. unpack; completions and man pages -----------------------------------------------------
mkdir -p "$WORK/opt" "$WORK/home" "$WORK/cwd"
tar -xzf "$ARCHIVE" -C "$WORK/opt"
DIR="$(echo "$WORK"/opt/sightline-*)"
[ -x "$DIR/sightline" ] || fail "no binary at the archive's top"
for f in completions/sightline.bash completions/_sightline completions/sightline.fish \
         man/man1/sightline.1 man/man1/sightline-serve.1 man/man1/sightline-agent-install.1 \
         README.md INSTALL.md LICENSE-MIT LICENSE-APACHE THIRD-PARTY-LICENSES.md; do
    [ -s "$DIR/$f" ] || fail "$f is missing or empty"
done
bash -n "$DIR/completions/sightline.bash" || fail "the bash completion does not parse"
grep -q 'agent' "$DIR/completions/sightline.bash" || fail "the bash completion lacks the agent subcommand"
grep -q -- '--retention' "$DIR/completions/_sightline" || fail "the zsh completion lacks serve --retention"
grep -q '^\.TH' "$DIR/man/man1/sightline.1" || fail "sightline.1 is not a man page"
for hidden in completions man; do
    [ ! -e "$DIR/man/man1/sightline-$hidden.1" ] || fail "the hidden subcommand $hidden got a man page"
done
wheels=("$DIR"/python/sightline_agent-*.whl)
[ -f "${wheels[0]}" ] || fail "no agent wheel in python/"
# Nothing of the source tree the binary cannot use.
extra="$(cd "$DIR" && find . -type f | grep -vE '^\./(sightline|README\.md|INSTALL\.md|LICENSE-MIT|LICENSE-APACHE|THIRD-PARTY-LICENSES\.md|completions/[^/]+|man/man1/[^/]+\.1|python/sightline_agent-[^/]+\.whl)$' || true)"
[ -z "$extra" ] || fail "unexpected files in the archive: $extra"
ok "archive layout: binary, 3 completions, $(ls "$DIR"/man/man1 | wc -l) man pages, ${#wheels[@]} wheel(s)"

# --- 2. a clean run of the archive's binary serving the dashboard ----------------------------
clean_env=(env -i PATH=/usr/bin:/bin HOME="$WORK/home")
(cd "$WORK/cwd" && exec "${clean_env[@]}" "$DIR/sightline" serve --port 0 > "$WORK/hub.out" 2> "$WORK/hub.err") &
HUB_PID=$!
URL=""
for _ in $(seq 1 150); do
    URL="$(sed -n 's/^sightline listening on //p' "$WORK/hub.out" | head -1)"
    [ -n "$URL" ] && break
    kill -0 "$HUB_PID" 2>/dev/null || { cat "$WORK/hub.err" >&2; fail "the hub exited"; }
    sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/hub.err" >&2; fail "the hub did not say where it listens within 15 s"; }
page="$(curl -fsS -D "$WORK/headers" "$URL/")" || fail "GET / failed"
grep -qi '^content-type: text/html' "$WORK/headers" || fail "GET / is not HTML: $(cat "$WORK/headers")"
echo "$page" | grep -qi '<!doctype html' || fail "GET / is not an HTML document"
echo "$page" | grep -q 'no dashboard assets' && fail "the binary has no dashboard (placeholder page)"
asset="$(echo "$page" | grep -oE '/assets/[^"]+\.js' | head -1)"
[ -n "$asset" ] && curl -fsS -o /dev/null "$URL$asset" || fail "the dashboard's script $asset is not served"
[ -f "$WORK/home/.local/share/sightline/sightline.db" ] || fail "the database is not under the clean HOME"
[ -z "$(ls -A "$WORK/cwd")" ] || fail "the hub wrote into its working directory: $(ls -A "$WORK/cwd")"
ok "the archive's binary serves the dashboard at $URL from an empty directory with an empty HOME"

# --- 3. a clean venv: consent and the install hint --------------------------------------------
py="$(find_python "$PYV")" || fail "no Python $PYV"
"$py" -m venv "$WORK/venv" || fail "could not make a venv with $py"
VPY="$WORK/venv/bin/python"
"$VPY" -c 'import sightline' 2>/dev/null && fail "the clean venv already imports sightline"
set +e
"${clean_env[@]}" "$DIR/sightline" agent install --python "$VPY" < /dev/null > "$WORK/refused.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || { cat "$WORK/refused.out" >&2; fail "agent install without a terminal or --yes exited $rc, not 2"; }
grep -q -- '--yes' "$WORK/refused.out" || fail "the refusal does not say --yes: $(cat "$WORK/refused.out")"
"$VPY" -m pip show -q sightline-agent >/dev/null 2>&1 && fail "the refused install installed something"
ok "agent install refuses without a terminal and without --yes (exit 2)"

cat > "$WORK/cwd/prog.py" <<'PY'
def square(n):
    return n * n

def total(k):
    return sum(square(i) for i in range(k))

print("total", total(5))
PY
set +e
(cd "$WORK/cwd" && "${clean_env[@]}" SIGHTLINE_URL="$URL" "$DIR/sightline" run --run-id dist-test-before -- "$VPY" prog.py) > "$WORK/before.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || { cat "$WORK/before.out" >&2; fail "the program did not run without the agent (exit $rc)"; }
grep -qF "agent install --python $VPY" "$WORK/before.out" \
    || { cat "$WORK/before.out" >&2; fail "run did not name the command that installs the agent"; }
grep -q '^total 30' "$WORK/before.out" || fail "the program's output was lost"
ok "run without the agent says: $(grep -F 'agent install' "$WORK/before.out" | sed 's/^ *//')"

# --- 4. install from the archive's wheel --------------------------------------------------------
"${clean_env[@]}" "$DIR/sightline" agent install --python "$VPY" --yes > "$WORK/install.out" 2>&1 \
    || { cat "$WORK/install.out" >&2; fail "agent install --yes failed"; }
"$VPY" -m pip show sightline-agent > "$WORK/show.out" 2>&1 || fail "pip does not know sightline-agent"
ok "agent installed: $(grep -E '^(Name|Version):' "$WORK/show.out" | tr '\n' ' ')"

# --- 5. trace a program into the hub ----------------------------------------------------------
RUN="dist-test-$$"
(cd "$WORK/cwd" && "${clean_env[@]}" SIGHTLINE_URL="$URL" "$DIR/sightline" run --run-id "$RUN" -- "$VPY" prog.py) > "$WORK/run.out" 2>&1 \
    || { cat "$WORK/run.out" >&2; fail "sightline run failed"; }
grep -q 'not tracing' "$WORK/run.out" && { cat "$WORK/run.out" >&2; fail "run did not load the agent"; }
calls=""
for _ in $(seq 1 50); do
    calls="$(curl -fsS "$URL/api/v1/runs/$RUN/timeline?limit=500" | "$VPY" -c '
import json, sys
events = json.load(sys.stdin)["events"]
print(" ".join(sorted({e["entity_id"] for e in events if e["source"] == "python" and e["source_event"] == "call"})))
' 2>/dev/null || true)"
    case "$calls" in *square*total*|*total*square*) break ;; esac
    sleep 0.2
done
case "$calls" in
    *square*total*|*total*square*) ok "committed call events of the traced program: $calls" ;;
    *) curl -fsS "$URL/api/v1/runs/$RUN/timeline?limit=500" >&2 || true; fail "no call events for square and total (got: ${calls:-none})" ;;
esac
echo "dist-test: all checks passed"
