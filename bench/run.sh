#!/usr/bin/env bash
# Tally's baseline benchmark (issue 3): in one run, one after another, on
# 127.0.0.1 with free ports and a temp dir,
#   1. nginx serving a constant 17-byte JSON answer  (the HTTP ceiling),
#   2. Tally: PATCH /api/customer/1 with an atomic increment, durable,
#   3. Redis: INCR with appendonly yes, appendfsync always,
# then a table (requests/s, p50, p99) and the ratios tally/nginx and
# tally/redis. Everything printed is also saved in bench/results/.
#
# Environment:
#   DURATION=10s         wrk's -d for nginx and Tally (10, 10s, 1m ...)
#   REDIS_REQUESTS=200000  redis-benchmark's -n
#   PEERS="nginx tally redis"  which peers to run
#   TALLY=build/tally    the Tally binary (relative to the repository root)
#   BENCH_TMPDIR=...     where the temp dir goes (default $TMPDIR or /tmp);
#                        it must be a real disk for fsync to mean anything
# A peer whose program is missing is skipped with a line saying so.
# Exit status: 0 when every peer that ran passed its checks, 1 otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh  # stop_pid, stop_server, free_port, wait_until, run_tool, show_log, parse_wrk, metric_sum, fail

DURATION=${DURATION:-10s}
REDIS_REQUESTS=${REDIS_REQUESTS:-200000}
PEERS=${PEERS:-"nginx tally redis"}
TALLY=${TALLY:-build/tally}
THREADS=2
CONNECTIONS=50

if ! [[ $DURATION =~ ^[0-9]+[smh]?$ ]]; then
  echo "bench: DURATION must look like 10, 10s or 1m (got '$DURATION')" >&2; exit 2
fi
if ! [[ $REDIS_REQUESTS =~ ^[1-9][0-9]*$ ]]; then
  echo "bench: REDIS_REQUESTS must be a positive number (got '$REDIS_REQUESTS')" >&2; exit 2
fi
for tool in wrk curl; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench: $tool not found; run scripts/deps.sh bench (or apt-get install -y $tool)" >&2; exit 2
  fi
done

# ---- output: everything to the terminal and to bench/results/<stamp>.txt ----
mkdir -p bench/results
STAMP=$(date +%Y%m%d-%H%M%S)
LOG=bench/results/$STAMP.txt
# tee ignores INT/TERM so that the clean-up lines still reach the file.
exec > >(trap '' INT TERM; exec tee "$LOG") 2>&1
TEE_PID=$!

# ---- processes and temp dir, all removed on exit ----
WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tally-bench.XXXXXX")
PIDS=()      # servers
TOOL_PID=""  # the load generator running now

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  [ -z "$TOOL_PID" ] || stop_pid "$TOOL_PID"
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench: interrupted"; exit 130' INT
trap 'echo "bench: terminated"; exit 143' TERM

# ---- helpers (the shared ones are in bench/lib.sh) ----

declare -A RPS P50 P99 NOTE
FAILED=0
skip() { echo "bench: SKIP $1: $2"; NOTE[$1]="skipped: $2"; }

wrk_run() {  # name url [wrk args...]: runs wrk (output kept in $WORK/name.wrk), sets RPS P50 P99
  local name=$1 url=$2; shift 2
  echo "\$ wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency${*:+ $*} $url"
  echo "(running for $DURATION)"
  run_tool "$WORK/$name.wrk" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" ||
    { cat "$WORK/$name.wrk"; fail "wrk failed on $name"; return 0; }
  cat "$WORK/$name.wrk"
  read -r "RPS[$name]" "P50[$name]" "P99[$name]" < <(parse_wrk "$WORK/$name.wrk")
  if [ "${RPS[$name]}" = - ]; then unset "RPS[$name]"; fail "no Requests/sec in wrk's output for $name"; fi
}

