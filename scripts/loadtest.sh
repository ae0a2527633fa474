#!/usr/bin/env bash
# Load-test `sentiment serve`: start the server on 127.0.0.1 (free port), run headless locust
# (locustfile.py) against it for a bounded time, print and write the figures, stop the server.
#
# usage: bash scripts/loadtest.sh MODEL_DIR [BACKEND]        (BACKEND: onnx-int8 | onnx | torch)
# environment (defaults in brackets):
#   USERS [8]  RUN_TIME [60s]  RATE_PER_USER [25] (req/s per user; 0 = no wait)
#   RUNNER [threadpool] (threadpool | batch)  OUT [MODEL_DIR/loadtest/BACKEND-RUNNER]
#   SERVE_ARGS [] extra `sentiment serve` options, e.g. "--no-request-log"
# writes OUT/summary.json (from locust's final stats), OUT/locust_*.csv, OUT/server.log,
# OUT/requests.db (every prediction of the run, written by the server's request log)
set -euo pipefail

MODEL_DIR=${1:?usage: bash scripts/loadtest.sh MODEL_DIR [BACKEND]}
BACKEND=${2:-onnx-int8}
USERS=${USERS:-8}
RUN_TIME=${RUN_TIME:-60s}
RATE_PER_USER=${RATE_PER_USER:-25}
RUNNER=${RUNNER:-threadpool}
OUT=${OUT:-$MODEL_DIR/loadtest/$BACKEND-$RUNNER}
SERVE_ARGS=${SERVE_ARGS:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ ! -d "$MODEL_DIR" ]; then
  echo "error: model directory '$MODEL_DIR' does not exist; train one with \`sentiment train\`" >&2
  exit 2
fi
mkdir -p "$OUT"
rm -f "$OUT/requests.db" "$OUT/requests.db-wal" "$OUT/requests.db-shm" "$OUT"/locust_*
# Run python directly (not through `uv run`) so the PID below is the server itself.
PY=$(cd "$ROOT" && uv run --frozen python -c 'import sys; print(sys.executable)')

# shellcheck disable=SC2086  # SERVE_ARGS is a list of options
"$PY" -m sentiment_hf.cli serve "$MODEL_DIR" --backend "$BACKEND" --runner "$RUNNER" \
  --host 127.0.0.1 --port 0 --request-log "$OUT/requests.db" $SERVE_ARGS \
  >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap stop_server EXIT

URL=""
for _ in $(seq 1 600); do
  URL=$(grep -oE 'Uvicorn running on http://127\.0\.0\.1:[0-9]+' "$OUT/server.log" | head -1 \
    | sed 's/Uvicorn running on //' || true)
  [ -n "$URL" ] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "error: the server exited before it was ready; its log:" >&2
    cat "$OUT/server.log" >&2
    exit 1
  fi
  sleep 0.5
done
if [ -z "$URL" ]; then
  echo "error: the server did not start within 300 s; see $OUT/server.log" >&2
  exit 1
fi
echo "server $URL ($BACKEND, runner $RUNNER) — locust: $USERS users, $RUN_TIME, ${RATE_PER_USER} req/s per user" >&2

cd "$ROOT"
LOCUST_RATE_PER_USER=$RATE_PER_USER "$PY" -m locust -f locustfile.py --headless \
  -u "$USERS" -r "$USERS" -t "$RUN_TIME" --host "$URL" --csv "$OUT/locust" --json-file "$OUT/locust_final" \
  --only-summary --stop-timeout 5 --loglevel WARNING >"$OUT/locust.log" 2>&1 || true
stop_server
trap - EXIT

"$PY" - "$OUT" "$BACKEND" "$RUNNER" "$USERS" "$RUN_TIME" "$RATE_PER_USER" <<'PY'
import json, sqlite3, sys
from pathlib import Path

out, backend, runner, users, run_time, rate = sys.argv[1:7]
final = Path(out) / "locust_final.json"
if not final.is_file():
    sys.exit(f"error: locust wrote no stats; see {Path(out) / 'locust.log'}")
entries = json.loads(final.read_text())
times = {}  # response time (ms, rounded as locust does) -> count, over all entries
for e in entries:
    for ms, n in e["response_times"].items():
        times[float(ms)] = times.get(float(ms), 0) + n
total = sum(e["num_requests"] for e in entries)
fails = sum(e["num_failures"] for e in entries)
start = min(e["start_time"] for e in entries)
last = max(e["last_request_timestamp"] for e in entries)


def pct(q):
    # Same rule as locust's calculate_response_time_percentile.
    target = total - int(total * q)
    seen = 0
    for ms in sorted(times, reverse=True):
        seen += times[ms]
        if seen >= target:
            return ms
    return 0.0


logged = sqlite3.connect(Path(out) / "requests.db").execute("SELECT count(*) FROM requests")
summary = {
    "backend": backend,
    "runner": runner,
    "users": int(users),
    "run_time": run_time,
    "rate_per_user": float(rate),
    "requests": total,
    "failures": fails,
    "requests_per_s": round(total / max(last - start, 1e-9), 1),
    "p50_ms": pct(0.5),
    "p95_ms": pct(0.95),
    "p99_ms": pct(0.99),
    "max_ms": round(max(e["max_response_time"] for e in entries), 1),
    "rows_logged": logged.fetchone()[0],
}
(Path(out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary))
PY
