#!/usr/bin/env bash
# peers.sh — section 4 of `make bench` (the SQLite side): the servers
# Tally's figures are compared with, measured in the same run, one after
# another, each alone, on 127.0.0.1 with a free port and its files in the
# temp dir:
#
#   nginx                GET /json, a constant 17-byte answer, no storage, no
#                        logging (bench/nginx.conf): the HTTP ceiling of this
#                        machine; wrk -t2 -c50 -d$DURATION --latency with
#                        bench/lua/latency.lua (only done(): p99.9)
#   redis-always-p1      Redis INCR of one key, appendonly yes, appendfsync
#                        always (every answer after its fsync, one fsync per
#                        event-loop pass: group commit), 50 clients, one
#                        request in flight each: redis-benchmark -t incr -c 50
#   redis-always-p16     the same pipelined, 16 in flight per client (-P 16)
#   redis-everysec-p1    appendfsync everysec (a crash may lose the last second)
#   redis-everysec-p16
#
# Each redis-benchmark runs once as a warm-up (-n 20000, not counted), then
# with --csv (requests/s, p50, p99); the key's value must equal every INCR
# sent. Tally's peer on PostgreSQL, pgbench, is in bench/postgres.sh.
#
# Environment: DURATION (5s), REDIS_REQUESTS (200000: -n without pipelining),
# REDIS_PIPELINED_REQUESTS (2000000: -n with -P 16), PEERS ("nginx redis"),
# BENCH_TMPDIR, BENCH_OUT. A peer whose program is missing is skipped with a
# "bench: SKIP" line.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

REDIS_REQUESTS=${REDIS_REQUESTS:-200000}
REDIS_PIPELINED_REQUESTS=${REDIS_PIPELINED_REQUESTS:-2000000}
PEERS=${PEERS:-"nginx redis"}
need_tools wrk curl
bench_start peers

skip() { echo "bench: SKIP $1: $2"; record "$1.note" "skipped: $2"; }

peer_nginx() {
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
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@TEMP_PATHS@|$temp_paths|" bench/nginx.conf > "$dir/nginx.conf"
  "$nginx_bin" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if ! wait_until "$pid" 10 curl -sf "http://127.0.0.1:$port/json"; then
    fail "nginx did not answer on 127.0.0.1:$port"; show_log "$dir/error.log"; stop_server "$pid"; return 0
  fi
  code=$(curl -s -o "$dir/body" -w '%{http_code}' "http://127.0.0.1:$port/json")
  size=$(wc -c < "$dir/body")
  echo "nginx $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //') on 127.0.0.1:$port: GET /json -> $code, $size-byte body $(tr -d '\n' < "$dir/body")"
  [ "$code" = 200 ] && [ "$size" = 17 ] || fail "nginx answered $code with a $size-byte body, wanted 200 and 17 bytes"
  echo "\$ wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s bench/lua/latency.lua http://127.0.0.1:$port/json   (running for $DURATION)"
  if run_tool "$WORK/nginx.wrk" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/lua/latency.lua \
       "http://127.0.0.1:$port/json"; then
    grep -vE '^ +(Latency|Req/Sec) |^ +Thread Stats|^Running |threads and .* connections' "$WORK/nginx.wrk" || true
    wrk_figures nginx "$WORK/nginx.wrk" || true
    if grep -q 'Non-2xx' "$WORK/nginx.wrk"; then fail "nginx answered non-2xx"; fi
  else
    cat "$WORK/nginx.wrk"; fail "wrk failed on nginx"
  fi
  stop_server "$pid"
}

# redis_bench NAME PORT PIPELINE REQUESTS: warm-up, then the measured --csv run
redis_bench() {
  local name=$1 port=$2 p=$3 n=$4 csv v0 v1
  v0=$(redis-cli -p "$port" get 'counter:__rand_int__'); v0=${v0:-0}
  echo "\$ redis-benchmark -p $port -t incr -c $CONNECTIONS -P $p -n $n --csv   (after a warm-up of -n 20000)"
  run_tool "$WORK/$name.warm" redis-benchmark -p "$port" -t incr -c "$CONNECTIONS" -P "$p" -n 20000 -q || true
  if ! run_tool "$WORK/$name.raw" redis-benchmark -p "$port" -t incr -c "$CONNECTIONS" -P "$p" -n "$n" --csv; then
    cat "$WORK/$name.raw"; fail "redis-benchmark failed on $name"; return 0
  fi
  tr '\r' '\n' < "$WORK/$name.raw" | grep -v '^[[:space:]]*$' | tee "$WORK/$name.csv"
  csv=$(awk -F, '
    { gsub(/"/, "") }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "INCR" { print $col["rps"], $col["p50_latency_ms"], $col["p99_latency_ms"] }' "$WORK/$name.csv")
  [ -n "$csv" ] || { fail "could not read redis-benchmark --csv output for $name"; return 0; }
  local rps p50 p99
  read -r rps p50 p99 <<<"$csv"
  record "$name.rps" "$(printf '%.0f' "$rps")"; record "$name.p50" "$p50"; record "$name.p99" "$p99"
  # Without -r every INCR hits one key (redis-benchmark 7 calls it counter:__rand_int__)
  v1=$(redis-cli -p "$port" get 'counter:__rand_int__')
  echo "figures: $name $rps req/s, p50 $p50 ms, p99 $p99 ms"
  if [ "$((v1 - v0))" = $((n + 20000)) ]; then
    echo "check: OK, counter:__rand_int__ $v0 -> $v1: every INCR sent counted"; record "$name.check" OK
  else
    fail "$name: counter:__rand_int__ $v0 -> $v1, but $((n + 20000)) INCRs were sent"; record "$name.check" FAIL
  fi
}

peer_redis() {
  local tool mode dir port pid
  for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { skip redis "$tool not found (apt-get install -y redis-server redis-tools)"; return 0; }
  done
  for mode in always everysec; do
    echo; echo "=== redis: INCR on one key, appendonly yes, appendfsync $mode"
    dir=$WORK/redis-$mode; mkdir -p "$dir"
    port=$(free_port)
    echo "\$ redis-server --port $port --appendonly yes --appendfsync $mode --dir $dir --save ''"
    redis-server --port "$port" --bind 127.0.0.1 --appendonly yes --appendfsync "$mode" \
                 --dir "$dir" --save '' --daemonize no --logfile "$dir/redis.log" >"$dir/stdout.log" 2>&1 &
    pid=$!; PIDS+=("$pid")
    if ! wait_until "$pid" 10 bash -c "[ \"\$(redis-cli -p $port ping)\" = PONG ]"; then
      fail "redis-server did not start"; show_log "$dir/redis.log"; stop_server "$pid"; continue
    fi
    echo "$(redis-server --version | awk '{print $1, $2, $3}') on 127.0.0.1:$port," \
         "appendfsync=$(redis-cli -p "$port" config get appendfsync | tail -n1), data in $dir ($(stat -f -c %T "$dir"))"
    redis_bench "redis-$mode-p1" "$port" 1 "$REDIS_REQUESTS"
    redis_bench "redis-$mode-p16" "$port" 16 "$REDIS_PIPELINED_REQUESTS"
    stop_server "$pid"
  done
}

for peer in $PEERS; do
  case $peer in
    nginx) peer_nginx ;;
    redis) peer_redis ;;
    *) fail "unknown peer '$peer' (nginx, redis)" ;;
  esac
done
