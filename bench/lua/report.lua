-- report.lua — the lines every wrk script of bench/ prints at its end, read
-- by bench/lib.sh (wrk_figures). Loaded with dofile() from the repository's
-- root, by common.lua and latency.lua.
--
--   latency_us: p50=N p90=N p99=N p999=N max=N      (per request, µs)
--   summary: requests=N duration_us=N connect_errors=N read_errors=N write_errors=N status_errors=N timeouts=N
--
-- wrk --latency prints 50/75/90/99 % only; p99.9 comes from here.

function bench_report(summary, latency)
   io.write(string.format("latency_us: p50=%d p90=%d p99=%d p999=%d max=%d\n",
                          latency:percentile(50), latency:percentile(90), latency:percentile(99),
                          latency:percentile(99.9), latency.max))
   local e = summary.errors
   io.write(string.format("summary: requests=%d duration_us=%d connect_errors=%d read_errors=%d write_errors=%d status_errors=%d timeouts=%d\n",
                          summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
