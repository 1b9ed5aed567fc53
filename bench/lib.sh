# lib.sh — what bench/run.sh and bench/postgres.sh share: stopping the
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

free_port() {  # a port nobody listens on, not handed out before in this run
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
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
