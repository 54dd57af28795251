-- Shared by the wrk scripts: load bearer tokens, print one RESULT line wrk's output can't get
-- wrong (requests/s, p50/p99 in ms, non-2xx count).
tokens = {}
local f = os.getenv("TOKENS")
if f then for line in io.lines(f) do tokens[#tokens + 1] = line end end
counter = 0

function next_token()
  counter = counter + 1
  return tokens[(counter % #tokens) + 1]
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f max=%.3f requests=%d errors=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.requests, bad))
end
