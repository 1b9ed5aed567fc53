#!/usr/bin/env bash
# Runs every test, on both backends. Called by `make test` (after the builds).
#
#   scripts/test.sh                    # every phase, in this order:
#     unit         C unit tests (build/)
#     unit-asan    C unit tests under ASan+UBSan (build-asan/)
#     tsan         libtally's tests under ThreadSanitizer (build-tsan/, scripts/tsan.sh)
#     install      meson install, then examples/embed.c built with pkg-config (scripts/check-install.sh)
#     e2e-asan     black-box record-path suites, SQLite, ASan+UBSan server
#     e2e          every black-box suite, SQLite
#     e2e-pg       every black-box suite, PostgreSQL
#     e2e-pg-asan  black-box record-path suites, PostgreSQL, ASan+UBSan server
#   scripts/test.sh e2e e2e-pg         # only the phases named
#
# A throwaway PostgreSQL (scripts/pg.sh) is started first in a temporary
# folder and stopped and removed on exit, whatever happens (failure, Ctrl-C).
# The C unit tests get its URL as TALLY_TEST_PG_URL (they skip their
# PostgreSQL parts without it); the PostgreSQL suites get it as TALLY_DB_URL
# (tests/e2e/lib/server.mjs gives each server a database of its own there).
#
# Environment:
#   TALLY_DB_URL=postgresql://USER@HOST:PORT   use that PostgreSQL instead of a throwaway one
#   TALLY_E2E_SUITES="records.test.mjs ws.test.mjs"   run only these black-box suites
#   TALLY_PHASE_TIMEOUT=420                   seconds a phase may take before it is ended and fails
#   TALLY_TEST_TIMEOUT_MS=300000              what one black-box test may take
#   TALLY_KEEP_TMP=1                           keep the suites' temporary folders and databases
#                                              (a throwaway cluster is removed all the same)
# Exits non-zero when any phase failed; prints each phase's time at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ALL_PHASES=(unit unit-asan tsan install e2e-asan e2e e2e-pg e2e-pg-asan)
if [ $# -gt 0 ]; then phases=("$@"); else phases=("${ALL_PHASES[@]}"); fi
for p in "${phases[@]}"; do
  case " ${ALL_PHASES[*]} " in *" $p "*) ;; *) echo "test.sh: unknown phase '$p' (phases: ${ALL_PHASES[*]})" >&2; exit 2 ;; esac
