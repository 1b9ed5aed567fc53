-- wrk script: point reads, GET /api/customer/<id> (bench/workloads.sh).
--
-- Environment (besides common.lua's):
--   TALLY_BENCH_PATH  default /api/customer
--   TALLY_BENCH_IDS=N id uniform in 1..N (spread); unset: always id 1 (hot)

dofile("bench/lua/common.lua")
bench.name = "read.lua"

local path = bench.env("TALLY_BENCH_PATH") or "/api/customer"
local ids = tonumber(bench.env("TALLY_BENCH_IDS") or "")
local req

function bench.init()
   req = wrk.format("GET", path .. "/1", bench.headers())
end

function bench.request()
   if ids then return wrk.format("GET", path .. "/" .. math.random(ids), bench.headers()) end
   return req
end
