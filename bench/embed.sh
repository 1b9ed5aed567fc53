#!/usr/bin/env bash
# embed.sh — in-process increments a second, libtally against raw SQLite, in
# one run: tally_increment, tally_call (PATCH with _atomics) and raw SQLite
# (`UPDATE counter SET n = n + 1 WHERE id = 1`, synchronous=FULL, WAL, busy
# timeout 5000, one transaction per increment, a connection per thread), each
# with the same threads, on the same disk (bench/embed.c does the work).
#
#   bench/embed.sh                         THREADS="1 4 16" SECONDS_EACH=2 REPEAT=3
#   THREADS="1 4 16 64" SECONDS_EACH=5 bench/embed.sh
#   TALLY_BENCH_DIR=/mnt/disk bench/embed.sh     (where the databases go; default a temporary folder)
# Each configuration runs REPEAT times, interleaved with the others, and the
# table keeps its best run: on a shared machine the other load only ever
# takes away. Prints every run, then the table, with each of tally's rates as
# a multiple of raw SQLite's.
# Not part of bench/run.sh; bench/README.md, section "Embedded (libtally)".
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-"1 4 16"}
secs=${SECONDS_EACH:-2}
repeat=${REPEAT:-3}
make --no-print-directory build >/dev/null
bin=build/bench_embed
root=$(mktemp -d "${TALLY_BENCH_DIR:-/tmp}/tally-bench-embed.XXXXXX")
trap 'rm -rf "$root"' EXIT
declare -A rate caller
echo "bench/embed.sh: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${secs}s a run, best of $repeat, databases in $root"
for r in $(seq "$repeat"); do
  for n in $threads; do
    for mode in sqlite increment call; do
      dir="$root/$mode-$n-$r"
      mkdir -p "$dir"
      line=$("$bin" "$mode" "$n" "$secs" "$dir")
      echo "$line"
      got=$(awk '{print $6}' <<<"$line")
      if [ -z "${rate[$mode-$n]:-}" ] || [ "$(bc -l <<<"$got > ${rate[$mode-$n]}")" = 1 ]; then
        rate[$mode-$n]=$got
        caller[$mode-$n]=$(awk '{print $10 " / " $12}' <<<"$line")
      fi
      rm -rf "$dir"
    done
  done
done
echo
printf '%-8s %12s %12s %12s %10s %10s %26s\n' threads sqlite/s increment/s call/s 'inc/sqlite' 'call/sqlite' \
  'inc caller-us all / user'
for n in $threads; do
  s=${rate[sqlite-$n]} i=${rate[increment-$n]} c=${rate[call-$n]}
  printf '%-8s %12s %12s %12s %9.1fx %9.1fx %26s\n' "$n" "$s" "$i" "$c" "$(bc -l <<<"$i / $s")" \
    "$(bc -l <<<"$c / $s")" "${caller[increment-$n]}"
done
