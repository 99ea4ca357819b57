-- wrk script used by bench/run.ts when wrk is installed (run with -t1: one thread, one Lua state).
-- BENCH_REQUESTS: a TSV file of "METHOD<TAB>PATH<TAB>BODY[<TAB>Header-Name: value ...]" lines, cycled in
-- order (so a list of unique requests hands each one out once). BENCH_AUTHORIZATION: the Authorization
-- header value. done() prints one JSON line: requests, seconds, p50/p99 in ms, non-2xx/3xx and socket errors.

local requests = {}
local count = 0
local index = 0

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = field end
  return fields
end

local function load()
  local file = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
  local headers = { ["Authorization"] = os.getenv("BENCH_AUTHORIZATION"), ["Accept"] = "application/json" }
  for line in file:lines() do
    if line ~= "" then
      local fields = split(line)
      local method, path, body = fields[1], fields[2], fields[3] or ""
      local h = {}
      for k, v in pairs(headers) do h[k] = v end
      for i = 4, #fields do
        local name, value = fields[i]:match("^([^:]+):%s*(.*)$")
        if name then h[name] = value end
      end
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