# ---- 1. nginx ----
bench_nginx() {
  echo; echo "=== nginx: GET /json, a constant 17-byte answer (the HTTP ceiling)"
  local nginx_bin
  nginx_bin=$(command -v nginx || true)
  [ -n "$nginx_bin" ] || nginx_bin=$(ls /usr/sbin/nginx 2>/dev/null || true)
  if [ -z "$nginx_bin" ]; then skip nginx "nginx not found (apt-get install -y nginx-light)"; return 0; fi

  local dir=$WORK/nginx port temp_paths="" kind flag pid code size
  mkdir -p "$dir"
  port=$(free_port)
  # Point every temp path this nginx was built with into our dir, so that it
  # never needs /var/lib/nginx (which only root may write).
  for kind in client_body proxy fastcgi uwsgi scgi; do
    flag=${kind/client_body/client-body}
    if "$nginx_bin" -V 2>&1 | grep -q -- "--http-$flag-temp-path"; then
      temp_paths+="${kind}_temp_path $dir/${kind}_temp; "
    fi
  done
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@TEMP_PATHS@|$temp_paths|" \
      bench/nginx.conf > "$dir/nginx.conf"

  "$nginx_bin" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if ! wait_until "$pid" 10 curl -sf "http://127.0.0.1:$port/json"; then
    fail "nginx did not answer on 127.0.0.1:$port"; show_log "$dir/error.log"; show_log "$dir/stdout.log"
    stop_server "$pid"; NOTE[nginx]="did not start"; return 0
  fi
  code=$(curl -s -o "$dir/body" -w '%{http_code}' "http://127.0.0.1:$port/json")
  size=$(wc -c < "$dir/body")
  echo "nginx $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //') on 127.0.0.1:$port: GET /json -> $code, $size-byte body $(tr -d '\n' < "$dir/body")"
  [ "$code" = 200 ] && [ "$size" = 17 ] || fail "nginx answered $code with a $size-byte body, wanted 200 and 17 bytes"

  wrk_run nginx "http://127.0.0.1:$port/json"
  stop_server "$pid"
}

# ---- 2. Tally ----
bench_tally() {
  echo; echo "=== tally: PATCH /api/customer/1 {\"_atomics\":{\"orderCount\":{\"increment\":1}}}, durable"
  if [ ! -x "$TALLY" ]; then
    skip tally "$TALLY not found or not executable (run make first, or make bench)"; return 0
  fi
  local dir=$WORK/tally port pid base out code id before after body
  mkdir -p "$dir/data"
  port=$(free_port); base="http://127.0.0.1:$port"
  echo "\$ $TALLY serve --schema examples/shop.json --data $dir/data --listen 127.0.0.1:$port"
  "$TALLY" serve --schema examples/shop.json --data "$dir/data" --listen "127.0.0.1:$port" >"$dir/tally.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if ! wait_until "$pid" 30 grep -q "tally: listening on http://127.0.0.1:$port" "$dir/tally.log" ||
     ! wait_until "$pid" 10 curl -sf "$base/health"; then
    fail "tally did not start (no 'tally: listening on' line or /health not 200)"; show_log "$dir/tally.log"
    stop_server "$pid"; NOTE[tally]="did not start"; return 0
  fi
  echo "tally on 127.0.0.1:$port, data in $dir/data ($(stat -f -c %T "$dir/data"))"

  out=$(curl -sS -X POST -H 'content-type: application/json' -d '{"name":"bench"}' \
             -w '\n%{http_code}' "$base/api/customer")
  code=${out##*$'\n'}; body=${out%$'\n'*}
  echo "POST /api/customer {\"name\":\"bench\"} -> $code $body"
  id=$(sed -nE 's/.*"id"[[:space:]]*:[[:space:]]*([0-9]+).*/\1/p' <<<"$body" | head -n1)
  if [ "$code" != 201 ] || [ -z "$id" ]; then
    fail "could not create the customer"; show_log "$dir/tally.log"; stop_server "$pid"; NOTE[tally]="create failed"; return 0
  fi
  [ "$id" = 1 ] || echo "bench: note: the new customer has id $id, not 1; patching /api/customer/$id"

  body=$(curl -sS "$base/api/customer/$id")
  before=$(sed -nE 's/.*"orderCount"[[:space:]]*:[[:space:]]*(-?[0-9]+).*/\1/p' <<<"$body" | head -n1)
  curl -sS "$base/metrics" > "$dir/metrics.before" || true

  TALLY_BENCH_PATH=/api/customer/$id wrk_run tally "$base" -s bench/patch.lua

  curl -sS "$base/metrics" > "$dir/metrics.after" || true
  body=$(curl -sS "$base/api/customer/$id")
  after=$(sed -nE 's/.*"orderCount"[[:space:]]*:[[:space:]]*(-?[0-9]+).*/\1/p' <<<"$body" | head -n1)

  # -- check: every 2xx is in orderCount, and nothing else is (see patch.lua)
  # shellcheck disable=SC2034  # sent and answered are set by the eval below
  local line sent answered ok2xx non2xx unanswered delta
  line=$(grep '^patch.lua: sent=' "$WORK/tally.wrk" || true)
  if [ -z "$line" ] || [ -z "$before" ] || [ -z "$after" ]; then
    fail "could not read the counts (patch.lua line: '${line:-none}', orderCount before '${before:-?}' after '${after:-?}')"
    show_log "$dir/tally.log"
  else
    eval "$(sed -E 's/^patch.lua: //; s/([a-z0-9]+)=([0-9]+)/\1=\2;/g' <<<"$line")"
    delta=$((after - before))
    echo "check: orderCount $before -> $after (+$delta); wrk saw $ok2xx answers 2xx, $non2xx non-2xx," \
         "$unanswered request(s) still unanswered when it stopped"
    if ((delta == ok2xx)); then
      echo "check: OK, orderCount grew by exactly the number of 2xx answers"
    elif ((delta > ok2xx && delta <= ok2xx + unanswered)); then
      echo "check: OK, orderCount = 2xx answers + $((delta - ok2xx)) of the $unanswered request(s) in flight when wrk stopped" \
           "(applied by the server, answer never read)"
    else
      fail "orderCount grew by $delta but wrk saw $ok2xx 2xx answers (and $unanswered in flight): an increment was lost or applied without a 2xx"
    fi
    ((non2xx == 0)) || NOTE[tally]="$non2xx non-2xx answers, counted in req/s"
  fi

  # -- group commit, from /metrics
  local m v0 v1 deltas="" w f b mb
  for m in writes batches fsyncs checkpoints write_errors rejected; do
    v0=$(metric_sum "$dir/metrics.before" "tally_${m}_total"); v1=$(metric_sum "$dir/metrics.after" "tally_${m}_total")
    [ -n "$v0" ] && [ -n "$v1" ] || continue
    deltas+=" tally_${m}_total +$((v1 - v0))"
    case $m in writes) w=$((v1 - v0)) ;; batches) b=$((v1 - v0)) ;; fsyncs) f=$((v1 - v0)) ;; esac
  done
  mb=$(metric_sum "$dir/metrics.after" tally_max_batch)
  [ -z "$deltas" ] || echo "metrics:$deltas${mb:+ (tally_max_batch $mb)}"
  if [ -n "${w:-}" ] && [ -n "${f:-}" ]; then
    if ((f > 0)); then
      TALLY_WPF=$(awk -v w="$w" -v f="$f" 'BEGIN { printf "%.1f", w / f }')
      echo "metrics: $TALLY_WPF writes per fsync${b:+, $(awk -v w="$w" -v b="$b" 'BEGIN { if (b > 0) printf "%.1f", w / b; else print "n/a" }') writes per batch}"
    else
      echo "metrics: no fsync counted during the run"
    fi
  else
    echo "bench: warning: /metrics lacks tally_writes_total or tally_fsyncs_total; writes per fsync unknown"
    head -c 2000 "$dir/metrics.after" 2>/dev/null | sed 's/^/    /' || true
  fi
  stop_server "$pid"
}

