#!/usr/bin/env bash
# sizes.sh — section 3 of `make bench`: how the cost of a write grows with
# the data. For each size N (10^3, 10^5, 10^7 records by default), a fresh
# server and data folder:
#
#   1. customers 1..N created through POST /api/transaction, 1,000 creates a
#      request, 4 requests at once (lib.sh create_records): the creation
#      time and rate are reported, and the database's size on disk;
#   2. the spread counter: PATCH /api/customer/<id> with an atomic
#      increment, id uniform in 1..N (bench/lua/patch.lua), wrk -t2 -c50
#      -d$DURATION, checked like workloads.sh (the sum of orderCount grew by
#      the 2xx answers) with writes per fsync from /metrics.
#
# 10^7 records take about two minutes to create on the 2-core machine (some
# 90,000 creates/s) and half a gigabyte of disk (removed after the run);
# SIZES="1000 100000" leaves that size out.
#
# Environment: DURATION (5s), SIZES ("1000 100000 10000000"), TALLY,
# BENCH_TMPDIR, BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

SIZES=${SIZES:-"1000 100000 10000000"}
need_tools wrk curl jq sqlite3
[ -x "${TALLY:-build/tally}" ] || { echo "bench: ${TALLY:-build/tally} not built (make)" >&2; exit 2; }
bench_start sizes
record sizes.list "$SIZES"

size() {  # N
  local n=$1; local data=$WORK/size-$n before after bytes
  echo; echo "=== size-$n: the spread counter over $n records"
  tally_start "size-$n" "$data" || return 0
  create_records "$data" "$n" || { tally_stop; rm -rf "$data"; return 0; }
  record "size-$n.create_s" "$CREATE_SECONDS"
  record "size-$n.create_rate" "$(awk -v n="$n" -v s="$CREATE_SECONDS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')"
  bytes=$(du -sb "$data" | cut -f1)
  record "size-$n.db_bytes" "$bytes"
  echo "data folder: $((bytes / 1024)) KiB"
  before=$(sqlite_q "$data" 'SELECT coalesce(sum("orderCount"), 0) FROM customer')
  TALLY_BENCH_PATH=/api/customer TALLY_BENCH_IDS=$n tally_wrk "size-$n" patch || { tally_stop; rm -rf "$data"; return 0; }
  after=$(sqlite_q "$data" 'SELECT coalesce(sum("orderCount"), 0) FROM customer')
  echo "check: sum(orderCount) $before -> $after; wrk saw $W_OK2XX 2xx, $W_NON2XX non-2xx, $W_UNANSWERED in flight"
  check_delta "size-$n" "sum(orderCount)" $((after - before)) "$W_OK2XX" "$W_UNANSWERED"
  ((W_NON2XX == 0)) || { fail "size-$n: $W_NON2XX answers were not 2xx"; record "size-$n.check" FAIL; }
  tally_stop
  rm -rf "$data"  # 10^7 records are half a gigabyte
}

for n in $SIZES; do size "$n"; done
