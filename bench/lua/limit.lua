-- wrk script: a rate limiter over many keys (bench/workloads.sh).
--
-- Each request is POST /api/limits/NAME/k<id>, id uniform in 1..KEYS, no
-- body (cost 1): 200 allowed, 429 RATE_LIMITED refused. Both are answers a
-- limiter gives; anything else is counted as non-2xx "other".
--   count: allowed N / refused N / other N
--
-- Environment: TALLY_BENCH_LIMIT (default bench), TALLY_BENCH_KEYS (10000).

dofile("bench/lua/common.lua")
bench.name = "limit.lua"

local name = bench.env("TALLY_BENCH_LIMIT") or "bench"
local keys = tonumber(bench.env("TALLY_BENCH_KEYS") or "") or 10000

function bench.request()
   return wrk.format("POST", "/api/limits/" .. name .. "/k" .. math.random(keys), bench.headers())
end

function bench.response(status)
   if status == 200 then bench.count("allowed")
   elseif status == 429 then bench.count("refused")
   else bench.count("other") end
end
