-- common.lua — what every Tally workload script shares (loaded with
-- dofile() from the repository's root, so wrk runs from there):
--
--  * each wrk thread counts the requests it sent and the answers it got (2xx
--    and the rest, by status), plus any counters a script adds with
--    bench.count(name); done() adds the threads up and prints
--      NAME: sent=N answered=N ok2xx=N non2xx=N unanswered=N
--      status: 409 x N              (one line per non-2xx status)
--      count: NAME N                (one line per bench.count name)
--    and the latency and summary lines of report.lua;
--  * TALLY_BENCH_TOKEN: when set, every request carries
--    Authorization: Bearer TOKEN (bench.headers());
--  * TALLY_BENCH_DELAY_MS: when set, each connection waits that long after
--    an answer before its next request (wrk's delay()); with
--    TALLY_BENCH_UNDELAYED = connections per thread, each connection's first
--    request goes at once: idle keep-alive connections that have served one
--    request, for the memory measurement of bench/sweep.sh.
--
-- A script sets bench.name, defines bench.request() (returns the request's
-- bytes, built with wrk.format) and optionally bench.init() (per thread,
-- after the counters are set up) and bench.response(status, headers, body).
-- "unanswered" are requests written when wrk's time ran out whose answers it
-- never read: the server may or may not have applied them.

dofile("bench/lua/report.lua")

bench = { name = "wrk" }

function bench.env(name)  -- an environment variable; unset or empty: nil
   local v = os.getenv(name)
   if v == "" then return nil end
   return v
end

bench.token = bench.env("TALLY_BENCH_TOKEN")

function bench.headers(h)
   h = h or {}
   if bench.token then h["Authorization"] = "Bearer " .. bench.token end
   return h
end

function bench.count(name)
   counts[name] = (counts[name] or 0) + 1
end

local threads = {}
local nthreads = 0

function setup(thread)
   nthreads = nthreads + 1
   thread:set("seed", nthreads)
   table.insert(threads, thread)
end

-- Per-thread state: globals, so that done() can read them with thread:get().
function init(args)
   sent, answered, ok2xx, non2xx = 0, 0, 0, 0
   statuses, counts = {}, {}
   math.randomseed(os.time() * 100 + (seed or 0))
   if bench.init then bench.init(args) end
end

-- Defining request() makes wrk ask Lua for each request, which is what lets
-- us count them.
function request()
   sent = sent + 1
   return bench.request()
end

function response(status, headers, body)
   answered = answered + 1
   if status >= 200 and status < 300 then
      ok2xx = ok2xx + 1
   else
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
   end
   if bench.response then bench.response(status, headers, body) end
end

-- wrk asks delay() before every request of a connection, its first one
-- included: the first TALLY_BENCH_UNDELAYED requests of each thread (its
-- connections' first ones) go at once, every later one after the delay.
local delay_ms = tonumber(bench.env("TALLY_BENCH_DELAY_MS") or "")
local undelayed = tonumber(bench.env("TALLY_BENCH_UNDELAYED") or "") or 0
if delay_ms then
   function delay()
      delays = (delays or 0) + 1
      if delays <= undelayed then return 0 end
      return delay_ms
   end
end

function done(summary, latency, requests)
   local s, a, ok, bad = 0, 0, 0, 0
   local by_status, by_name = {}, {}
   for _, t in ipairs(threads) do
      s = s + t:get("sent")
      a = a + t:get("answered")
      ok = ok + t:get("ok2xx")
      bad = bad + t:get("non2xx")
      for code, n in pairs(t:get("statuses")) do by_status[code] = (by_status[code] or 0) + n end
      for name, n in pairs(t:get("counts")) do by_name[name] = (by_name[name] or 0) + n end
   end
   io.write(string.format("%s: sent=%d answered=%d ok2xx=%d non2xx=%d unanswered=%d\n",
                          bench.name, s, a, ok, bad, s - a))
   for code, n in pairs(by_status) do io.write(string.format("status: %d x %d\n", code, n)) end
   for name, n in pairs(by_name) do io.write(string.format("count: %s %d\n", name, n)) end
   bench_report(summary, latency)
end
