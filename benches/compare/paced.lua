-- Fixed offered rate below saturation: every connection waits `gap` ms before
-- each request (wrk's delay hook), so C connections offer C*1000/gap req/s.
-- Counts which version answered (x-version header) and prints p50/p99/p99.9.
local gap = 10
local threads = {}
counts = {}  -- global: read by thread:get() in done()

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  gap = tonumber(args[1]) or 10
  counts = { stable = 0, canary = 0, other = 0 }
end

function delay()
  return gap
end

function response(status, headers, body)
  local v = headers["x-version"] or headers["X-Version"]
  if v == "stable" or v == "canary" then
    counts[v] = counts[v] + 1
  else
    counts.other = counts.other + 1
  end
end

function done(summary, latency, requests)
  local s, c, o = 0, 0, 0
  for _, t in ipairs(threads) do
    local tc = t:get("counts")
    s = s + tc.stable; c = c + tc.canary; o = o + tc.other
  end
  io.write(string.format("RESULT requests=%d errors=%d p50_us=%d p99_us=%d p999_us=%d stable=%d canary=%d other=%d\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), s, c, o))
end