# ---- 3. Redis ----
bench_redis() {
  echo; echo "=== redis: INCR on one key, appendonly yes, appendfsync always"
  local tool
  for tool in redis-server redis-benchmark redis-cli; do
    if ! command -v "$tool" >/dev/null; then
      skip redis "$tool not found (apt-get install -y redis-server redis-tools)"; return 0
    fi
  done
  local dir=$WORK/redis port pid csv
  mkdir -p "$dir"
  port=$(free_port)
  echo "\$ redis-server --port $port --appendonly yes --appendfsync always --dir $dir --save ''"
  redis-server --port "$port" --bind 127.0.0.1 --appendonly yes --appendfsync always \
               --dir "$dir" --save '' --daemonize no --logfile "$dir/redis.log" >"$dir/stdout.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if ! wait_until "$pid" 10 bash -c "[ \"\$(redis-cli -p $port ping)\" = PONG ]"; then
    fail "redis-server did not start"; show_log "$dir/redis.log"; show_log "$dir/stdout.log"
    stop_server "$pid"; NOTE[redis]="did not start"; return 0
  fi
  echo "$(redis-server --version | awk '{print $1, $2, $3}') on 127.0.0.1:$port," \
       "appendonly=$(redis-cli -p "$port" config get appendonly | tail -n1)" \
       "appendfsync=$(redis-cli -p "$port" config get appendfsync | tail -n1), data in $dir ($(stat -f -c %T "$dir"))"

  # -q: the usual one-line summary; --csv: requests/s with p50 and p99 (the table's numbers)
  echo "\$ redis-benchmark -p $port -t incr -c $CONNECTIONS -n $REDIS_REQUESTS -q"
  # (-q also prints progress lines ending in \r: keep the last line)
  run_tool "$WORK/redis.q" redis-benchmark -p "$port" -t incr -c "$CONNECTIONS" -n "$REDIS_REQUESTS" -q ||
    fail "redis-benchmark -q failed"
  tr '\r' '\n' < "$WORK/redis.q" | grep -v '^[[:space:]]*$' | tail -n 1
  echo "\$ redis-benchmark -p $port -t incr -c $CONNECTIONS -n $REDIS_REQUESTS --csv"
  run_tool "$WORK/redis.raw" redis-benchmark -p "$port" -t incr -c "$CONNECTIONS" -n "$REDIS_REQUESTS" --csv ||
    fail "redis-benchmark --csv failed"
  tr '\r' '\n' < "$WORK/redis.raw" | grep -v '^[[:space:]]*$' | tee "$WORK/redis.csv"
  csv=$(awk -F, '
    { gsub(/"/, "") }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "INCR" { print $col["rps"], $col["p50_latency_ms"], $col["p99_latency_ms"] }
  ' "$WORK/redis.csv")
  if [ -n "$csv" ]; then
    read -r "RPS[redis]" "P50[redis]" "P99[redis]" <<<"$csv"
  else
    fail "could not read redis-benchmark --csv output"
  fi
  # Without -r every INCR hits one key (redis-benchmark 7 calls it counter:__rand_int__): a hot key, like Tally's hot row.
  local keys value
  keys=$(redis-cli -p "$port" dbsize)
  value=$(redis-cli -p "$port" get 'counter:__rand_int__')
  echo "redis: $keys key(s); counter:__rand_int__ = ${value:-none} (2 runs x $REDIS_REQUESTS = $((2 * REDIS_REQUESTS)) expected)"
  [ "$keys" = 1 ] && [ "$value" = $((2 * REDIS_REQUESTS)) ] || echo "bench: warning: Redis did not count what redis-benchmark sent"
  stop_server "$pid"
}

# ---- run ----
echo "tally bench $STAMP"
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r)"
echo "temp dir: $WORK ($(stat -f -c %T "$WORK"))"
if [ "$(stat -f -c %T "$WORK")" = tmpfs ]; then
  echo "bench: warning: the temp dir is on tmpfs, where fsync costs nothing; set BENCH_TMPDIR to a dir on a real disk"
fi
echo "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION; redis-benchmark -c $CONNECTIONS -n $REDIS_REQUESTS;" \
     "$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
if rev=$(git rev-parse --short HEAD 2>/dev/null); then
  echo "git: $rev$(git diff --quiet HEAD -- src include 2>/dev/null || echo ', with uncommitted changes in src/ or include/')"
else
  echo "git: no commit yet"
fi

for peer in $PEERS; do
  case $peer in
    nginx) bench_nginx ;;
    tally) bench_tally ;;
    redis) bench_redis ;;
    *) echo "bench: unknown peer '$peer' (nginx, tally, redis)"; exit 2 ;;
  esac
