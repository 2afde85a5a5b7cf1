-- Shared by every scenario: one JSON line with the run's numbers when wrk finishes.
--
-- wrk keeps one latency histogram for every response, errors included. With
-- BENCH_TRACK_ADMITTED=1, requests built by `bench_request` carry an X-Request-ID that Keel echoes;
-- `response` pairs it with the send time and keeps the latency of each answer, and `done`
-- reports the exact p99 of the 2xx/3xx ones as `admitted_p99` (the overload bench's
-- "admitted requests keep p99 < 1 s") and of the others as `refused_p99` (the overload
-- guard's 503s). Without it, `admitted_p99` is the overall p99 and nothing is refused.
local track = os.getenv("BENCH_TRACK_ADMITTED") == "1"
local threads = {}
local started, seq, now_us = {}, 0, nil
admitted, refused = {}, {}

if track then
  local ffi = require("ffi")
  pcall(ffi.cdef, [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk, bench_timespec *ts);
  ]])
  local ts = ffi.new("bench_timespec")
  now_us = function()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
  end
end

function setup(thread)
  thread:set("thread_no", #threads + 1)
  threads[#threads + 1] = thread
end

-- wrk.format, plus the tracking id when tracking is on.
function bench_request(method, path, headers, body)
  if not track then return wrk.format(method, path, headers, body) end
  seq = seq + 1
  local id = string.format("bench-%d-%d", thread_no or 0, seq)
  local all = {} -- wrk.format takes the given headers instead of wrk.headers, not as well
  for name, value in pairs(wrk.headers) do all[name] = value end
  for name, value in pairs(headers or {}) do all[name] = value end
  all["X-Request-ID"] = id
  started[id] = now_us()
  return wrk.format(method, path, all, body)
end

if track then
  function response(status, headers, body)
    local id = headers["x-request-id"] or headers["X-Request-ID"]
    local t0 = id and started[id]
    if t0 then
      started[id] = nil
      if status < 400 then
        admitted[#admitted + 1] = now_us() - t0
      else
        refused[#refused + 1] = now_us() - t0
      end
    end
  end
end

-- Every thread's tracked latencies of one kind ("admitted" or "refused"), sorted.
local function gathered(name)
  local all = {}
  for _, thread in ipairs(threads) do
    local got = thread:get(name)
    if got then
      for _, v in ipairs(got) do all[#all + 1] = v end
    end
  end
  table.sort(all)
  return all
end

local function p99_of(sorted)
  return sorted[math.max(1, math.ceil(0.99 * #sorted))]
end

-- The p99 and mean of the tracked answers (the overall ones when nothing was tracked).
local function admitted_stats(overall_p99, overall_mean)
  local all = gathered("admitted")
  if #all == 0 then return overall_p99, overall_mean end
  local sum = 0
  for _, v in ipairs(all) do sum = sum + v end
  return p99_of(all), sum / #all
end

function done(summary, latency, requests)
  local e = summary.errors
  local p99 = latency:percentile(99)
  local a_p99, a_mean = admitted_stats(p99, latency.mean)
  local no = gathered("refused")
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f, ' ..
    '"admitted_p99": %d, "admitted_mean": %.1f, "refused": %d, "refused_p99": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    p99, latency.max, latency.mean, a_p99, a_mean, #no, #no > 0 and p99_of(no) or 0))
end
