#!/usr/bin/env bash
# Tally on PostgreSQL against pgbench on the same PostgreSQL. In one run, one
# after another, on 127.0.0.1 with free ports and a temp dir:
#   1. a throwaway PostgreSQL (scripts/pg.sh), fsync on, synchronous_commit on;
#   2. Tally serving examples/shop.json on it (database tally_bench):
#        hot     PATCH /api/product/1 {"_atomics":{"stock":{"increment":1}}}
#        spread  the same on /api/product/<id>, id uniform in 1..ROWS
#        hot on 3 servers: two more Tally servers on the same database, one
#                wrk each (17 connections, 51 in all), the answers summed
#        lanes   spread again with the server restarted at --lanes 1, 2, 4, 8
#   3. pgbench on the same PostgreSQL (database pgbench_bench), 50 clients:
#        hot     UPDATE counters SET n = n + 1 WHERE id = 1 RETURNING n
#        spread  the same with id uniform in 1..ROWS
# then a table (requests/s, p50, p99, writes per commit) and the ratios
# Tally/pgbench. Everything printed is also saved in $BENCH_OUT/postgres.log,
# the figures in $BENCH_OUT/figures.tsv (section 4 of bench/report.sh).
#
# Environment:
#   DURATION=5s       wrk's -d and pgbench's -T (10, 10s, 1m ...)
#   ROWS=100000       rows of the spread workloads
#   LANES=            Tally's --lanes for the first runs (default: the server's, 4)
#   LANES_SWEEP="1 2 4 8"  the lanes of the sweep ("" to skip it)
#   TALLY=build/tally the Tally binary (relative to the repository root)
#   PG_BIN=...        the folder of pgbench/psql (default: the newest /usr/lib/postgresql/*/bin)
#   BENCH_TMPDIR=...  where the temp dir (and the database cluster) goes (default
#                     $TMPDIR or /tmp); a real disk, for fsync to mean anything
#   BENCH_OUT=...     the results folder (default bench/results/<stamp>/; bench/run.sh
#                     sets it): postgres.log and the figures for bench/report.sh
# Exit status: 0 when every run passed its checks, 1 otherwise, 2 when a tool is missing.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh  # stop_pid, stop_server, free_port, wait_until, run_tool, show_log, parse_wrk, metric_sum, fail

DURATION=${DURATION:-5s}
ROWS=${ROWS:-100000}
LANES_SWEEP=${LANES_SWEEP-1 2 4 8}
TALLY=${TALLY:-build/tally}
THREADS=2
CONNECTIONS=50

if ! [[ $DURATION =~ ^([0-9]+)([smh]?)$ ]]; then
  echo "bench: DURATION must look like 10, 10s or 1m (got '$DURATION')" >&2; exit 2
fi
case ${BASH_REMATCH[2]} in  # pgbench -T takes seconds
  m) SECONDS_T=$((BASH_REMATCH[1] * 60)) ;;
  h) SECONDS_T=$((BASH_REMATCH[1] * 3600)) ;;
  *) SECONDS_T=${BASH_REMATCH[1]} ;;
esac
if ! [[ $ROWS =~ ^[1-9][0-9]*$ ]]; then
  echo "bench: ROWS must be a positive number (got '$ROWS')" >&2; exit 2
