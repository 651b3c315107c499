-- wrk report for the bench's readpath step: the bearer token from FP_TOKEN (never in argv or a
-- URL), and one JSON line at the end with the counts and latency percentiles (microseconds).
-- errors.status counts answers with a status of 400 or more (wrk's own "non-2xx or 3xx").
local token = os.getenv("FP_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
