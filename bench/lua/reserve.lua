-- wrk script: guarded reservation of one product's stock (bench/workloads.sh).
--
-- Each request, at random:
--   reserve (share 1 - R): PATCH /api/product/ID
--        {"_where":{"stock":{"greaterThanOrEqual":1}},"_atomics":{"stock":{"decrement":1}}}
--        200 when a unit was there, 409 GUARD_FAILED (nothing changed) when not;
--   restock (share R):     PATCH /api/product/ID {"_atomics":{"stock":{"increment":1}}}
-- With R = 0.25 (TALLY_BENCH_RESTOCK), reservations outnumber restocks three
-- to one, the stock sits near 0, and every reservation a restock did not
-- cover is refused: about half of all requests get 409.
--
-- Each request carries X-Request-Id "restock" or "reserve", which Tally
-- echoes, so each answer is counted by kind (count: restock_ok, reserve_ok,
-- reserve_refused, other); bench/workloads.sh checks that the stored stock
-- moved by exactly restock_ok - reserve_ok (give or take what was in flight).
--
-- Environment: TALLY_BENCH_PATH (default /api/product/1), TALLY_BENCH_RESTOCK.

dofile("bench/lua/common.lua")
bench.name = "reserve.lua"

local path = bench.env("TALLY_BENCH_PATH") or "/api/product/1"
local share = tonumber(bench.env("TALLY_BENCH_RESTOCK") or "") or 0.25
local reserve, restock

function bench.init()
   local h = { ["Content-Type"] = "application/json" }
   h["X-Request-Id"] = "reserve"
   reserve = wrk.format("PATCH", path, bench.headers(h),
                        '{"_where":{"stock":{"greaterThanOrEqual":1}},"_atomics":{"stock":{"decrement":1}}}')
   h["X-Request-Id"] = "restock"
   restock = wrk.format("PATCH", path, bench.headers(h), '{"_atomics":{"stock":{"increment":1}}}')
end

function bench.request()
   if math.random() < share then return restock end
   return reserve
end

function bench.response(status, headers, body)
   local kind = headers["x-request-id"] or headers["X-Request-Id"] or "?"
   if status == 200 then
      bench.count(kind .. "_ok")
   elseif status == 409 and kind == "reserve" then
      bench.count("reserve_refused")
   else
      bench.count("other")
   end
end
