# shellcheck shell=bash
# lib.sh — what the parts of bench/ share: stopping the
# processes they start, free ports, waiting for a server, running a load
# tool so that INT/TERM reach the caller's trap at once, reading wrk's
# output and Prometheus metrics.  Sourced from the repository's root.
# The caller owns the globals these use: PIDS (servers it started),
# TOOL_PID (the load tool running now) and FAILED.

USED_PORTS=" "
stop_pid() {  # pid: TERM, wait up to 10 s, then KILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "bench: pid $pid did not stop on TERM within 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_server() {  # pid: stop it and forget it
  local pid=$1 p keep=()
  stop_pid "$pid"
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# free_port: a port nobody listens on, not handed out before in this run,
# below the kernel's ephemeral range (ip_local_port_range, 32768 and up
# here): a port in that range may be held by a client socket of an earlier
# run (wrk's 10,000 connections leave as many in TIME_WAIT), and a server
# asked to listen on it fails with "Address already in use".
free_port() {
  local p i low
  low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  ((low > 11000)) || low=32768
  for ((i = 0; i < 200; i++)); do
    p=$((10000 + RANDOM % (low - 10000)))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS+="$p "; echo "$p"; return 0
    fi
  done
  echo "bench: found no free port" >&2; return 1
}

wait_until() {  # pid seconds command...: run command until it succeeds, the pid dies, or time runs out
  local pid=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Runs a load generator in the background and waits for it, so that INT/TERM
# reach our trap at once instead of after the run; its output goes to a file.
run_tool() {  # outfile command...
  local out=$1 rc=0; shift
  "$@" >"$out" 2>&1 &
  TOOL_PID=$!
  wait "$TOOL_PID" || rc=$?
  TOOL_PID=""
  return "$rc"
}

show_log() {  # file: the last lines of a server's log, indented
  echo "---- last lines of $1"
  tail -n 30 "$1" 2>/dev/null | sed 's/^/    /' || true
  echo "----"
}

# wrk output -> "rps p50_ms p99_ms" (wrk prints latencies as 12.34us/ms/s/m)
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return (v + 0) / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /m$/)  return (v + 0) * 60000
      if (v ~ /s$/)  return (v + 0) * 1000
      return v + 0
    }
    /^Requests\/sec:/   { rps = $2 }
    /^[ \t]+50%[ \t]/   { p50 = ms($2) }
    /^[ \t]+99%[ \t]/   { p99 = ms($2) }
    END { printf "%s %s %s\n", (rps == "" ? "-" : rps), (p50 == "" ? "-" : p50), (p99 == "" ? "-" : p99) }
  ' "$1"
}

# Prometheus text -> sum of every sample of one metric (any labels)
metric_sum() {  # file name
  awk -v name="$2" '
    $1 == name || index($1, name "{") == 1 { s += $NF; found = 1 }
    END { if (found) printf "%.0f\n", s; else print "" }
  ' "$1"
}

fail() { echo "bench: FAIL: $*"; FAILED=1; }

# ---------------------------------------------------------------------------
# The parts of `make bench` (workloads.sh, sweep.sh, sizes.sh, peers.sh and
# run.sh around them) share what follows: one results folder per run, a log
# per part, Tally servers, wrk runs with their end checks, and figures.