fi
if [ -z "${PG_BIN:-}" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
for tool in wrk curl "$PG_BIN/pgbench" "$PG_BIN/psql"; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench: $tool not found; run scripts/deps.sh bench (postgresql-15, wrk, curl)" >&2; exit 2
  fi
done
if [ ! -x "$TALLY" ]; then
  echo "bench: $TALLY not found or not executable (run make first, or make bench)" >&2; exit 2
fi

# ---- output: everything to the terminal and to $BENCH_OUT/postgres.log ----
# (bench/run.sh sets BENCH_OUT for the whole run; alone, bench/results/<stamp>/)
STAMP=$(date +%Y%m%d-%H%M%S)
BENCH_OUT=${BENCH_OUT:-bench/results/$STAMP}
mkdir -p "$BENCH_OUT"
LOG=$BENCH_OUT/postgres.log
FIGURES=$BENCH_OUT/figures.tsv
exec > >(trap '' INT TERM; exec tee -a "$LOG") 2>&1
TEE_PID=$!

# ---- processes, the cluster and the temp dir, all removed on exit ----
WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tally-pgbench.XXXXXX")
PGDIR=$WORK/pg   # scripts/pg.sh's folder (its socket path must stay short)
PG_STARTED=""
PIDS=()
TOOL_PID=""

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  [ -z "$TOOL_PID" ] || stop_pid "$TOOL_PID"
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$pid"; done
  [ -z "$PG_STARTED" ] || scripts/pg.sh stop "$PGDIR" || echo "bench: could not stop PostgreSQL in $PGDIR"
  rm -rf "$WORK"
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench: interrupted"; exit 130' INT
trap 'echo "bench: terminated"; exit 143' TERM

# ---- helpers (the shared ones are in bench/lib.sh) ----

declare -A RPS P50 P99 WPC NOTE
FAILED=0

PG_URL=""
psql_q() {  # db sql: one value
  "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$PG_URL/$1" -c "$2"
}

# ---- PostgreSQL ----
start_pg() {
  echo; echo "=== PostgreSQL: scripts/pg.sh start $PGDIR"
  PG_STARTED=1
  PG_URL=$(scripts/pg.sh start "$PGDIR") || { fail "scripts/pg.sh could not start PostgreSQL"; exit 1; }
  echo "PostgreSQL $(psql_q postgres 'SHOW server_version') at $PG_URL, data in $PGDIR ($(stat -f -c %T "$PGDIR")):" \
       "fsync=$(psql_q postgres 'SHOW fsync') synchronous_commit=$(psql_q postgres 'SHOW synchronous_commit')" \
       "shared_buffers=$(psql_q postgres 'SHOW shared_buffers')"
  psql_q postgres 'CREATE DATABASE tally_bench' >/dev/null
  psql_q postgres 'CREATE DATABASE pgbench_bench' >/dev/null
}

# ---- Tally ----
TALLY_PID=""
TALLY_BASE=""
TALLY_DIR=$WORK/tally
serve_tally() {  # [lanes]: a server on tally_bench, its URL in TALLY_BASE
  local port
  mkdir -p "$TALLY_DIR"
  port=$(free_port); TALLY_BASE="http://127.0.0.1:$port"
  local lanes=()
  [ -n "${1:-}" ] && lanes=(--lanes "$1")
  echo "\$ $TALLY serve --schema examples/shop.json --db $PG_URL/tally_bench --listen 127.0.0.1:$port ${lanes[*]}"
  "$TALLY" serve --schema examples/shop.json --db "$PG_URL/tally_bench" --listen "127.0.0.1:$port" "${lanes[@]}" \
    >"$TALLY_DIR/tally.log" 2>&1 &
  TALLY_PID=$!; PIDS+=("$TALLY_PID")
  if ! wait_until "$TALLY_PID" 30 grep -q "tally: listening on http://127.0.0.1:$port" "$TALLY_DIR/tally.log" ||
     ! wait_until "$TALLY_PID" 10 curl -sf "$TALLY_BASE/health"; then
    fail "tally did not start (no 'tally: listening on' line or /health not 200)"; show_log "$TALLY_DIR/tally.log"
    return 1
  fi
  echo "tally on 127.0.0.1:$port"
}

start_tally() {
  echo; echo "=== tally on PostgreSQL"
  serve_tally "${LANES:-}" || return 1
  # The rows: product 1 over HTTP (its answer shows the shape), the rest
  # ($ROWS in all) in one INSERT … SELECT, then product $ROWS read back over HTTP.
  local out code body
  out=$(curl -sS -X POST -H 'content-type: application/json' -d '{"sku":"bench-1","stock":0}' \
             -w '\n%{http_code}' "$TALLY_BASE/api/product")
  code=${out##*$'\n'}; body=${out%$'\n'*}
  echo "POST /api/product {\"sku\":\"bench-1\",\"stock\":0} -> $code $body"
  [ "$code" = 201 ] && [[ $body == '{"id":1,'* ]] || { fail "could not create product 1"; return 1; }
  psql_q tally_bench "INSERT INTO product (\"createdAt\", \"updatedAt\", sku, stock)
      SELECT t, t, 'bench-' || g, 0 FROM generate_series(2, $ROWS) g,
             (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t) now" >/dev/null
  code=$(curl -s -o "$TALLY_DIR/last" -w '%{http_code}' "$TALLY_BASE/api/product/$ROWS")
  echo "products 2..$ROWS inserted with psql; GET /api/product/$ROWS -> $code $(cat "$TALLY_DIR/last")"
  [ "$code" = 200 ] || { fail "product $ROWS is not readable through Tally"; return 1; }
}

stock_sum() {  # first last: sum of stock over those ids, read from PostgreSQL
  psql_q tally_bench "SELECT coalesce(sum(stock), 0) FROM product WHERE id BETWEEN $1 AND $2"
}

bench_tally() {  # name ids(0: product 1 only)
  local name=$1 ids=$2 what path before after
  if ((ids)); then
    what="PATCH /api/product/<1..$ids> {\"_atomics\":{\"stock\":{\"increment\":1}}}"; path=/api/product
  else
    what="PATCH /api/product/1 {\"_atomics\":{\"stock\":{\"increment\":1}}}"; path=/api/product/1
  fi
  echo; echo "=== $name: $what, durable"
  before=$(stock_sum 1 "$ROWS")
  curl -sS "$TALLY_BASE/metrics" > "$WORK/$name.metrics.before" || true
  echo "\$ wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s bench/lua/patch.lua $TALLY_BASE"
  echo "(running for $DURATION)"
  if ! TALLY_BENCH_PATH=$path TALLY_BENCH_IDS=$( ((ids)) && echo "$ids" ) \
       TALLY_BENCH_BODY='{"_atomics":{"stock":{"increment":1}}}' \
       run_tool "$WORK/$name.wrk" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/lua/patch.lua "$TALLY_BASE"; then
    cat "$WORK/$name.wrk"; fail "wrk failed on $name"; return 0
  fi
  cat "$WORK/$name.wrk"
  read -r "RPS[$name]" "P50[$name]" "P99[$name]" < <(parse_wrk "$WORK/$name.wrk")
  [ "${RPS[$name]}" != - ] || { unset "RPS[$name]"; fail "no Requests/sec in wrk's output for $name"; }
  curl -sS "$TALLY_BASE/metrics" > "$WORK/$name.metrics.after" || true
  after=$(stock_sum 1 "$ROWS")

  # -- check: every 2xx is in the stock, and nothing else is (see patch.lua)
  # shellcheck disable=SC2034  # set by the eval below
  local line sent answered ok2xx non2xx unanswered delta
  line=$(grep '^patch.lua: sent=' "$WORK/$name.wrk" || true)
  if [ -z "$line" ] || [ -z "$before" ] || [ -z "$after" ]; then
    fail "could not read the counts for $name (patch.lua line: '${line:-none}', stock before '${before:-?}' after '${after:-?}')"
  else
    eval "$(sed -E 's/^patch.lua: //; s/([a-z0-9]+)=([0-9]+)/\1=\2;/g' <<<"$line")"
    delta=$((after - before))
    echo "check: stock (summed over products 1..$ROWS) $before -> $after (+$delta); wrk saw $ok2xx answers 2xx," \
         "$non2xx non-2xx, $unanswered still unanswered when it stopped"
    if ((delta >= ok2xx && delta <= ok2xx + unanswered)); then
      echo "check: OK"
    else
      fail "stock grew by $delta but wrk saw $ok2xx 2xx answers (and $unanswered in flight): an increment was lost or applied without a 2xx"
    fi
    ((non2xx == 0)) || NOTE[$name]="$non2xx non-2xx answers, counted in req/s"
  fi

  # -- group commit, from /metrics: writes per commit
  local w0 w1 b0 b1
  w0=$(metric_sum "$WORK/$name.metrics.before" tally_writes_total); w1=$(metric_sum "$WORK/$name.metrics.after" tally_writes_total)
  b0=$(metric_sum "$WORK/$name.metrics.before" tally_batches_total); b1=$(metric_sum "$WORK/$name.metrics.after" tally_batches_total)
  if [ -n "$w0" ] && [ -n "$w1" ] && [ -n "$b0" ] && [ -n "$b1" ] && ((b1 > b0)); then
    WPC[$name]=$(awk -v w=$((w1 - w0)) -v b=$((b1 - b0)) 'BEGIN { printf "%.1f", w / b }')
    echo "metrics: tally_writes_total +$((w1 - w0)) tally_batches_total +$((b1 - b0)):" \
         "${WPC[$name]} writes per commit (tally_max_batch $(metric_sum "$WORK/$name.metrics.after" tally_max_batch))"
  else
    echo "bench: warning: /metrics lacks tally_writes_total or tally_batches_total (or no batch ran); writes per commit unknown"
  fi
}

# Two more servers on the same database, and the hot row through all three at once.
bench_tally_three() {
  local name=tally-hot-3 i port bases=("$TALLY_BASE") pids=() before after
  for i in 2 3; do
    port=$(free_port)
    "$TALLY" serve --schema examples/shop.json --db "$PG_URL/tally_bench" --listen "127.0.0.1:$port" \
      >"$TALLY_DIR/tally-$i.log" 2>&1 &
    pids+=($!); PIDS+=($!)
    if ! wait_until "${pids[-1]}" 30 curl -sf "http://127.0.0.1:$port/health"; then
      fail "tally server $i did not start"; show_log "$TALLY_DIR/tally-$i.log"; return 0
    fi
    bases+=("http://127.0.0.1:$port")
  done
  echo; echo "=== $name: PATCH /api/product/1 {\"_atomics\":{\"stock\":{\"increment\":1}}} through 3 servers on one database"
  before=$(stock_sum 1 1)
  for i in 0 1 2; do curl -sS "${bases[$i]}/metrics" > "$WORK/$name.$i.metrics.before" || true; done
  echo "(3 × wrk -t1 -c17 -d$DURATION, at once; running for $DURATION)"
  local wrks=()
  for i in 0 1 2; do
    TALLY_BENCH_PATH=/api/product/1 TALLY_BENCH_BODY='{"_atomics":{"stock":{"increment":1}}}' \
      wrk -t1 -c17 -d"$DURATION" --latency -s bench/lua/patch.lua "${bases[$i]}" > "$WORK/$name.$i.wrk" 2>&1 &
    wrks+=($!)
  done
  local ok=1
  for w in "${wrks[@]}"; do wait "$w" || ok=0; done
  ((ok)) || { fail "a wrk failed on $name"; return 0; }
  after=$(stock_sum 1 1)
  local rps=0 acked=0 inflight=0 w0=0 w1=0 b0=0 b1=0 line ok2xx unanswered
  for i in 0 1 2; do
    curl -sS "${bases[$i]}/metrics" > "$WORK/$name.$i.metrics.after" || true
    read -r r _ _ < <(parse_wrk "$WORK/$name.$i.wrk")
    rps=$(awk -v a="$rps" -v b="$r" 'BEGIN { printf "%.2f", a + b }')
    line=$(grep '^patch.lua: sent=' "$WORK/$name.$i.wrk" || true)
    ok2xx=$(sed -nE 's/.*ok2xx=([0-9]+).*/\1/p' <<<"$line"); unanswered=$(sed -nE 's/.*unanswered=([0-9]+).*/\1/p' <<<"$line")
    acked=$((acked + ${ok2xx:-0})); inflight=$((inflight + ${unanswered:-0}))
    w0=$((w0 + $(metric_sum "$WORK/$name.$i.metrics.before" tally_writes_total)))
    w1=$((w1 + $(metric_sum "$WORK/$name.$i.metrics.after" tally_writes_total)))
    b0=$((b0 + $(metric_sum "$WORK/$name.$i.metrics.before" tally_batches_total)))
    b1=$((b1 + $(metric_sum "$WORK/$name.$i.metrics.after" tally_batches_total)))
    echo "server $((i + 1)): $r req/s ($line)"
  done
  RPS[$name]=$rps; P50[$name]=-; P99[$name]=-
  local delta=$((after - before))
  echo "check: stock of product 1 $before -> $after (+$delta); the three wrks saw $acked answers 2xx, $inflight in flight"
  if ((delta >= acked && delta <= acked + inflight)); then echo "check: OK"; else fail "an increment was lost on $name"; fi
  ((b1 > b0)) && WPC[$name]=$(awk -v w=$((w1 - w0)) -v b=$((b1 - b0)) 'BEGIN { printf "%.1f", w / b }')
  for pid in "${pids[@]}"; do stop_server "$pid"; done
}

# The spread again, the server restarted with each number of lanes.
bench_lanes() {
  local l
  for l in $LANES_SWEEP; do
    stop_server "$TALLY_PID"; TALLY_PID=""
    echo; echo "=== lanes: the server restarted with --lanes $l"
    serve_tally "$l" || return 0
    bench_tally "tally-lanes-$l" "$ROWS"
  done
}

# ---- pgbench ----
setup_pgbench() {
  psql_q pgbench_bench "CREATE TABLE counters (id integer PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
      INSERT INTO counters (id) SELECT generate_series(1, $ROWS)" >/dev/null
  psql_q pgbench_bench "VACUUM ANALYZE counters" >/dev/null
  printf '%s\n' 'UPDATE counters SET n = n + 1 WHERE id = 1 RETURNING n;' > "$WORK/hot.sql"
  printf '%s\n' "\\set id random(1, $ROWS)" 'UPDATE counters SET n = n + 1 WHERE id = :id RETURNING n;' > "$WORK/spread.sql"
}

bench_pgbench() {  # name script
  local name=$1 script=$2 before after rps lat
  echo; echo "=== $name: $(tr '\n' ' ' < "$WORK/$script.sql")(autocommit: one commit, one WAL flush per statement)"
  before=$(psql_q pgbench_bench 'SELECT sum(n) FROM counters')
  echo "\$ pgbench -n -f $script.sql -c $CONNECTIONS -j $THREADS -T $SECONDS_T -l $PG_URL/pgbench_bench"
  echo "(running for ${SECONDS_T}s)"
  if ! run_tool "$WORK/$name.out" "$PG_BIN/pgbench" -n -f "$WORK/$script.sql" -c "$CONNECTIONS" -j "$THREADS" \
       -T "$SECONDS_T" -l --log-prefix="$WORK/$name.log" "$PG_URL/pgbench_bench"; then
    cat "$WORK/$name.out"; fail "pgbench failed on $name"; return 0
  fi
  cat "$WORK/$name.out"
  rps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$WORK/$name.out" | head -n1)
  [ -n "$rps" ] || { fail "no tps in pgbench's output for $name"; return 0; }
  RPS[$name]=$(printf '%.2f' "$rps")
  # -l: one line per transaction, its latency in µs in the 3rd field
  lat=$(cat "$WORK/$name.log".* 2>/dev/null | awk '{ print $3 }' | sort -n | awk '
    function at(q,  i) { i = int(NR * q); if (i < 1) i = 1; return v[i] / 1000 }
    { v[NR] = $1 }
    END { if (NR) printf "%.3f %.3f\n", at(0.50), at(0.99); else print "- -" }')
  read -r "P50[$name]" "P99[$name]" <<<"$lat"
  WPC[$name]=1.0
  after=$(psql_q pgbench_bench 'SELECT sum(n) FROM counters')
  local counted
  counted=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$WORK/$name.out" | head -n1)
  echo "check: sum(n) $before -> $after (+$((after - before))); pgbench counted ${counted:-?} transactions"
  [ "${counted:-x}" = $((after - before)) ] || fail "pgbench's count and the table disagree on $name"
}

# ---- run ----
echo "tally bench postgres $STAMP"
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r)"
echo "temp dir: $WORK ($(stat -f -c %T "$WORK"))"
if [ "$(stat -f -c %T "$WORK")" = tmpfs ]; then
  echo "bench: warning: the temp dir is on tmpfs, where fsync costs nothing; set BENCH_TMPDIR to a dir on a real disk"
fi
echo "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION; pgbench -c $CONNECTIONS -j $THREADS -T $SECONDS_T;" \
     "$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}'); $("$PG_BIN/pgbench" --version)"
if rev=$(git rev-parse --short HEAD 2>/dev/null); then
  echo "git: $rev$(git diff --quiet HEAD -- src include 2>/dev/null || echo ', with uncommitted changes in src/ or include/')"
fi

start_pg
if start_tally; then
  bench_tally tally-hot 0
  bench_tally tally-spread "$ROWS"
  bench_tally_three
  bench_lanes
fi
[ -z "$TALLY_PID" ] || stop_server "$TALLY_PID"
setup_pgbench
bench_pgbench pgbench-hot hot
bench_pgbench pgbench-spread spread

# ---- table and ratios ----
echo
echo "=== results ($STAMP, $(nproc) cores, load generators on the same machine, one PostgreSQL)"
printf '%-15s %-46s %11s %8s %8s %9s\n' run "what" "requests/s" "p50 ms" "p99 ms" "writes/commit"
num3() { [[ $1 =~ ^[0-9.]+$ ]] && printf '%.3f' "$1" || printf '%s' "$1"; }
describe() {
  case $1 in
    tally-hot) echo "PATCH atomic increment, one row (HTTP)" ;;
    tally-spread) echo "PATCH atomic increment, random of $ROWS rows" ;;
    tally-hot-3) echo "the hot row through 3 servers on one database" ;;
    pgbench-hot) echo "UPDATE … RETURNING, one row (autocommit)" ;;
    pgbench-spread) echo "UPDATE … RETURNING, random of $ROWS rows" ;;
    tally-lanes-*) echo "the spread with --lanes ${1#tally-lanes-}" ;;
  esac
}
RUNS="tally-hot tally-spread tally-hot-3"
for l in $LANES_SWEEP; do RUNS+=" tally-lanes-$l"; done
RUNS+=" pgbench-hot pgbench-spread"
for run in $RUNS; do
  if [ -n "${RPS[$run]:-}" ]; then
    printf '%-15s %-46s %11s %8s %8s %9s%s\n' "$run" "$(describe "$run")" "${RPS[$run]}" \
           "$(num3 "${P50[$run]}")" "$(num3 "${P99[$run]}")" "${WPC[$run]:--}" "${NOTE[$run]:+  (${NOTE[$run]})}"
  else
    printf '%-15s %-46s %11s %8s %8s %9s  (%s)\n' "$run" "$(describe "$run")" - - - - "${NOTE[$run]:-no result}"
  fi
