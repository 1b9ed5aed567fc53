#!/usr/bin/env bash
# workloads.sh — section 1 of `make bench`: Tally on SQLite under each kind of
# request it is for, one after another on one server and one data folder,
# each with wrk -t2 -c50 -d$DURATION --latency and a bench/lua/ script:
#
#   hot           PATCH /api/customer/1, atomic increment (patch.lua)
#   spread        the same on /api/customer/<1..RECORDS> (patch.lua)
#   reserve       guarded decrement of one product's stock, mixed with
#                 restocks, about half refused by the guard (reserve.lua)
#   limit         POST /api/limits/bench/k<1..LIMIT_KEYS> (limit.lua)
#   read-hot      GET /api/customer/1 (read.lua)
#   read-spread   GET /api/customer/<1..RECORDS> (read.lua)
#   batch100, batch1000          POST /api/transaction of 100 / 1,000
#   batch100-c8, batch1000-c8    increments of customers 1..BATCH_IDS at
#                                random (batch.lua), at 50 connections and 8
#   hot-keys      hot again, the server restarted with an API key required
#                 (tally keys create) and the token on every request
#
# Every run is checked at its end: the stored value (read with sqlite3
# beside the server) moved by what the 2xx answers account for, plus at most
# the requests in flight when wrk stopped; no unexpected status. Writes per
# fsync come from /metrics. Figures go to $BENCH_OUT/figures.tsv for
# bench/report.sh.
#
# Environment: DURATION (5s), RECORDS (100000), LIMIT_KEYS (10000),
# BATCH_IDS (1000: the batches' ids; see bench/README.md),
# WORKLOADS (the names above, in order; default all), TALLY, BENCH_TMPDIR,
# BENCH_OUT (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

RECORDS=${RECORDS:-100000}
LIMIT_KEYS=${LIMIT_KEYS:-10000}
BATCH_IDS=${BATCH_IDS:-1000}
WORKLOADS=${WORKLOADS:-"hot spread reserve limit read-hot read-spread batch100 batch1000 batch100-c8 batch1000-c8 hot-keys"}
need_tools wrk curl jq sqlite3
[ -x "${TALLY:-build/tally}" ] || { echo "bench: ${TALLY:-build/tally} not built (make)" >&2; exit 2; }
bench_start workloads

# examples/shop.json plus one rate limit for the limiter workload: 100 calls a
# second per key, bursts of 100. Spread over 10,000 keys at the rates this
# machine reaches, a key sees a few calls a second, so nearly every call is
# allowed: each one stores the key's new state (the durable path).
SCHEMA=$WORK/schema.json
jq '.limits.bench = {rate: 100, periodMs: 1000, burst: 100}' examples/shop.json > "$SCHEMA"
DATA=$WORK/data

sum_of() { sqlite_q "$DATA" "SELECT coalesce(sum(\"$2\"), 0) FROM $1${3:+ WHERE $3}"; }

# counter NAME SCRIPT WHERE PER_2XX [wrk options]: a counter workload; the
# sum of orderCount over WHERE must grow by PER_2XX per 2xx answer.
counter() {
  local name=$1 script=$2 where=$3 per=$4 before after; shift 4
  before=$(sum_of customer orderCount "$where")
  tally_wrk "$name" "$script" "$@" || return 0
  after=$(sum_of customer orderCount "$where")
  echo "check: sum(orderCount)${where:+ where $where} $before -> $after; wrk saw $W_OK2XX 2xx, $W_NON2XX non-2xx, $W_UNANSWERED in flight"
  check_delta "$name" "sum(orderCount)" $((after - before)) $((W_OK2XX * per)) $((W_UNANSWERED * per))
  ((W_NON2XX == 0)) || { fail "$name: $W_NON2XX answers were not 2xx"; record "$name.check" FAIL; }
  record "$name.ops" $((W_RPS * per))
}

w_hot() {
  echo; echo "=== hot: PATCH /api/customer/1 {\"_atomics\":{\"orderCount\":{\"increment\":1}}}, durable"
  TALLY_BENCH_PATH=/api/customer/1 counter hot patch "id = 1" 1
}

w_spread() {
  echo; echo "=== spread: the same on /api/customer/<id>, id uniform in 1..$RECORDS"
  TALLY_BENCH_PATH=/api/customer TALLY_BENCH_IDS=$RECORDS counter spread patch "" 1
}

w_reserve() {
  echo; echo "=== reserve: product 1, 3 in 4 requests a guarded decrement (_where stock >= 1), 1 in 4 a restock (+1)"
  local before after ok_r ok_d refused other delta want
  before=$(sum_of product stock "id = 1")
  tally_wrk reserve reserve || return 0
  after=$(sum_of product stock "id = 1")
  ok_r=$(wrk_count "$WORK/reserve.wrk" restock_ok); ok_d=$(wrk_count "$WORK/reserve.wrk" reserve_ok)
  refused=$(wrk_count "$WORK/reserve.wrk" reserve_refused); other=$(wrk_count "$WORK/reserve.wrk" other)
  delta=$((after - before)); want=$((ok_r - ok_d))
  echo "check: stock $before -> $after ($delta); answers: restocks 200 $ok_r, reservations 200 $ok_d," \
       "reservations 409 GUARD_FAILED $refused, other $other; $W_UNANSWERED in flight"
  record reserve.refused "$refused"
  record reserve.refused_share "$(awk -v r="$refused" -v a="$W_ANSWERED" 'BEGIN { printf "%.3f", (a ? r / a : 0) }')"
  if ((after < 0)); then
    fail "reserve: stock is $after, below its min of 0"; record reserve.check FAIL
  elif ((other != 0)); then
    fail "reserve: $other answers were neither 200 nor a reservation's 409"; record reserve.check FAIL
  elif ((delta >= want - W_UNANSWERED && delta <= want + W_UNANSWERED)); then
    echo "check: OK, stock moved by restocks - reservations answered 200 ($want)" \
         "$( ((delta != want)) && echo "$((delta - want)) from requests in flight (at most $W_UNANSWERED)")"
    record reserve.check OK
  else
    fail "reserve: stock moved by $delta, the answers account for $want (± $W_UNANSWERED in flight)"; record reserve.check FAIL
  fi
}

