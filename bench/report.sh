#!/usr/bin/env bash
# report.sh FOLDER — the report of one run: FOLDER/report.md (printed too)
# and the charts FOLDER/*.png (gnuplot), from FOLDER/figures.tsv (written by
# the parts through lib.sh's record: one "key<TAB>value" a line) and
# FOLDER/instructions.log. A section whose part did not run says so.
#
#   bench/report.sh bench/results/20261201-150000
#
# The goals are issue 12's; each table puts Tally's figure, the peer's from
# the same run, their ratio and the goal side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/report.sh bench/results/STAMP}
[ -f "$OUT/figures.tsv" ] || { echo "report: no $OUT/figures.tsv" >&2; exit 1; }
REPORT=$OUT/report.md

declare -A F
while IFS=$'\t' read -r k v; do [ -n "$k" ] && F[$k]=$v; done < "$OUT/figures.tsv"

# ---- formatting ----
has() { [ -n "${F[$1]:-}" ]; }
v() { echo "${F[$1]:-}"; }
int() {  # 1234567 -> 1,234,567 ("–" when empty)
  [ -n "${1:-}" ] || { echo "–"; return; }
  awk -v x="$1" 'BEGIN { x = sprintf("%.0f", x); s = ""; n = length(x)
    for (i = 1; i <= n; i++) { s = s substr(x, i, 1); if ((n - i) % 3 == 0 && i < n && substr(x, i, 1) != "-") s = s "," }
    print s }'
}
ms() { [ -n "${1:-}" ] && awk -v x="$1" 'BEGIN { printf (x < 10 ? "%.2f" : (x < 100 ? "%.1f" : "%.0f")), x }' || echo "–"; }
fx() { [ -n "${1:-}" ] && awk -v x="$1" 'BEGIN { printf "%.1f", x }' || echo "–"; }
ratio() {  # a b -> a/b with 2 decimals
  [ -n "${1:-}" ] && [ -n "${2:-}" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "–" }' || echo "–"
}
met() {  # value op target -> yes/no (– when no value)
  [ -n "${1:-}" ] && [ "$1" != "–" ] || { echo "–"; return; }
  awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN {
    ok = (op == ">=") ? x >= t : (op == "<") ? x < t : (op == "<=") ? x <= t : 0
    print (ok ? "**yes**" : "no") }'
}
check() { local c=${F[$1.check]:-}; [ -n "$c" ] && echo "$c" || echo "–"; }

