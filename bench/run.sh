#!/usr/bin/env bash
# run.sh — `make bench`: every benchmark of the suite in one run, then the
# report. The parts run one after another (each alone on the machine), all
# writing into one results folder, bench/results/<stamp>/ (git-ignored):
#
#   workloads     section 1: Tally on SQLite, each kind of request (workloads.sh)
#   sweep         section 2: the hot counter from 1 to 10,000 connections (sweep.sh)
#   sizes         section 3: the spread counter over 10^3, 10^5, 10^7 records (sizes.sh)
#   peers         section 4: nginx and Redis (peers.sh)
#   postgres      section 4: Tally on PostgreSQL and pgbench (postgres.sh)
#   instructions  section 5: instructions per hot-counter request and per point read (instructions.sh)
#   report        report.md and the charts (report.sh), printed at the end
#
# Each part also runs alone (bench/sweep.sh …), into a folder of its own or
# into BENCH_OUT=bench/results/<stamp> to add to a run; bench/report.sh
# FOLDER writes the report of whatever a folder holds.
#
# Environment: DURATION (5s, every wrk run and pgbench's -T), PARTS (the
# names above, in order; default all), BENCH_OUT (the results folder), TALLY,
# BENCH_TMPDIR, and each part's own (bench/README.md lists them all).
# Exit status: 1 when a part failed a check (its FAIL lines say which), else 0.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

export DURATION=${DURATION:-5s}
export BENCH_OUT=${BENCH_OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}
PARTS=${PARTS:-"workloads sweep sizes peers postgres instructions"}
mkdir -p "$BENCH_OUT"
RUNLOG=$BENCH_OUT/run.log
FIGURES=$BENCH_OUT/figures.tsv
record() { printf '%s\t%s\n' "$1" "$2" >> "$FIGURES"; }
say() { echo "bench: $*" | tee -a "$RUNLOG"; }

trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

record meta.stamp "$(basename "$BENCH_OUT")"
record meta.date "$(date '+%F %T %Z')"
record meta.machine "$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r)"
record meta.duration "$DURATION"
record meta.git "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (uncommitted changes in src/)')"
record meta.tally "$("${TALLY:-build/tally}" --version 2>/dev/null || echo '?')"

rc=0
start=$(date +%s)
say "results in $BENCH_OUT; parts: $PARTS; DURATION=$DURATION"
for part in $PARTS; do
  t0=$(date +%s)
  record "part.$part.load" "$(cut -d' ' -f1-3 /proc/loadavg)"
  say "--- $part ($(date +%T), load average $(cut -d' ' -f1-3 /proc/loadavg))"
  case $part in
    instructions)
      bench/instructions.sh 2>&1 | tee "$BENCH_OUT/instructions.log"; r=${PIPESTATUS[0]}
      WORKLOAD=read bench/instructions.sh 2>&1 | tee "$BENCH_OUT/instructions-read.log"
      [ "${PIPESTATUS[0]}" = 0 ] || r=1 ;;
    workloads|sweep|sizes|peers|postgres)
      "bench/$part.sh"; r=$? ;;
    *) say "unknown part '$part' (workloads sweep sizes peers postgres instructions)"; r=2 ;;
  esac
  record "part.$part.seconds" $(($(date +%s) - t0))
  record "part.$part.rc" "$r"
  say "--- $part: exit $r, $(($(date +%s) - t0)) s"
  ((r == 0)) || rc=1
done
record meta.seconds $(($(date +%s) - start))
say "all parts: $(($(date +%s) - start)) s"

bench/report.sh "$BENCH_OUT" || rc=1
exit "$rc"
