-- wrk script: the hot-row atomic increment against Tally.
--
--   wrk -t2 -c50 -d10s --latency -s bench/patch.lua http://127.0.0.1:PORT
--
-- Every request is PATCH /api/customer/1 (or $TALLY_BENCH_PATH) with
-- {"_atomics":{"orderCount":{"increment":1}}}. Each wrk thread counts the
-- requests it sent and the answers it got (2xx and the rest, by status);
-- done() adds the threads up and prints one line that bench/run.sh reads:
--
--   patch.lua: sent=N answered=N ok2xx=N non2xx=N unanswered=N
--
-- "unanswered" are requests wrk had written when the time ran out and whose
-- answers it never read: the server may or may not have applied them, so the
-- final orderCount must lie between ok2xx and ok2xx + unanswered (exactly
-- ok2xx when nothing was left in flight).
--
-- bench/postgres.sh also sets (bench/run.sh does not, so its requests are
-- the ones above):
--   TALLY_BENCH_BODY  the body instead of the orderCount increment
--   TALLY_BENCH_IDS=N each request goes to TALLY_BENCH_PATH .. "/" .. id with
--                     id uniform in 1..N (the "spread" workload)

local path = os.getenv("TALLY_BENCH_PATH") or "/api/customer/1"
local body = os.getenv("TALLY_BENCH_BODY") or '{"_atomics":{"orderCount":{"increment":1}}}'
local ids = tonumber(os.getenv("TALLY_BENCH_IDS") or "")
local nthreads = 0

local threads = {}

function setup(thread)
   nthreads = nthreads + 1
   thread:set("seed", nthreads)
   table.insert(threads, thread)
end

-- Per-thread state: globals, so that done() can read them with thread:get().
function init(args)
   sent, answered, ok2xx, non2xx = 0, 0, 0, 0
   statuses = {}
   req = wrk.format("PATCH", path, { ["Content-Type"] = "application/json" }, body)
   if ids then math.randomseed(os.time() * 100 + (seed or 0)) end
end

-- Defining request() makes wrk ask for each request, which is what lets us
-- count them; the bytes are built once in init() (per request only with
-- TALLY_BENCH_IDS, whose path changes).
function request()
   sent = sent + 1
   if ids then
      return wrk.format("PATCH", path .. "/" .. math.random(ids), { ["Content-Type"] = "application/json" }, body)
   end
   return req
end

function response(status, headers, resp_body)
   answered = answered + 1
   if status >= 200 and status < 300 then
      ok2xx = ok2xx + 1
   else
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local s, a, ok, bad = 0, 0, 0, 0
   local by_status = {}
   for _, t in ipairs(threads) do
      s = s + t:get("sent")
      a = a + t:get("answered")
      ok = ok + t:get("ok2xx")
      bad = bad + t:get("non2xx")
      for code, n in pairs(t:get("statuses")) do
         by_status[code] = (by_status[code] or 0) + n
      end
   end
   io.write(string.format("patch.lua: sent=%d answered=%d ok2xx=%d non2xx=%d unanswered=%d\n",
                          s, a, ok, bad, s - a))
   for code, n in pairs(by_status) do
      io.write(string.format("patch.lua: status %d x %d\n", code, n))
   end
end
