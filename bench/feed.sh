#!/usr/bin/env bash
# The change feed's cost (issue 15): the hot counter (PATCH with an atomic
# increment, wrk) and updateMany over ROWS rows, each on a model with the
# feed on and on an identical model with "changes": false, then the hot
# counter again with 1, 10 and 100 followers holding server-sent event
# streams open (bench/feed-followers.mjs counts what they receive). Prints
# one table; not part of `make bench`.
#
#   bench/feed.sh                      # SQLite in a temp dir
#   DB=postgresql://USER@HOST:PORT/DB bench/feed.sh   # an empty PostgreSQL database
#
# Environment: DURATION=5s (wrk -d), ROWS=100000, FOLLOWERS="1 10 100",
# CONNECTIONS=50, TALLY=build/tally, BENCH_TMPDIR (a real disk).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROWS=${ROWS:-100000}
FOLLOWERS=${FOLLOWERS:-"1 10 100"}
CONNECTIONS=${CONNECTIONS:-50}
TALLY=${TALLY:-build/tally}
for tool in wrk curl node; do
  command -v "$tool" >/dev/null || { echo "bench/feed.sh: $tool not found" >&2; exit 2; }
done
[ -x "$TALLY" ] || { echo "bench/feed.sh: $TALLY not built (make build)" >&2; exit 2; }

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tally-feed-bench.XXXXXX")
SERVER=""
FOLLOW=""
cleanup() {
  [ -z "$FOLLOW" ] || kill "$FOLLOW" 2>/dev/null || true
  [ -z "$SERVER" ] || { kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cat >"$WORK/schema.json" <<'JSON'
{"models": {
  "hotOn":  {"fields": {"n": {"type": "integer", "default": 0}}},
  "hotOff": {"changes": false, "fields": {"n": {"type": "integer", "default": 0}}},
  "rowOn":  {"fields": {"n": {"type": "integer", "default": 0}}},
  "rowOff": {"changes": false, "fields": {"n": {"type": "integer", "default": 0}}}}}
JSON
PORT=$((20000 + RANDOM % 40000))
URL=http://127.0.0.1:$PORT
if [ -n "${DB:-}" ]; then STORE=(--db "$DB"); else STORE=(--data "$WORK/data"); mkdir -p "$WORK/data"; fi
"$TALLY" serve --schema "$WORK/schema.json" "${STORE[@]}" --listen "127.0.0.1:$PORT" --log-level warn \
  >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "$URL/health" >/dev/null && break; sleep 0.1; done
curl -sf "$URL/health" >/dev/null || { cat "$WORK/server.log"; exit 1; }

curl -sf -XPOST "$URL/api/hotOn" -d '{}' >/dev/null
curl -sf -XPOST "$URL/api/hotOff" -d '{}' >/dev/null
echo "seeding $ROWS rows in rowOn and in rowOff..."
node -e '
const [url, rows] = [process.argv[1], Number(process.argv[2])];
(async () => {
  for (const model of ["rowOn", "rowOff"])
    for (let done = 0; done < rows; done += 1000) {
      const steps = Array.from({ length: Math.min(1000, rows - done) }, () => ({ create: model, data: {} }));
      const r = await fetch(url + "/api/transaction", { method: "POST", body: JSON.stringify({ steps }) });
      if (r.status !== 200) throw new Error(await r.text());
    }
})().catch((e) => { console.error(e); process.exit(1); });' "$URL" "$ROWS"

cat >"$WORK/inc.lua" <<'LUA'
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"_atomics": {"n": {"increment": 1}}}'
LUA
hot() {  # model -> requests/s
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/inc.lua" "$URL/api/$1/1" 2>&1 | awk '/Requests\/sec/ {print $2}'
}
many() {  # model -> seconds for one updateMany over every row
  curl -sf -o /dev/null -w '%{time_total}' -XPOST "$URL/api/$1/updateMany" \
    -d '{"filter": {}, "_atomics": {"n": {"increment": 1}}}'
}

printf '\n%-44s %14s\n' "run" "result"
printf '%-44s %14s\n' "hot counter, feed off (changes: false)" "$(hot hotOff) req/s"
printf '%-44s %14s\n' "hot counter, feed on" "$(hot hotOn) req/s"
printf '%-44s %14s\n' "updateMany over $ROWS rows, feed off" "$(many rowOff) s"
printf '%-44s %14s\n' "updateMany over $ROWS rows, feed on" "$(many rowOn) s"
for f in $FOLLOWERS; do
  node bench/feed-followers.mjs "$URL" "$f" hotOn >"$WORK/followers-$f.txt" 2>&1 &
  FOLLOW=$!
  sleep 1
  rps=$(hot hotOn)
  sleep 1
  kill -INT "$FOLLOW" 2>/dev/null || true
  wait "$FOLLOW" 2>/dev/null || true
  FOLLOW=""
  printf '%-44s %14s   %s\n' "hot counter, feed on, $f followers (SSE)" "$rps req/s" "$(tail -1 "$WORK/followers-$f.txt")"
done
metrics=$(curl -sf "$URL/metrics")
printf '\nfeed: %s, %s\n' "$(grep '^tally_changes_head ' <<<"$metrics")" "$(grep '^tally_coalesced_writes_total ' <<<"$metrics")"