w_limit() {
  echo; echo "=== limit: POST /api/limits/bench/k<1..$LIMIT_KEYS> (limit bench: 100/s per key, burst 100)"
  tally_wrk limit limit || return 0
  local allowed refused other r0 r1
  allowed=$(wrk_count "$WORK/limit.wrk" allowed); refused=$(wrk_count "$WORK/limit.wrk" refused)
  other=$(wrk_count "$WORK/limit.wrk" other)
  r0=$(msum "$WORK/limit.metrics.before" tally_limit_refusals_total); r1=$(msum "$WORK/limit.metrics.after" tally_limit_refusals_total)
  echo "check: allowed $allowed, refused $refused, other $other; tally_limit_refusals_total +$((r1 - r0)); $W_UNANSWERED in flight"
  record limit.allowed "$allowed"; record limit.refused "$refused"
  if ((other == 0 && r1 - r0 >= refused && r1 - r0 <= refused + W_UNANSWERED)); then
    echo "check: OK, every answer was 200 or 429 and the server counted the refusals wrk saw"; record limit.check OK
  else
    fail "limit: $other unexpected answers, or the server's refusals (+$((r1 - r0))) differ from wrk's $refused"; record limit.check FAIL
  fi
}

reads() {  # name ids(empty: id 1)
  local name=$1
  TALLY_BENCH_IDS=$2 tally_wrk "$name" read || return 0
  if ((W_NON2XX == 0 && W_ERRORS == 0)); then
    echo "check: OK, every read answered 200"; record "$name.check" OK
  else
    fail "$name: $W_NON2XX reads were not answered 200"; record "$name.check" FAIL
  fi
}
w_read-hot() { echo; echo "=== read-hot: GET /api/customer/1"; reads read-hot ""; }
w_read-spread() { echo; echo "=== read-spread: GET /api/customer/<id>, id uniform in 1..$RECORDS"; reads read-spread "$RECORDS"; }

batch() {  # name steps connections
  echo; echo "=== $1: POST /api/transaction, $2 increments of orderCount, customers 1..$BATCH_IDS at random, $3 connections"
  TALLY_BENCH_STEPS=$2 TALLY_BENCH_IDS=$BATCH_IDS counter "$1" batch "id <= $BATCH_IDS" "$2" -c"$3"
  [ -z "${W_RPS:-}" ] || echo "figures: $1 $((W_RPS * $2)) increments/s"
}
w_batch100() { batch batch100 100 "$CONNECTIONS"; }
w_batch1000() { batch batch1000 1000 "$CONNECTIONS"; }
w_batch100-c8() { batch batch100-c8 100 8; }
w_batch1000-c8() { batch batch1000-c8 1000 8; }

w_hot-keys() {
  echo; echo "=== hot-keys: the hot counter with an API key required (the server restarted after tally keys create)"
  tally_stop
  local token status
  token=$("$TALLY" keys create --name bench --scope write --scope metrics --data "$DATA" --schema "$SCHEMA" |
          grep -oE 'tly_[A-Za-z0-9_-]+' | head -n1) || true
  [ -n "$token" ] || { fail "tally keys create printed no token"; return 0; }
  echo "tally keys create --name bench --scope write --scope metrics: a token (tly_…)"
  tally_start tally-keys "$DATA" || return 0
  status=$(tally_curl PATCH /api/customer/1 '{"_atomics":{"orderCount":{"increment":1}}}' | cut -d' ' -f1)
  echo "without a token: PATCH /api/customer/1 -> $status"
  [ "$status" = 401 ] || fail "hot-keys: a request without a token got $status, not 401"
  echo "(warm-up after the restart: 1 s of the hot counter with the token, not counted)"
  TALLY_BENCH_TOKEN=$token run_tool "$WORK/warmup-keys.wrk" wrk -t"$THREADS" -c"$CONNECTIONS" -d1s -s bench/lua/patch.lua "$TALLY_BASE" || true
  TALLY_BENCH_TOKEN=$token wait_quiet # the warm-up's requests in flight land before the run's "before"
  TALLY_BENCH_TOKEN=$token TALLY_BENCH_PATH=/api/customer/1 counter hot-keys patch "id = 1" 1
}

# ---- run ----
echo "workloads: $WORKLOADS; $RECORDS records; wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
tally_start tally "$DATA" || exit 1
create_records "$DATA" "$RECORDS" || exit 1
record workloads.records "$RECORDS"
record workloads.limit_keys "$LIMIT_KEYS"
record workloads.batch_ids "$BATCH_IDS"
echo "product 1: $(tally_curl POST /api/product '{"sku":"bench","stock":0}')"
echo "(warm-up: 1 s of the hot counter, not counted)"
run_tool "$WORK/warmup.wrk" wrk -t"$THREADS" -c"$CONNECTIONS" -d1s -s bench/lua/patch.lua "$TALLY_BASE" || true
wait_quiet # the warm-up's requests in flight land before the first run's "before"
for w in $WORKLOADS; do
  declare -F "w_$w" >/dev/null || { fail "unknown workload '$w'"; continue; }
  "w_$w"
done
tally_stop