# ---- the report ----
{
echo "# Tally benchmarks, $(v meta.stamp)"
echo
echo "$(v meta.date); $(v meta.machine); $(v meta.tally), git $(v meta.git);" \
     "wrk -t2 -c50, DURATION=$(v meta.duration) each; load generator on the same machine, one run." \
     "\`make bench\` took $(int "$(v meta.seconds)") s ($(for p in workloads sweep sizes peers postgres instructions; do if has "part.$p.seconds"; then printf '%s %s s, ' "$p" "${F[part.$p.seconds]}"; fi; done | sed 's/, $//'))."
loads=$(for p in workloads sweep sizes peers postgres instructions; do if has "part.$p.load"; then printf '%s %s; ' "$p" "${F[part.$p.load]}"; fi; done | sed 's/; $//')
[ -z "$loads" ] || { echo; echo "Load average (1, 5, 15 min) as each part began, a sign of other work on the machine: $loads."; }
failed=""
for p in workloads sweep sizes peers postgres instructions; do
  has "part.$p.rc" && [ "${F[part.$p.rc]}" != 0 ] && failed+=" $p"
done
[ -z "$failed" ] || echo "**Parts that failed a check:$failed** (see their logs in this folder)."
echo

nginx=$(v nginx.rps); ralways=$(v redis-always-p1.rps)
echo "## Goals (issue 12)"
echo
echo "| goal | this run | target | met |"
echo "|---|---|---|---|"
echo "| hot counter / nginx | $(int "$(v hot.rps)") / $(int "$nginx") = $(ratio "$(v hot.rps)" "$nginx") | ≥ 0.9 | $(met "$(ratio "$(v hot.rps)" "$nginx")" '>=' 0.9) |"
echo "| hot counter / Redis \`appendfsync always\` | $(int "$(v hot.rps)") / $(int "$ralways") = $(ratio "$(v hot.rps)" "$ralways") | ≥ 1.2 | $(met "$(ratio "$(v hot.rps)" "$ralways")" '>=' 1.2) |"
echo "| hot counter with keys / nginx | $(int "$(v hot-keys.rps)") / $(int "$nginx") = $(ratio "$(v hot-keys.rps)" "$nginx") | ≥ 0.9 | $(met "$(ratio "$(v hot-keys.rps)" "$nginx")" '>=' 0.9) |"
echo "| hot counter with keys / Redis \`appendfsync always\` | $(int "$(v hot-keys.rps)") / $(int "$ralways") = $(ratio "$(v hot-keys.rps)" "$ralways") | ≥ 1.2 | $(met "$(ratio "$(v hot-keys.rps)" "$ralways")" '>=' 1.2) |"
echo "| batch of 1,000 increments, 8 clients | $(int "$(v batch1000-c8.ops)") increments/s | ≥ 1,000,000 | $(met "$(v batch1000-c8.ops)" '>=' 1000000) |"
echo "| batch of 1,000 increments, 50 clients | $(int "$(v batch1000.ops)") increments/s | ≥ 1,000,000 | $(met "$(v batch1000.ops)" '>=' 1000000) |"
echo "| hot counter p99 at 50 connections | $(ms "$(v hot.p99)") ms | < 2 ms | $(met "$(v hot.p99)" '<' 2) |"
echo "| hot counter p99 at 1,024 connections | $(ms "$(v sweep-1024.p99)") ms | < 20 ms | $(met "$(v sweep-1024.p99)" '<' 20) |"
echo "| point reads (one id) / nginx | $(int "$(v read-hot.rps)") / $(int "$nginx") = $(ratio "$(v read-hot.rps)" "$nginx") | ≥ 0.95 | $(met "$(ratio "$(v read-hot.rps)" "$nginx")" '>=' 0.95) |"
echo "| point reads ($(int "$(v workloads.records)") ids) / nginx | $(int "$(v read-spread.rps)") / $(int "$nginx") = $(ratio "$(v read-spread.rps)" "$nginx") | ≥ 0.95 | $(met "$(ratio "$(v read-spread.rps)" "$nginx")" '>=' 0.95) |"
instr=$(sed -nE 's/^instructions\/request: ([0-9]+).*/\1/p' "$OUT/instructions.log" 2>/dev/null | head -n1)
echo "| instructions per hot-counter request | $(int "$instr") | ≤ 32,675 (half of 65,350 measured at b55aa2e) | $(met "${instr:-}" '<=' 32675) |"
echo "| PostgreSQL: Tally hot / pgbench hot | $(int "$(v pg.tally-hot.rps)") / $(int "$(v pg.pgbench-hot.rps)") = $(ratio "$(v pg.tally-hot.rps)" "$(v pg.pgbench-hot.rps)") | ≥ 10 | $(met "$(ratio "$(v pg.tally-hot.rps)" "$(v pg.pgbench-hot.rps)")" '>=' 10) |"
echo

# ---- 1 ----
echo "## 1. Workloads (Tally on SQLite, durable, wrk -t2 -c50 unless said)"
echo
if ! has hot.rps && ! has spread.rps; then
  echo "(not run: bench/workloads.sh)"
else
  recs=$(int "$(v workloads.records)")
  echo "One server, one data folder of $recs customers (created through \`POST /api/transaction\`, 1,000 a request)." \
       "req/s counts every answer (409 and 429 included); \"check\" is the end check of each run (bench/workloads.sh)."
  echo
  echo "| workload | what | Tally req/s | p50 ms | p99 ms | p99.9 ms | writes/fsync | check | peer in this run | ratio | goal |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  row() {  # name what peer_label peer_rps goal [tally figure]
    local n=$1 fig=${6:-$(int "$(v "$1.rps")")}
    has "$n.rps" || return 0
    echo "| $n | $2 | $fig | $(ms "$(v "$n.p50")") | $(ms "$(v "$n.p99")") | $(ms "$(v "$n.p999")") | $(fx "$(v "$n.wpf")") | $(check "$n") |" \
         "${3:+$3 $(int "$4")} | $( [ -n "$3" ] && ratio "$(v "$n.${7:-rps}")" "$4") | $5 |"
  }
  row hot "\`PATCH /api/customer/1\` \`_atomics\` increment" nginx "$nginx" "≥ 0.9"
  row hot "(the same)" "Redis INCR always" "$ralways" "≥ 1.2"
  row hot-keys "the same, API key required, \`Authorization: Bearer\` on every request" nginx "$nginx" "≥ 0.9"
  row hot-keys "(the same)" "Redis INCR always" "$ralways" "≥ 1.2"
  row spread "the increment on \`/api/customer/<1..$recs>\`" "Redis INCR always" "$ralways" ""
  has reserve.rps && row reserve "guarded decrement (\`_where stock >= 1\`) of one product, 1 in 4 requests a restock; $(awk -v s="$(v reserve.refused_share)" 'BEGIN { printf "%.0f", s * 100 }') % refused (409)" "" "" ""
  has limit.rps && row limit "\`POST /api/limits/bench/k<1..$(int "$(v workloads.limit_keys)")>\` (100/s, burst 100 per key): $(int "$(v limit.allowed)") allowed, $(int "$(v limit.refused)") refused" "" "" ""
  row read-hot "\`GET /api/customer/1\`" nginx "$nginx" "≥ 0.95"
  row read-spread "\`GET /api/customer/<1..$recs>\`" nginx "$nginx" "≥ 0.95"
  for b in batch100 batch1000 batch100-c8 batch1000-c8; do
    has "$b.rps" || continue
    steps=${b#batch}; steps=${steps%-c8}; conns=50; [[ $b == *-c8 ]] && conns=8
    goal=""; [ "$steps" = 1000 ] && goal="≥ 1,000,000 increments/s"
    row "$b" "\`POST /api/transaction\`, $steps increments, customers 1..$(int "$(v workloads.batch_ids)") at random, $conns connections" \
        "Redis INCR always -P 16" "$(v redis-always-p16.rps)" "$goal" \
        "$(int "$(v "$b.rps")") = **$(int "$(v "$b.ops")") increments/s**" ops
  done
  echo
  echo "Writes per fsync: \`tally_writes_total\` / \`tally_fsyncs_total\` from \`/metrics\` over the run (a transaction is one write). Batch rows: the ratio is increments/s against pipelined Redis INCRs/s."
fi
echo

# ---- 2 ----
echo "## 2. Connection sweep (the hot counter)"
echo
if ! has sweep.levels; then
  echo "(not run: bench/sweep.sh)"
else
  echo "A fresh server per level with \`--max-connections $(int "$(v sweep.max_connections)")\` (the default, 1,024, is passed" \
       "by the 1,024 level with the /metrics scrapes, and far by 10,000); wrk -t2 (-t1 for 1 connection) --timeout 10s." \
       "Memory: (highest VmRSS while N connections are open − VmRSS of the fresh server) / N;" \
       "idle = each connection served one request and waits, active = the wrk run."
  echo
  echo "| connections | req/s | p50 ms | p99 ms | p99.9 ms | writes/fsync | socket errors | check | KiB/conn idle | KiB/conn active | goal |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  : > "$OUT/sweep.dat"
  for n in $(v sweep.levels); do
    if ! has "sweep-$n.rps"; then echo "| $(int "$n") | no result: $(v "sweep-$n.note") | | | | | | | | | |"; continue; fi
    goal=""; [ "$n" = 1024 ] && goal="p99 < 20 ms: $(met "$(v sweep-1024.p99)" '<' 20)"
    note=$(v "sweep-$n.note")
    echo "| $(int "$n") | $(int "$(v "sweep-$n.rps")") | $(ms "$(v "sweep-$n.p50")") | $(ms "$(v "sweep-$n.p99")") | $(ms "$(v "sweep-$n.p999")") |" \
         "$(fx "$(v "sweep-$n.wpf")") | $(v "sweep-$n.errors")${note:+ ($note)} | $(check "sweep-$n") | $(fx "$(v "sweep-$n.kb_per_conn_idle")") |" \
         "$(fx "$(v "sweep-$n.kb_per_conn_active")") | $goal |"
    printf '%s %s %s %s %s\n' "$n" "$(v "sweep-$n.rps")" "$(v "sweep-$n.p50")" "$(v "sweep-$n.p99")" "$(v "sweep-$n.p999")" >> "$OUT/sweep.dat"
  done
  echo
  echo "![connection sweep](sweep.png)"
fi
echo

# ---- 3 ----
echo "## 3. Size sweep (the spread counter)"
echo
if ! has sizes.list; then
  echo "(not run: bench/sizes.sh)"
else
  echo "A fresh server per size; the customers created through \`POST /api/transaction\` (1,000 creates a request, 4 at once)," \
       "then \`PATCH /api/customer/<1..N>\` with an increment."
  echo
  echo "| records | creation s | creates/s | data folder MiB | req/s | p50 ms | p99 ms | p99.9 ms | writes/fsync | check |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  : > "$OUT/sizes.dat"
  for n in $(v sizes.list); do
    has "size-$n.rps" || { echo "| $(int "$n") | (no result) | | | | | | | | |"; continue; }
    echo "| $(int "$n") | $(v "size-$n.create_s") | $(int "$(v "size-$n.create_rate")") | $(awk -v b="$(v "size-$n.db_bytes")" 'BEGIN { printf "%.1f", b / 1048576 }') |" \
         "$(int "$(v "size-$n.rps")") | $(ms "$(v "size-$n.p50")") | $(ms "$(v "size-$n.p99")") | $(ms "$(v "size-$n.p999")") | $(fx "$(v "size-$n.wpf")") | $(check "size-$n") |"
    printf '%s %s %s %s\n' "$n" "$(v "size-$n.rps")" "$(v "size-$n.p99")" "$(v "size-$n.create_rate")" >> "$OUT/sizes.dat"
  done
  echo
  echo "![size sweep](sizes.png)"
fi
echo

# ---- 4 ----
echo "## 4. Peers in this run"
echo
if ! has nginx.rps && ! has redis-always-p1.rps; then
  echo "(not run: bench/peers.sh)"
else
  echo "| peer | what | req/s | p50 ms | p99 ms | Tally's figure next to it | Tally / peer |"
  echo "|---|---|---|---|---|---|---|"
  has nginx.rps && echo "| nginx | \`GET /json\`, constant 17 bytes, no storage (HTTP ceiling), wrk -t2 -c50 | $(int "$nginx") | $(ms "$(v nginx.p50)") | $(ms "$(v nginx.p99)") | hot counter $(int "$(v hot.rps)") | $(ratio "$(v hot.rps)" "$nginx") |"
  for m in always everysec; do
    for p in 1 16; do
      n=redis-$m-p$p
      has "$n.rps" || continue
      echo "| Redis $m$( ((p > 1)) && echo ", -P $p") | INCR one key, appendonly, \`appendfsync $m\`, 50 clients$( ((p > 1)) && echo ", $p in flight each") |" \
           "$(int "$(v "$n.rps")") | $(ms "$(v "$n.p50")") | $(ms "$(v "$n.p99")") |" \
           "$( ((p > 1)) && echo "batch1000-c8 $(int "$(v batch1000-c8.ops)") increments/s | $(ratio "$(v batch1000-c8.ops)" "$(v "$n.rps")")" || echo "hot counter $(int "$(v hot.rps)") | $(ratio "$(v hot.rps)" "$(v "$n.rps")")") |"
    done
  done
fi
echo
echo "### PostgreSQL (bench/postgres.sh: one throwaway PostgreSQL, fsync on, 50 connections)"
echo
if ! has pg.tally-hot.rps && ! has pg.pgbench-hot.rps; then
  echo "(not run: bench/postgres.sh)"
else
  echo "| run | what | req/s | p50 ms | p99 ms | writes/commit | against pgbench | goal |"
  echo "|---|---|---|---|---|---|---|---|"
  pgrow() {  # run what peer goal
    has "pg.$1.rps" || return 0
    echo "| $1 | $2 | $(int "$(v "pg.$1.rps")") | $(ms "$(v "pg.$1.p50")") | $(ms "$(v "pg.$1.p99")") | $(fx "$(v "pg.$1.wpc")") |" \
         "$( [ -n "$3" ] && echo "$(ratio "$(v "pg.$1.rps")" "$(v "pg.$3.rps")") × $3") | $4 |"
  }
  rows=$(int "$(v pg.rows)")
  pgrow tally-hot "Tally, \`PATCH\` increment of one row" pgbench-hot "≥ 10: $(met "$(ratio "$(v pg.tally-hot.rps)" "$(v pg.pgbench-hot.rps)")" '>=' 10)"
  pgrow tally-spread "Tally, the increment on 1..$rows" pgbench-spread ""
  pgrow tally-hot-3 "Tally, the hot row through 3 servers" pgbench-hot ""
  for l in $(v pg.lanes_sweep); do pgrow "tally-lanes-$l" "Tally, the spread with \`--lanes $l\`" pgbench-spread ""; done
  pgrow pgbench-hot "pgbench \`UPDATE … SET n = n + 1 WHERE id = 1 RETURNING n\`" "" ""
  pgrow pgbench-spread "pgbench, the same on 1..$rows" "" ""
fi
echo

# ---- 5 ----
echo "## 5. Instructions per hot-counter request (callgrind)"
echo
if [ -z "${instr:-}" ]; then
  echo "(not run: bench/instructions.sh)"
else
  echo "$(grep -E 'requests: ' "$OUT/instructions.log" | head -n1)"
  echo
  echo "**$(int "$instr") instructions per request** (every server thread, under valgrind; compare with other runs of" \
       "bench/instructions.sh, not with wrk). Goal: at most half of 65,350 (measured at b55aa2e): $(met "$instr" '<=' 32675)."
  echo
  echo "| instructions/request | share | function | file [object] |"
  echo "|---|---|---|---|"
  # instructions.sh: "  5315   8.89%  file:function [object]"
  awk '/^top functions/ { on = 1; next }
    on && $1 ~ /^[0-9]+$/ && shown < 15 {
      n = $1; pct = $2; $1 = ""; $2 = ""; sub(/^ +/, ""); rest = $0; obj = ""
      if (match(rest, / \[[^]]*\]$/)) { obj = substr(rest, RSTART + 2, RLENGTH - 3); rest = substr(rest, 1, RSTART - 1) }
      fn = rest; file = ""
      if (match(rest, /:[^:]*$/)) { fn = substr(rest, RSTART + 1); file = substr(rest, 1, RSTART - 1) }
      sub(/.*\//, "", obj); gsub(/\|/, "\\|", fn)
      printf "| %s | %s | `%s` | %s [%s] |\n", n, pct, fn, file, obj; shown++ }' "$OUT/instructions.log"
  read_instr=$(sed -nE 's/^instructions\/request: ([0-9]+).*/\1/p' "$OUT/instructions-read.log" 2>/dev/null | head -n1)
  if [ -n "$read_instr" ]; then
    echo
    echo "A point read (\`GET /api/customer/1\`, WORKLOAD=read): **$(int "$read_instr") instructions per request**" \
         "(50,545 at b55aa2e, the same 16 connections)."
  fi
fi
echo

echo "## Charts"
echo
echo "![workloads and peers](workloads.png)"
echo
echo "Raw output of each part: \`workloads.log\`, \`sweep.log\`, \`sizes.log\`, \`peers.log\`, \`postgres.log\`, \`instructions.log\`; every figure: \`figures.tsv\`."
} > "$REPORT"