done
want() { case " ${phases[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

# The suites that go through the record path (run again under the sanitizers).
ASAN_SUITES=(records.test.mjs atomics.test.mjs relations.test.mjs transaction.test.mjs ws.test.mjs auth.test.mjs)
read -r -a SUITES <<<"${TALLY_E2E_SUITES:-}"
if [ ${#SUITES[@]} -eq 0 ]; then
  SUITES=()
  for f in tests/e2e/*.test.mjs; do SUITES+=("$(basename "$f")"); done
else
  ASAN_SUITES=("${SUITES[@]}")
fi

# Bounds, so that a hang (an unfinished backend) fails instead of eating CI's time.
PHASE_TIMEOUT=${TALLY_PHASE_TIMEOUT:-420}       # seconds, per phase
TEST_TIMEOUT_MS=${TALLY_TEST_TIMEOUT_MS:-300000} # per black-box test (node --test-timeout)

# Sanitizer settings. Leak checks are for the unit tests: a server stopped by
# a signal exits with h2o's per-connection memory still held, by design.
UNIT_ASAN_ENV=(ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)
E2E_ASAN_ENV=(TALLY_BIN="$ROOT/build-asan/tally"
              ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)

status=0
summary=()
failed=()
run_start=$SECONDS

header() { printf '\n======== %s\n' "$*"; }

# phase NAME TITLE COMMAND...: runs one phase, times it, records its outcome.
phase() {
  local name=$1 title=$2; shift 2
  want "$name" || return 0
  header "$name: $title"
  local t0=$SECONDS rc
  "$@"; rc=$?
  local dt=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then
    summary+=("$(printf '%-12s %5ds  ok      %s' "$name" "$dt" "$title")")
  else
    summary+=("$(printf '%-12s %5ds  FAILED  %s (exit %d)' "$name" "$dt" "$title" "$rc")")
    failed+=("$name")
    status=1
  fi
  printf -- '-------- %s: %s in %ds\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo FAILED)" "$dt"
}

skip_phase() {
  want "$1" || return 0
  header "$1: SKIPPED ($2)"
  summary+=("$(printf '%-12s %5s  FAILED  not run: %s' "$1" "-" "$2")")
  failed+=("$1")
  status=1
}

# run CMD...: runs it in a session (and process group) of its own and waits.
# Ctrl-C in a terminal then reaches this script and the `setsid -w` between
# (so on_signal runs), not the tests: node's test runner and meson would take
# it as "stop this one test" and carry on. The command's signals are as
# they would be in the foreground (nothing ignored: servers are sent SIGINT).
# A phase that runs past TALLY_PHASE_TIMEOUT seconds is ended (GNU timeout
# signals its whole process group: runner, test files, servers) and fails;
# whatever a phase leaves running in its group is killed when it ends.
child_pidfile=""
run() {
  child_pidfile=$(mktemp /tmp/tally-test-pid.XXXXXX)
  setsid -f -w bash -c 'echo $$ >"$0"; exec timeout -k 20 "$1" "${@:2}"' "$child_pidfile" "$PHASE_TIMEOUT" "$@"
  local rc=$? pid
  pid=$(cat "$child_pidfile" 2>/dev/null)
  [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null
  rm -f "$child_pidfile"
  child_pidfile=""
  [ $rc -eq 124 ] && echo "test.sh: timed out after ${PHASE_TIMEOUT}s (TALLY_PHASE_TIMEOUT)" >&2
  return $rc
}
on_signal() {
  trap '' INT TERM
  echo "test.sh: interrupted by SIG$1; stopping the tests" >&2
  local pid=""
  [ -n "$child_pidfile" ] && pid=$(cat "$child_pidfile" 2>/dev/null)
  if [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null
    rm -f "$child_pidfile"
  fi
  exit 130
}

e2e() { # e2e ENV... -- SUITES...: node's runner in tests/e2e, one file at a time
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  run env -C tests/e2e "${envs[@]}" node --test --test-concurrency=1 --test-timeout="$TEST_TIMEOUT_MS" "$@"
}

# ---------- PostgreSQL: a throwaway cluster unless one is given ----------
PG_URL=""
PG_DIR=""
cleanup() {
  if [ -n "$PG_DIR" ]; then
    echo "test.sh: stopping the throwaway PostgreSQL in $PG_DIR" >&2
    scripts/pg.sh stop "$PG_DIR" || echo "test.sh: could not stop PostgreSQL in $PG_DIR" >&2
  fi
}
trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

needs_pg=0
for p in unit unit-asan tsan e2e-pg e2e-pg-asan; do want "$p" && needs_pg=1; done
if [ $needs_pg = 1 ]; then
  if [ -n "${TALLY_DB_URL:-}" ]; then
    PG_URL=$TALLY_DB_URL
    header "PostgreSQL: using TALLY_DB_URL=$PG_URL"
  else
    header "PostgreSQL: starting a throwaway cluster"
    t0=$SECONDS
    PG_DIR=$(mktemp -d /tmp/tally-pg-XXXXXX)
    if PG_URL=$(scripts/pg.sh start "$PG_DIR"); then
      summary+=("$(printf '%-12s %5ds  ok      %s' pg-start "$((SECONDS - t0))" "throwaway PostgreSQL at $PG_URL")")
    else
      PG_URL=""
      summary+=("$(printf '%-12s %5ds  FAILED  %s' pg-start "$((SECONDS - t0))" "scripts/pg.sh start $PG_DIR")")
      failed+=(pg-start)
      status=1
    fi
  fi
fi
unset TALLY_DB_URL   # the SQLite phases must not see it
[ -n "$PG_URL" ] && export TALLY_TEST_PG_URL=$PG_URL

# ---------- the phases ----------
phase unit "C unit tests (build/)${PG_URL:+, PostgreSQL parts on $PG_URL}" \
  run meson test -C build --print-errorlogs --num-processes 2
phase unit-asan "C unit tests under ASan+UBSan (build-asan/)" \
  run env "${UNIT_ASAN_ENV[@]}" meson test -C build-asan --print-errorlogs --num-processes 2
phase tsan "libtally under ThreadSanitizer (build-tsan/)" run scripts/tsan.sh
phase install "meson install, a program built with pkg-config --cflags --libs tally" run scripts/check-install.sh
phase e2e-asan "black-box, SQLite, ASan+UBSan server: ${ASAN_SUITES[*]}" \
  e2e "${E2E_ASAN_ENV[@]}" -- "${ASAN_SUITES[@]}"
phase e2e "black-box, SQLite, build/tally: ${#SUITES[@]} suites" \
  e2e -- "${SUITES[@]}"
if [ -n "$PG_URL" ]; then
  phase e2e-pg "black-box, PostgreSQL ($PG_URL), build/tally: ${#SUITES[@]} suites" \
    e2e TALLY_DB_URL="$PG_URL" -- "${SUITES[@]}"
  phase e2e-pg-asan "black-box, PostgreSQL, ASan+UBSan server: ${ASAN_SUITES[*]}" \
    e2e TALLY_DB_URL="$PG_URL" "${E2E_ASAN_ENV[@]}" -- "${ASAN_SUITES[@]}"
else
  skip_phase e2e-pg "no PostgreSQL"
  skip_phase e2e-pg-asan "no PostgreSQL"
fi

header "summary ($((SECONDS - run_start))s in all)"
printf '%s\n' "${summary[@]}"
if [ $status -ne 0 ]; then
  echo "FAILED: ${failed[*]}"
else
  echo "all phases passed"
fi
exit $status
