-- latency.lua — for a peer whose requests need nothing from a script (nginx):
-- only done(), so wrk keeps sending its one fixed request without calling
-- Lua per request, and prints p99.9 (see report.lua).
--
--   wrk -t2 -c50 -d5s --latency -s bench/lua/latency.lua http://127.0.0.1:PORT/json

dofile("bench/lua/report.lua")

function done(summary, latency, requests)
   bench_report(summary, latency)
end
