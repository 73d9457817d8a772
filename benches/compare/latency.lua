-- Fixed offered rate for latency: every connection waits `gap` ms before each
-- request, so C connections offer C*1000/gap req/s. No response hook: wrk then
-- skips header parsing in Lua, which would load the measuring core itself.
local gap = 10

function init(args)
  gap = tonumber(args[1]) or 10
end

function delay()
  return gap
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
