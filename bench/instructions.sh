#!/usr/bin/env bash
# instructions.sh — instructions per hot-counter request, counted by
# callgrind (valgrind), so that a change to the server can be judged by a
# figure that does not drift with the machine's load.
#
#   bench/instructions.sh            # prints "instructions/request: N" and the top functions
#
# Tally runs under `valgrind --tool=callgrind --instr-atstart=no`; after a
# warm-up, collection is switched on, wrk sends the hot counter
# (bench/lua/patch.lua) for $SECONDS_ON seconds on $CONNECTIONS connections, and
# collection is switched off again. Requests are counted from /metrics
# (tally_http_requests_total, read outside the collected window), so the
# figure is every instruction of every thread of the server divided by the
# requests it answered. Under valgrind the server is ~50× slower and its
# threads take turns, so batches are smaller than at full speed: compare
# figures of this script with each other, not with a wrk run.
#
# WORKLOAD=read measures GET /api/customer/1 instead (a point read, answered
# on the loop thread without the writer).
#
# Environment: TALLY (default build/tally), CONNECTIONS (16), SECONDS_ON (10),
# TOP (25 functions), BENCH_TMPDIR, OUT (where callgrind.out goes; default
# the temp dir, removed at exit), TALLY_ARGS (extra serve options).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

TALLY=${TALLY:-build/tally}
CONNECTIONS=${CONNECTIONS:-16}
SECONDS_ON=${SECONDS_ON:-10}
TOP=${TOP:-25}
WORKLOAD=${WORKLOAD:-hot}
case $WORKLOAD in
  hot) LOAD=(-s bench/lua/patch.lua) URL_PATH="" ;;
  read) LOAD=() URL_PATH="/api/customer/1" ;;
  *) echo "instructions: WORKLOAD is hot or read (got '$WORKLOAD')" >&2; exit 2 ;;
esac
for tool in valgrind callgrind_control callgrind_annotate wrk curl; do
  command -v "$tool" >/dev/null || { echo "instructions: $tool not found (scripts/deps.sh bench)" >&2; exit 2; }
done

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tally-instr.XXXXXX")
PIDS=(); TOOL_PID=""; FAILED=0
cleanup() { local rc=$? p; for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$p"; done; rm -rf "$WORK"; exit "$rc"; }
trap cleanup EXIT

port=$(free_port); base="http://127.0.0.1:$port"
out=${OUT:-$WORK/callgrind.out}
mkdir -p "$WORK/data"
# shellcheck disable=SC2086
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
  "$TALLY" serve --schema examples/shop.json --data "$WORK/data" --listen "127.0.0.1:$port" \
  ${TALLY_ARGS:-} >"$WORK/tally.log" 2>&1 &
pid=$!; PIDS+=("$pid")
wait_until "$pid" 120 curl -sf "$base/health" || { show_log "$WORK/tally.log"; echo "instructions: tally did not start" >&2; exit 1; }
curl -sf -X POST -H 'content-type: application/json' -d '{"name":"bench"}' "$base/api/customer" >/dev/null
run_tool "$WORK/warm.wrk" wrk -t1 -c"$CONNECTIONS" -d2s "${LOAD[@]}" "$base$URL_PATH" || true

requests() { curl -sf "$base/metrics" > "$WORK/m"; metric_sum "$WORK/m" tally_http_requests_total; }
batches() { metric_sum "$WORK/m" tally_batches_total; } # of the last scrape
before=$(requests); b0=$(batches)
callgrind_control -i on "$pid" >/dev/null
run_tool "$WORK/load.wrk" wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_ON}s" "${LOAD[@]}" "$base$URL_PATH" || true
callgrind_control -i off "$pid" >/dev/null
after=$(requests); b1=$(batches)
n=$((after - before))
stop_server "$pid"

callgrind_annotate --threshold=100 "$out" > "$WORK/annotate" 2>/dev/null
total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$WORK/annotate")
[ -n "$total" ] && [ "$n" -gt 0 ] || { echo "instructions: no count (requests=$n)" >&2; exit 1; }
echo "workload: $WORKLOAD; requests: $n on $CONNECTIONS connections, in $((b1 - b0)) batches ($(awk -v n="$n" -v b="$((b1 - b0))" 'BEGIN { printf "%.1f", b ? n / b : 0 }') writes a commit; a batch's own cost is shared by its writes), instructions: $total (every server thread)"
echo "instructions/request: $((total / n))"
echo "top functions (self, instructions per request):"
awk -v n="$n" -v top="$TOP" '
    /^-+$/ { dashes++; next }
    /PROGRAM TOTALS/ { next }
    dashes >= 3 && $1 ~ /^[0-9,]+$/ && shown < top {
      # "5,315 ( 8.89%)  file:function [object]": the count, the share, the rest
      ir = $1; gsub(",", "", ir); line = $0
      sub(/^ *[0-9,]+ *\( *[0-9.]+%\) */, "", line)
      pct = $0; sub(/^ *[0-9,]+ *\( */, "", pct); sub(/%.*/, "", pct)
      printf "  %8.0f  %5.2f%%  %s\n", ir / n, pct, line; shown++
    }' "$WORK/annotate"
