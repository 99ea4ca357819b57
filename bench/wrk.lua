-- wrk script used by bench/run.ts when wrk is installed (run with -t1: one thread, one Lua state).
-- BENCH_REQUESTS: a TSV file of "METHOD<TAB>PATH<TAB>BODY" lines, cycled in order (so a list of unique
-- requests hands each one out once). BENCH_AUTHORIZATION: the Authorization header value.
-- done() prints one JSON line: requests, seconds, p50/p99 in ms, non-2xx/3xx and socket errors.

local requests = {}
local count = 0
local index = 0

local function load()
  local file = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
  local headers = { ["Authorization"] = os.getenv("BENCH_AUTHORIZATION"), ["Accept"] = "application/json" }
  for line in file:lines() do
    if line ~= "" then
      local method, path, body = line:match("^([^\t]*)\t([^\t]*)\t?(.*)$")
      local h = {}
      for k, v in pairs(headers) do h[k] = v end
      if body == "" then
        body = nil
      else
        h["Content-Type"] = "application/json"
      end
      count = count + 1
      requests[count] = wrk.format(method, path, h, body)
    end
  end
  file:close()
end

function init(_)
  load()
end

function request()
  index = index % count + 1
  return requests[index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"tool":"wrk","requests":%d,"seconds":%.6f,"p50":%.6f,"p99":%.6f,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
