-- Shared by every scenario: one JSON line with the run's numbers when wrk finishes.
-- `admitted_p99` bounds the p99 of the answered-without-error requests from above: with a
-- share f of error statuses (e.g. fast 503s), at least 99 % of the admitted requests are at
-- or below the overall quantile f + 0.99 (1 - f), whatever the two latencies are.
function done(summary, latency, requests)
  local e = summary.errors
  local f = 0
  if summary.requests > 0 then f = e.status / summary.requests end
  local q = math.min(100, 100 * (f + 0.99 * (1 - f)))
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f, ' ..
    '"admitted_p99": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean, latency:percentile(q)))
end