# ---- charts ----
if command -v gnuplot >/dev/null; then
  # the bar chart: operations per second of each workload and peer (log scale)
  : > "$OUT/workloads.dat"
  bar() { has "$2" && printf '"%s" %s %s\n' "$1" "${F[$2]}" "$3" >> "$OUT/workloads.dat"; return 0; }
  bar "nginx" nginx.rps 2
  bar "hot" hot.rps 1; bar "hot+keys" hot-keys.rps 1; bar "spread" spread.rps 1
  bar "reserve" reserve.rps 1; bar "limit" limit.rps 1
  bar "read hot" read-hot.rps 1; bar "read spread" read-spread.rps 1
  bar "batch100 (incr)" batch100.ops 1; bar "batch1000 (incr)" batch1000.ops 1
  bar "batch100 c8 (incr)" batch100-c8.ops 1; bar "batch1000 c8 (incr)" batch1000-c8.ops 1
  bar "Redis always" redis-always-p1.rps 2; bar "Redis always P16" redis-always-p16.rps 2
  bar "Redis everysec" redis-everysec-p1.rps 2; bar "Redis everysec P16" redis-everysec-p16.rps 2
  bar "PG: Tally hot" pg.tally-hot.rps 1; bar "PG: Tally spread" pg.tally-spread.rps 1
  bar "pgbench hot" pg.pgbench-hot.rps 2; bar "pgbench spread" pg.pgbench-spread.rps 2
  gp() { gnuplot 2>"$OUT/gnuplot.err" || { echo "report: gnuplot failed on $1:"; cat "$OUT/gnuplot.err"; }; }
  if [ -s "$OUT/workloads.dat" ]; then
    gp workloads.png <<EOF
