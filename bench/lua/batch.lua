-- wrk script: batch transactions of increments (bench/workloads.sh).
--
-- Each request is POST /api/transaction with STEPS steps
--   {"update":"customer","id":ID,"data":{"_atomics":{"orderCount":{"increment":1}}}}
-- each on an id uniform in 1..IDS: all applied or none. Every thread builds
-- 32 such bodies in init() and sends them in turn (building 1,000 steps per
-- request would cost the load generator more than the server's answer).
-- The stored sum of orderCount must grow by STEPS per 2xx answer.
--
-- Environment: TALLY_BENCH_STEPS (default 100), TALLY_BENCH_IDS (1000).

dofile("bench/lua/common.lua")
bench.name = "batch.lua"

local steps = tonumber(bench.env("TALLY_BENCH_STEPS") or "") or 100
local ids = tonumber(bench.env("TALLY_BENCH_IDS") or "") or 1000
local reqs, n = {}, 0

function bench.init()
   for b = 1, 32 do
      local parts = {}
      for i = 1, steps do
         parts[i] = '{"update":"customer","id":' .. math.random(ids) ..
                    ',"data":{"_atomics":{"orderCount":{"increment":1}}}}'
      end
      reqs[b] = wrk.format("POST", "/api/transaction", bench.headers({ ["Content-Type"] = "application/json" }),
                           '{"steps":[' .. table.concat(parts, ",") .. ']}')
   end
end

function bench.request()
   n = n % #reqs + 1
   return reqs[n]
end
