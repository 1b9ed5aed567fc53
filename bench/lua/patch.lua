-- wrk script: the atomic-increment counter against Tally (hot or spread).
--
--   wrk -t2 -c50 -d5s --latency -s bench/lua/patch.lua http://127.0.0.1:PORT
--
-- Every request is PATCH /api/customer/1 (or $TALLY_BENCH_PATH) with
-- {"_atomics":{"orderCount":{"increment":1}}}. Counting and the closing
-- lines come from bench/lua/common.lua; the first one is
--
--   patch.lua: sent=N answered=N ok2xx=N non2xx=N unanswered=N
--
-- and the stored count must have grown by between ok2xx and ok2xx +
-- unanswered (exactly ok2xx when nothing was left in flight).
--
-- Environment (besides common.lua's TALLY_BENCH_TOKEN and TALLY_BENCH_DELAY_MS):
--   TALLY_BENCH_PATH  the path (default /api/customer/1)
--   TALLY_BENCH_BODY  the body instead of the orderCount increment
--   TALLY_BENCH_IDS=N each request goes to TALLY_BENCH_PATH .. "/" .. id with
--                     id uniform in 1..N (the "spread" workload)

dofile("bench/lua/common.lua")
bench.name = "patch.lua"

local path = bench.env("TALLY_BENCH_PATH") or "/api/customer/1"
local body = bench.env("TALLY_BENCH_BODY") or '{"_atomics":{"orderCount":{"increment":1}}}'
local ids = tonumber(bench.env("TALLY_BENCH_IDS") or "")
local req

function bench.init()
   req = wrk.format("PATCH", path, bench.headers({ ["Content-Type"] = "application/json" }), body)
end

-- The bytes are built once in init(); per request only with TALLY_BENCH_IDS.
function bench.request()
   if ids then
      return wrk.format("PATCH", path .. "/" .. math.random(ids),
                        bench.headers({ ["Content-Type"] = "application/json" }), body)
   end
   return req
end