set terminal pngcairo size 1200,650 font "DejaVu Sans,10"
set output "$OUT/workloads.png"
set title "Workloads and peers, $(v meta.stamp): operations per second (requests; increments for batches), log scale"
set style fill solid 0.85 border -1
set boxwidth 0.7
set logscale y
set ylabel "operations/s"
set grid ytics
set xtics rotate by -40 left nomirror
set format y "%.0f"
set bmargin 8
set rmargin 10
set key top left
set yrange [100:4000000]
$( has nginx.rps && echo "set arrow from graph 0, first ${F[nginx.rps]} to graph 1, first ${F[nginx.rps]} nohead dt 2 lc rgb 'gray40'
set label 'nginx: the HTTP ceiling' at graph 0.99, first ${F[nginx.rps]} right offset 0,0.6 font ',8' tc rgb 'gray40'" )
set arrow from graph 0, first 1000000 to graph 1, first 1000000 nohead dt 3 lc rgb 'red'
set label 'goal: a batch of 1,000 at 1,000,000 increments/s' at graph 0.99, first 1000000 right offset 0,0.6 font ',8' tc rgb 'red'
plot "$OUT/workloads.dat" using 0:(\$3 == 1 ? \$2 : 1/0):xtic(1) with boxes lc rgb "#2a6fb0" title "Tally", \
     "" using 0:(\$3 == 2 ? \$2 : 1/0) with boxes lc rgb "#b0502a" title "peer", \
     "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.6 font ",8" notitle
EOF
  fi
  if [ -s "$OUT/sweep.dat" ]; then
    gp sweep.png <<EOF
set terminal pngcairo size 1000,800 font "DejaVu Sans,10"
set output "$OUT/sweep.png"
set multiplot layout 2,1 title "Hot counter, connection sweep ($(v meta.stamp))"
set logscale x
set xrange [0.7:15000]
set grid
set xlabel "connections"
set ylabel "requests/s"
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set format y "%.0f"
plot "$OUT/sweep.dat" using 1:2 with linespoints lw 2 pt 7 lc rgb "#2a6fb0" title "requests/s", \
     "" using 1:2:(sprintf("%.0f", \$2)) with labels offset 0,1 font ",8" notitle
set logscale y
set yrange [*:*]
set offsets 0, 0, 0, 0
set ylabel "latency, ms (log)"
set format y "%g"
set key bottom right opaque box
plot "$OUT/sweep.dat" using 1:3 with linespoints lw 2 pt 7 title "p50", \
     "" using 1:4 with linespoints lw 2 pt 5 title "p99", \
     "" using 1:5 with linespoints lw 2 pt 9 title "p99.9", \
     20 with lines dt 2 lc rgb "red" title "goal: p99 < 20 ms at 1,024", \
     2 with lines dt 3 lc rgb "orange" title "goal: p99 < 2 ms at 50"
unset multiplot
EOF
  fi
  if [ -s "$OUT/sizes.dat" ]; then
    gp sizes.png <<EOF
set terminal pngcairo size 1000,500 font "DejaVu Sans,10"
set output "$OUT/sizes.png"
set title "Spread counter over N records ($(v meta.stamp))"
set logscale x
set xrange [300:30000000]
set format x "10^{%L}"
set grid
set xlabel "records"
set ylabel "requests/s"
set y2label "p99, ms"
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
set y2tics
set key bottom left
plot "$OUT/sizes.dat" using 1:2 with linespoints lw 2 pt 7 lc rgb "#2a6fb0" title "requests/s (left)", \
     "" using 1:2:(sprintf("%.0f", \$2)) with labels offset 0,1 font ",8" notitle, \
     "" using 1:3 axes x1y2 with linespoints lw 2 pt 5 lc rgb "#b0502a" title "p99 ms (right)"
EOF
  fi
  rm -f "$OUT/gnuplot.err"
else
  echo "report: gnuplot not found (scripts/deps.sh bench installs gnuplot-nox): no charts" >&2
fi

cat "$REPORT"
echo
echo "report: $REPORT$(ls "$OUT"/*.png >/dev/null 2>&1 && echo ", charts: $(cd "$OUT" && ls *.png | tr '\n' ' ')")"