done

# ---- table and ratios ----
echo
echo "=== results ($STAMP, $(nproc) cores, load generator on the same machine)"
printf '%-6s %-44s %12s %9s %9s\n' peer "what" "requests/s" "p50 ms" "p99 ms"
num3() { [[ $1 =~ ^[0-9.]+$ ]] && printf '%.3f' "$1" || printf '%s' "$1"; }
describe() {
  case $1 in
    nginx) echo "GET /json, constant 17 bytes, no storage" ;;
    tally) echo "PATCH atomic increment, one row, fsync" ;;
    redis) echo "INCR one key, appendfsync always" ;;
  esac
}
for peer in $PEERS; do
  if [ -n "${RPS[$peer]:-}" ]; then
    printf '%-6s %-44s %12s %9s %9s%s\n' "$peer" "$(describe "$peer")" "${RPS[$peer]}" \
           "$(num3 "${P50[$peer]}")" "$(num3 "${P99[$peer]}")" "${NOTE[$peer]:+  (${NOTE[$peer]})}"
  else
    printf '%-6s %-44s %12s %9s %9s  (%s)\n' "$peer" "$(describe "$peer")" - - - "${NOTE[$peer]:-no result}"
  fi
done
[ -z "${TALLY_WPF:-}" ] || echo "tally writes per fsync: $TALLY_WPF"
ratio() {  # a b
  if [ -n "${RPS[$1]:-}" ] && [ -n "${RPS[$2]:-}" ]; then
    awk -v a="${RPS[$1]}" -v b="${RPS[$2]}" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "n/a" }'
  else
    echo "n/a (no $( [ -n "${RPS[$1]:-}" ] && echo "$2" || echo "$1") result)"
  fi
}
echo "ratio tally/nginx (requests/s): $(ratio tally nginx)"
echo "ratio tally/redis (requests/s): $(ratio tally redis)"
echo "raw output saved in $LOG"
if ((FAILED)); then echo "bench: some checks failed (see FAIL lines above)"; exit 1; fi