done
ratio() {  # a b
  if [ -n "${RPS[$1]:-}" ] && [ -n "${RPS[$2]:-}" ]; then
    awk -v a="${RPS[$1]}" -v b="${RPS[$2]}" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "n/a" }'
  else
    echo "n/a"
  fi
}
# the figures for bench/report.sh (lib.sh's record): pg.RUN.rps, .p50, .p99, .wpc
for run in "${!RPS[@]}"; do
  record "pg.$run.rps" "$(printf '%.0f' "${RPS[$run]}")"
  [ "${P50[$run]:--}" = - ] || record "pg.$run.p50" "${P50[$run]}"
  [ "${P99[$run]:--}" = - ] || record "pg.$run.p99" "${P99[$run]}"
  [ -z "${WPC[$run]:-}" ] || record "pg.$run.wpc" "${WPC[$run]}"
  [ -z "${NOTE[$run]:-}" ] || record "pg.$run.note" "${NOTE[$run]}"
done
record pg.rows "$ROWS"
record pg.lanes_sweep "$LANES_SWEEP"
echo "ratio tally/pgbench, hot row (requests/s): $(ratio tally-hot pgbench-hot)"
echo "ratio tally/pgbench, spread (requests/s):  $(ratio tally-spread pgbench-spread)"
echo "ratio tally on 3 servers/pgbench, hot row:  $(ratio tally-hot-3 pgbench-hot)"
for l in $LANES_SWEEP; do echo "ratio tally --lanes $l/pgbench, spread:      $(ratio "tally-lanes-$l" pgbench-spread)"; done
echo "raw output saved in $LOG"
if ((FAILED)); then echo "bench: some checks failed (see FAIL lines above)"; exit 1; fi
