#!/usr/bin/env bash
# sweep.sh — section 2 of `make bench`: the hot counter (PATCH
# /api/customer/1, atomic increment, durable) at 1, 4, 16, 64, 256, 1,024
# and 10,000 connections: throughput, p50/p99/p99.9, and the server's memory
# per connection. For each level, a fresh server (SQLite, one customer):
#
#   1. baseline: VmRSS of the server (from /proc/PID/status) once it serves;
#   2. idle: wrk opens N connections, each sends one GET /api/customer/1 and
#      then waits (TALLY_BENCH_DELAY_MS, longer than the run; see
#      bench/lua/common.lua): N open, idle
#      keep-alive connections for IDLE_SECONDS; VmRSS sampled every 0.2 s;
#   3. active: wrk -c N -d$DURATION --timeout 10s with bench/lua/patch.lua,
#      VmRSS sampled the same way; the stored orderCount checked against
#      the 2xx answers as in workloads.sh.
#
# Memory per connection = (highest VmRSS during the phase - baseline) / N,
# in KiB. wrk needs -c >= -t: a single connection runs with -t1. The
# server's --max-connections (default 1024) is raised to the largest level
# + 64 so that no level is refused by it (at 1,024 the default would turn the
# /metrics scrapes away), and the soft open-file limit is raised to the
# hard one; a level that cannot fit under it is said and skipped.
#
# Environment: DURATION (5s), SWEEP_CONNECTIONS ("1 4 16 64 256 1024
# 10000"), IDLE_SECONDS (3), TALLY, BENCH_TMPDIR, BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LEVELS=${SWEEP_CONNECTIONS:-"1 4 16 64 256 1024 10000"}
IDLE_SECONDS=${IDLE_SECONDS:-3}
need_tools wrk curl sqlite3
[ -x "${TALLY:-build/tally}" ] || { echo "bench: ${TALLY:-build/tally} not built (make)" >&2; exit 2; }
bench_start sweep

raise_nofile
NOFILE=$(ulimit -n)
MAX=0
for n in $LEVELS; do ((n > MAX)) && MAX=$n; done
MAXCONN=$((MAX + 64))
((MAXCONN > 1024)) || MAXCONN=1024
echo "open-file limit: $NOFILE (raised to the hard limit); server --max-connections $MAXCONN (default 1024)"
record sweep.levels "$LEVELS"
record sweep.max_connections "$MAXCONN"

# rss_sample PID FILE: VmRSS in KiB every 0.2 s into FILE, until killed
rss_sample() { while kill -0 "$1" 2>/dev/null; do rss_kb "$1" >> "$2"; sleep 0.2; done; }
max_of() { sort -n "$1" | tail -n1; }

level() {  # N
  local n=$1; local t=2 data=$WORK/sweep-$n base sampler idle active before after
  ((n == 1)) && t=1
  echo; echo "=== sweep-$n: the hot counter at $n connection(s) (wrk -t$t -c$n)"
  if ((n + 64 > NOFILE)); then
    echo "bench: SKIP sweep-$n: the open-file limit is $NOFILE, wrk and the server need $n + some each"
    record "sweep-$n.note" "skipped: ulimit -n $NOFILE"; return 0
  fi
  tally_start "sweep-$n" "$data" --max-connections "$MAXCONN" || { record "sweep-$n.note" "the server did not start"; return 0; }
  echo "customer 1: $(tally_curl POST /api/customer '{"name":"c"}' | cut -c1-60)…"
  sleep 0.5
  base=$(rss_kb "$TALLY_PID")
  record "sweep-$n.rss_base_kb" "$base"

  # idle: one request per connection, then nothing for the rest of the run
  : > "$WORK/rss-idle-$n"
  rss_sample "$TALLY_PID" "$WORK/rss-idle-$n" & sampler=$!
  TALLY_BENCH_DELAY_MS=600000 TALLY_BENCH_UNDELAYED=$((n / t)) run_tool "$WORK/sweep-$n-idle.wrk" \
    wrk -t"$t" -c"$n" -d"${IDLE_SECONDS}s" --timeout 10s -s bench/lua/read.lua "$TALLY_BASE" || true
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  idle=$(max_of "$WORK/rss-idle-$n")
  local answered
  answered=$(sed -nE 's/^read.lua: sent=[0-9]+ answered=([0-9]+).*/\1/p' "$WORK/sweep-$n-idle.wrk")
  echo "idle: $n connections, ${answered:-?} answered their one request; VmRSS $base KiB -> at most $idle KiB:" \
       "$(awk -v a="$idle" -v b="$base" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }') KiB per connection"
  [ "${answered:-0}" = "$n" ] || echo "bench: note: sweep-$n idle: ${answered:-0} of $n connections got their answer"
  record "sweep-$n.idle_answered" "${answered:-0}"
  record "sweep-$n.rss_idle_kb" "$idle"
  record "sweep-$n.kb_per_conn_idle" "$(awk -v a="$idle" -v b="$base" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }')"

  # active: the hot counter at full speed
  before=$(sqlite_q "$data" 'SELECT "orderCount" FROM customer WHERE id = 1')
  : > "$WORK/rss-active-$n"
  rss_sample "$TALLY_PID" "$WORK/rss-active-$n" & sampler=$!
  TALLY_BENCH_PATH=/api/customer/1 tally_wrk "sweep-$n" patch -t"$t" -c"$n" --timeout 10s || true
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  active=$(max_of "$WORK/rss-active-$n")
  after=$(sqlite_q "$data" 'SELECT "orderCount" FROM customer WHERE id = 1')
  echo "active: VmRSS at most $active KiB:" \
       "$(awk -v a="$active" -v b="$base" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }') KiB per connection above the baseline"
  record "sweep-$n.rss_active_kb" "$active"
  record "sweep-$n.kb_per_conn_active" "$(awk -v a="$active" -v b="$base" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }')"
  if [ -n "${W_OK2XX:-}" ]; then
    echo "check: orderCount $before -> $after; wrk saw $W_OK2XX 2xx, $W_NON2XX non-2xx, $W_UNANSWERED in flight"
    check_delta "sweep-$n" orderCount $((after - before)) "$W_OK2XX" "$W_UNANSWERED"
    if ((W_NON2XX > 0)); then
      echo "bench: note: sweep-$n: $W_NON2XX answers were not 2xx: $(grep '^status:' "$WORK/sweep-$n.wrk" | tr '\n' ' ')"
      record "sweep-$n.note" "$W_NON2XX non-2xx ($(grep '^status:' "$WORK/sweep-$n.wrk" | sed 's/status: //' | tr '\n' ' '))"
    fi
  fi
  grep -E 'OVERLOADED|max-connections|warn.*open-file|file limit' "$WORK/sweep-$n.log" | grep -v 'msg=request' | head -n 3 || true
  tally_stop
}

for n in $LEVELS; do level "$n"; done