# bench_start NAME: wrk's -t2 -c50 ($THREADS, $CONNECTIONS), the results folder ($BENCH_OUT, default
# bench/results/<stamp>/; run.sh sets it for all parts), everything printed
# also into $BENCH_OUT/NAME.log, a temp dir ($WORK) and the traps that stop
# what the part started and remove $WORK on exit, also on Ctrl-C. A part may
# define bench_cleanup_hook to stop more (bench/postgres.sh's PostgreSQL).
bench_start() {
  DURATION=${DURATION:-5s}
  THREADS=2 CONNECTIONS=50  # wrk -t2 -c50 unless a run says otherwise
  if ! [[ $DURATION =~ ^[0-9]+[smh]?$ ]]; then
    echo "bench: DURATION must look like 5, 5s or 1m (got '$DURATION')" >&2; exit 2
  fi
  TALLY=${TALLY:-build/tally}
  BENCH_OUT=${BENCH_OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}
  mkdir -p "$BENCH_OUT"
  FIGURES=$BENCH_OUT/figures.tsv
  LOG=$BENCH_OUT/$1.log
  exec > >(trap '' INT TERM; exec tee -a "$LOG") 2>&1
  TEE_PID=$!
  WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tally-$1.XXXXXX")
  PIDS=(); TOOL_PID=""; FAILED=0
  trap bench_cleanup EXIT
  trap 'echo "bench: interrupted"; exit 130' INT
  trap 'echo "bench: terminated"; exit 143' TERM
  echo "=== bench/$1.sh $(date '+%F %T'), results in $BENCH_OUT"
  echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r)"
  echo "temp dir: $WORK ($(stat -f -c %T "$WORK")); DURATION=$DURATION"
  if [ "$(stat -f -c %T "$WORK")" = tmpfs ]; then
    echo "bench: warning: the temp dir is on tmpfs, where fsync costs nothing; set BENCH_TMPDIR to a dir on a real disk"
  fi
}

bench_cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  [ -z "$TOOL_PID" ] || stop_pid "$TOOL_PID"
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$pid"; done
  if declare -F bench_cleanup_hook >/dev/null; then bench_cleanup_hook || true; fi
  rm -rf "$WORK"
  if ((FAILED)) && ((rc == 0)); then rc=1; fi
  ((rc == 0)) || echo "bench: $(basename "$0") exits $rc (see FAIL lines above)"
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null || true
  exit "$rc"
}

need_tools() {  # tool...: exit 2 when one is missing
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "bench: $t not found; run scripts/deps.sh bench" >&2; exit 2; }
  done
}

# record KEY VALUE: one figure for bench/report.sh, a line "KEY<TAB>VALUE" in
# $BENCH_OUT/figures.tsv (a later line for the same key wins).
record() { printf '%s\t%s\n' "$1" "$2" >> "$FIGURES"; }

