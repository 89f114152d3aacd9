#!/usr/bin/env bash
# Smoke check of the Locust set-up against a running demo service (or anything serving
# /, /catalogue, /cart, /orders): a ~6 s constant-load experiment (load-testing/run_experiment.py)
# that fails unless requests > 0 and failures == 0.
#   scripts/locust-smoke.sh http://127.0.0.1:8081
# Env: LOCUST_SMOKE_USERS (default 5), LOCUST_SMOKE_DURATION_MIN (default 0.1 = 6 s),
# LOCUST_SMOKE_TARGET (demo), LOCUST_WAIT_MIN/MAX (default 0.1/0.5 s here).
# Output: output/locust/smoke-<time>_* (Locust CSVs and _summary.json) and smoke-<time>.log.
set -euo pipefail
HOST="${1:?usage: scripts/locust-smoke.sh HOST   (e.g. http://127.0.0.1:8081)}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$("$ROOT/scripts/locust-venv.sh" | tail -n 1)"
export LOCUST_WAIT_MIN="${LOCUST_WAIT_MIN:-0.1}" LOCUST_WAIT_MAX="${LOCUST_WAIT_MAX:-0.5}"
PREFIX="$ROOT/output/locust/smoke-$(date -u +%Y%m%dT%H%M%SZ)-$$"
mkdir -p "$(dirname "$PREFIX")"

set +e
SUMMARY="$("$PY" "$ROOT/load-testing/run_experiment.py" --pattern constant \
    --duration "${LOCUST_SMOKE_DURATION_MIN:-0.1}" --host "$HOST" \
    --peak-users "${LOCUST_SMOKE_USERS:-5}" --target "${LOCUST_SMOKE_TARGET:-demo}" \
    --csv-prefix "$PREFIX" --timeout-slack 30 2>"$PREFIX.log" | tail -n 1)"
rc=$?
set -e
if [ ! -f "$SUMMARY" ]; then
    tail -n 30 "$PREFIX.log" >&2
    echo "locust-smoke: FAIL: no summary (run_experiment exit code $rc); log $PREFIX.log" >&2
    exit 1
fi
"$PY" - "$SUMMARY" "$rc" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rc = int(sys.argv[2])
line = (f"{s['requests']} requests, {s['failures']} failures, {s['rps'] or 0:.1f} rps, "
        f"p95 {s['p95_ms']} ms, {s['wall_s']} s")
if s["requests"] > 0 and s["failures"] == 0 and rc == 0:
    print(f"locust-smoke: OK: {line}", file=sys.stderr)
    sys.exit(0)
print(f"locust-smoke: FAIL: {line}; run_experiment exit code {rc}; {sys.argv[1]} "
      f"(Locust's log: {s['csv_prefix']}.log)", file=sys.stderr)
for f in s.get("top_failures", []):
    print(f"  {f['occurrences']} x {f['method']} {f['name']}: {f['error']}", file=sys.stderr)
sys.exit(1)
PY
