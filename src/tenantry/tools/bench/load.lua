-- wrk script for `tenantry bench`: rotates through a file of requests and prints one JSON line.
-- Arguments (after `--`): the requests file, and a nonce that makes created SKUs unique per run.
-- Each line of the file: METHOD \t PATH \t TOKEN or - \t TENANT or - \t BODY or -
-- A body's "{n}" becomes nonce-thread-counter, so every create carries a SKU never used before.

local specs = {}
local counter = 0
local nonce = "x"
local count = 0
tid = 0

function setup(thread)
  count = count + 1
  thread:set("tid", count)
end

function init(args)
  nonce = args[2] or "x"
  for line in io.lines(args[1]) do
    local method, path, token, tenant, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    if method then
      local headers = {}
      if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
      if tenant ~= "-" then headers["X-Tenant-Id"] = tenant end
      if body == "-" then
        body = nil
      else
        headers["Content-Type"] = "application/json"
      end
      specs[#specs + 1] = { method, path, headers, body }
    end
  end
  -- Threads start at different places, so they do not walk the same workspaces in lockstep.
  math.randomseed(os.time() * 1000 + tid)
  counter = math.random(#specs)
end

function request()
  counter = counter + 1
  local spec = specs[(counter % #specs) + 1]
  local body = spec[4]
  if body then
    body = (body:gsub("{n}", nonce .. "-" .. tid .. "-" .. counter))
  end
  return wrk.format(spec[1], spec[2], spec[3], body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