raise_nofile() {  # the soft open-file limit up to the hard one (connection sweep)
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# ---- Tally servers ----
# tally_start NAME DATA_DIR [serve options...]: a server on a free port with
# examples/shop.json (or $SCHEMA) and the data in DATA_DIR; sets TALLY_PID
# and TALLY_BASE, its log in $WORK/NAME.log. Returns 1 (after a FAIL line)
# when it does not come up.
tally_start() {
  local name=$1 data=$2 port try; shift 2
  mkdir -p "$data"
  for try in 1 2 3; do
    port=$(free_port); TALLY_BASE="http://127.0.0.1:$port"
    echo "\$ $TALLY serve --schema ${SCHEMA:-examples/shop.json} --data $data --listen 127.0.0.1:$port $*"
    "$TALLY" serve --schema "${SCHEMA:-examples/shop.json}" --data "$data" --listen "127.0.0.1:$port" "$@" \
      >"$WORK/$name.log" 2>&1 &
    TALLY_PID=$!; PIDS+=("$TALLY_PID")
    if wait_until "$TALLY_PID" 30 grep -q "tally: listening on http://127.0.0.1:$port" "$WORK/$name.log" &&
       wait_until "$TALLY_PID" 10 curl -sf "$TALLY_BASE/health"; then
      return 0
    fi
    stop_server "$TALLY_PID"; TALLY_PID=""
    if grep -q 'Address already in use' "$WORK/$name.log"; then
      echo "bench: port $port was taken; trying another"; continue
    fi
    break
  done
  fail "tally ($name) did not start (no 'tally: listening on' line or /health not 200)"
  show_log "$WORK/$name.log"
  return 1
}

tally_stop() { [ -z "${TALLY_PID:-}" ] || stop_server "$TALLY_PID"; TALLY_PID=""; }

# tally_curl METHOD PATH [BODY]: one request to $TALLY_BASE (with
# $TALLY_BENCH_TOKEN when set); prints "STATUS BODY".
tally_curl() {
  local auth=()
  [ -z "${TALLY_BENCH_TOKEN:-}" ] || auth=(-H "Authorization: Bearer $TALLY_BENCH_TOKEN")
  curl -sS -X "$1" "${auth[@]}" -H 'content-type: application/json' ${3:+--data-binary "$3"} \
       -w ' %{http_code}' "$TALLY_BASE$2" | awk '{ code = $NF; $NF = ""; sub(/ $/, ""); print code, $0 }'
}

sqlite_q() {  # DATA_DIR SQL: one value, read-only, beside the running server (WAL)
  sqlite3 -readonly "$1/tally.db" "$2"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# create_records DATA_DIR N [PARALLEL]: customers 1..N (name "c", orderCount
# 0) on $TALLY_BASE through POST /api/transaction, 1,000 creates a request
# (the --max-txn-steps default), PARALLEL requests at once (curl -Z, default
# 4). Prints the time it took; sets CREATE_SECONDS. The table must be empty.
create_records() {
  local data=$1 n=$2 par=${3:-4} full rest t0 t1 codes bad count
  full=$((n / 1000)); rest=$((n % 1000))
  jq -nc '{steps: [range(1000) | {create: "customer", data: {name: "c"}}]}' > "$WORK/create-1000.json"
  jq -nc --argjson k "$rest" '{steps: [range($k) | {create: "customer", data: {name: "c"}}]}' > "$WORK/create-rest.json"
  local auth=()
  [ -z "${TALLY_BENCH_TOKEN:-}" ] || auth=(-H "Authorization: Bearer $TALLY_BENCH_TOKEN")
  t0=$(date +%s.%N)
  : > "$WORK/create.codes"
  if ((full > 0)); then
    curl -sS -Z --parallel-max "$par" --no-progress-meter -X POST "${auth[@]}" -H 'content-type: application/json' \
         --data-binary @"$WORK/create-1000.json" -o /dev/null -w '%{http_code}\n' \
         "$TALLY_BASE/api/transaction?part=[1-$full]" >> "$WORK/create.codes" || true
  fi
  if ((rest > 0)); then
    curl -sS -X POST "${auth[@]}" -H 'content-type: application/json' --data-binary @"$WORK/create-rest.json" \
         -o /dev/null -w '%{http_code}\n' "$TALLY_BASE/api/transaction" >> "$WORK/create.codes" || true
  fi
  t1=$(date +%s.%N)
  CREATE_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  codes=$(sort "$WORK/create.codes" | uniq -c | awk '{ printf "%s%s x %s", (NR > 1 ? ", " : ""), $2, $1 }')
  bad=$(grep -vc '^200$' "$WORK/create.codes" || true)
  count=$(sqlite_q "$data" 'SELECT count(*) FROM customer')
  echo "created $n customers in ${CREATE_SECONDS} s ($(awk -v n="$n" -v s="$CREATE_SECONDS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }') creates/s;" \
       "POST /api/transaction x $((full + (rest > 0))), $par at once: $codes); the table holds $count"
  ((bad == 0)) && [ "$count" = "$n" ] || { fail "creating $n customers: $bad request(s) not 200, $count rows"; return 1; }
}

# ---- wrk runs ----
# tally_wrk NAME SCRIPT [wrk options...]: wrk -t$THREADS -c$CONNECTIONS
# -d$DURATION --latency -s bench/lua/SCRIPT.lua against $TALLY_BASE (options
# given later win: -t1 -c1), /metrics scraped before and after. Output in
# $WORK/NAME.wrk (and printed); the figures are recorded as NAME.rps,
# NAME.p50, NAME.p99, NAME.p999 (ms), NAME.ok2xx, NAME.non2xx, NAME.errors
# (socket errors and timeouts), and the group-commit figures (see
# group_commit). Returns 1 when wrk failed or printed no summary.
tally_wrk() {
  local name=$1 script=$2; shift 2
  curl -sS ${TALLY_BENCH_TOKEN:+-H "Authorization: Bearer $TALLY_BENCH_TOKEN"} "$TALLY_BASE/metrics" > "$WORK/$name.metrics.before" || true
  echo "\$ wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s bench/lua/$script.lua $* $TALLY_BASE   (running for $DURATION)"
  if ! run_tool "$WORK/$name.wrk" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
         -s "bench/lua/$script.lua" "$@" "$TALLY_BASE"; then
    cat "$WORK/$name.wrk"; fail "wrk failed on $name"; return 1
  fi
  wait_quiet
  grep -vE '^ +(Latency|Req/Sec) |^ +Thread Stats|^Running |threads and .* connections' "$WORK/$name.wrk" || true
  curl -sS ${TALLY_BENCH_TOKEN:+-H "Authorization: Bearer $TALLY_BENCH_TOKEN"} "$TALLY_BASE/metrics" > "$WORK/$name.metrics.after" || true
  wrk_figures "$name" "$WORK/$name.wrk" || return 1
  group_commit "$name" "$WORK/$name.metrics.before" "$WORK/$name.metrics.after"
}

# wait_quiet: after a load, wait (at most 30 s) until the server has
# finished what was still in flight when wrk stopped: no write waiting
# (tally_queue_depth 0) and tally_writes_total unchanged for 0.2 s. So the
# stored value read next is final, and the next run does not start with the
# tail of this one.
wait_quiet() {
  local prev="" cur i
  for ((i = 0; i < 150; i++)); do
    curl -sS ${TALLY_BENCH_TOKEN:+-H "Authorization: Bearer $TALLY_BENCH_TOKEN"} "$TALLY_BASE/metrics" \
         > "$WORK/quiet.metrics" 2>/dev/null || return 0
    cur="$(msum "$WORK/quiet.metrics" tally_writes_total) $(msum "$WORK/quiet.metrics" tally_write_errors_total)"
    cur+=" $(msum "$WORK/quiet.metrics" tally_queue_depth)"
    [ "$cur" = "$prev" ] && [ "${cur##* }" = 0 ] && return 0
    prev=$cur; sleep 0.2
  done
  echo "bench: note: the server was still busy 30 s after wrk stopped"
}

# wrk_figures NAME FILE: reads the closing lines of bench/lua/*.lua (or of
# latency.lua) into W_* shell variables and records NAME.rps/p50/p99/p999/…
wrk_figures() {
  local name=$1 f=$2 line
  W_SENT=""; W_ANSWERED=""; W_OK2XX=""; W_NON2XX=""; W_UNANSWERED=""
  W_P50=""; W_P90=""; W_P99=""; W_P999=""; W_MAX=""; W_REQUESTS=""; W_DURATION_US=""; W_ERRORS=0
  line=$(grep -E '^[a-z.]+: sent=' "$f" | head -n1 || true)
  if [ -n "$line" ]; then
    read -r W_SENT W_ANSWERED W_OK2XX W_NON2XX W_UNANSWERED < <(sed -E 's/^[^ ]+ //; s/[a-z0-9]+=//g' <<<"$line")
  fi
  line=$(grep '^latency_us: ' "$f" | head -n1 || true)
  [ -z "$line" ] || read -r W_P50 W_P90 W_P99 W_P999 W_MAX < <(sed -E 's/^latency_us: //; s/[a-z0-9]+=//g' <<<"$line")
  line=$(grep '^summary: ' "$f" | head -n1 || true)
  if [ -z "$line" ]; then fail "no summary line in wrk's output for $name"; return 1; fi
  local c r w s t
  read -r W_REQUESTS W_DURATION_US c r w s t < <(sed -E 's/^summary: //; s/[a-z_]+=//g' <<<"$line")
  W_ERRORS=$((c + r + w + t))
  W_RPS=$(awk -v n="$W_REQUESTS" -v d="$W_DURATION_US" 'BEGIN { printf "%.0f", (d > 0 ? n * 1e6 / d : 0) }')
  record "$name.rps" "$W_RPS"
  local q
  for q in p50 p99 p999; do
    local v; v=W_${q^^}
    record "$name.$q" "$(awk -v us="${!v:-0}" 'BEGIN { printf "%.3f", us / 1000 }')"
  done
  [ -z "$W_OK2XX" ] || { record "$name.ok2xx" "$W_OK2XX"; record "$name.non2xx" "$W_NON2XX"; }
  record "$name.errors" "$W_ERRORS"
  local ms50 ms99 ms999 answers=""
  ms50=$(awk -v u="$W_P50" 'BEGIN { printf "%.2f", u / 1000 }')
  ms99=$(awk -v u="$W_P99" 'BEGIN { printf "%.2f", u / 1000 }')
  ms999=$(awk -v u="$W_P999" 'BEGIN { printf "%.2f", u / 1000 }')
  [ -z "$W_OK2XX" ] || answers="; $W_OK2XX 2xx, $W_NON2XX non-2xx"
  echo "figures: $name $W_RPS req/s, p50 $ms50 ms, p99 $ms99 ms, p99.9 $ms999 ms$answers; $W_ERRORS socket errors/timeouts"
  ((W_ERRORS == 0)) || echo "bench: note: wrk counted $W_ERRORS socket errors or timeouts on $name (connect $c, read $r, write $w, timeout $t)"
}

wrk_count() {  # FILE NAME: a "count: NAME N" line of the run (0 if none)
  awk -v n="$2" '$1 == "count:" && $2 == n { print $3; found = 1 } END { if (!found) print 0 }' "$1"
}
wrk_status() {  # FILE STATUS: a "status: S x N" line of the run (0 if none)
  awk -v s="$2" '$1 == "status:" && $2 == s { print $4; found = 1 } END { if (!found) print 0 }' "$1"
}

# group_commit NAME BEFORE AFTER: deltas of tally_writes_total,
# tally_fsyncs_total and tally_batches_total between two scrapes of /metrics;
# records NAME.writes, NAME.wpf (writes per fsync) and NAME.wpb (per batch).
group_commit() {
  local name=$1 w f b
  w=$(( $(msum "$3" tally_writes_total) - $(msum "$2" tally_writes_total) ))
  f=$(( $(msum "$3" tally_fsyncs_total) - $(msum "$2" tally_fsyncs_total) ))
  b=$(( $(msum "$3" tally_batches_total) - $(msum "$2" tally_batches_total) ))
  record "$name.writes" "$w"
  ((f > 0)) && record "$name.wpf" "$(awk -v w="$w" -v f="$f" 'BEGIN { printf "%.1f", w / f }')"
  ((b > 0)) && record "$name.wpb" "$(awk -v w="$w" -v b="$b" 'BEGIN { printf "%.1f", w / b }')"
  echo "metrics: tally_writes_total +$w tally_fsyncs_total +$f tally_batches_total +$b:" \
       "$( ((f > 0)) && awk -v w="$w" -v f="$f" 'BEGIN { printf "%.1f writes per fsync", w / f }' || echo "no fsync counted")"
}
msum() { local v; v=$(metric_sum "$1" "$2" 2>/dev/null); echo "${v:-0}"; }  # metric_sum, 0 when absent

# check_delta NAME WHAT DELTA EXPECTED SLACK: the stored value moved by
# EXPECTED (2xx answers × what each adds), give or take up to SLACK requests
# that were in flight when wrk stopped (applied or not; their answers never
# read). Records NAME.check OK/FAIL.
check_delta() {
  local name=$1 what=$2 delta=$3 want=$4 slack=$5
  if ((delta >= want && delta <= want + slack)); then
    echo "check: OK, $what grew by $delta: the $want the 2xx answers account for" \
         "$( ((delta > want)) && echo "+ $((delta - want)) from requests in flight when wrk stopped (at most $slack)")"
    record "$name.check" OK
  else
    fail "$name: $what grew by $delta, but the 2xx answers account for $want (+ at most $slack in flight)"
    record "$name.check" FAIL
  fi
}
