-- wrk script: a steady request rate against the dashboard's API for one run, as open browser
-- tabs would make it (version polls, series refetches, run details, the runs list).
-- wrk -t1 -c5 -d60s -s bench/dashboard_load.lua http://127.0.0.1:PORT -- RUN INTERVAL_MS
-- Each connection waits INTERVAL_MS between requests: rate = connections * 1000 / INTERVAL_MS.
local paths, i, interval = {}, 0, 100

function init(args)
  local run = args[1] or "bench"
  interval = tonumber(args[2] or "100")
  paths = {
    "/api/runs/" .. run .. "/version",
    "/api/runs/" .. run .. "/series?split=train&tag=step_loss&points=2000",
    "/api/runs/" .. run .. "/version",
    "/api/runs/" .. run .. "/series?split=val&tag=loss&points=2000",
    "/api/runs/" .. run .. "/version",
    "/api/runs/" .. run .. "/series?split=train&tag=grad_norm&points=2000",
    "/api/runs/" .. run,
    "/api/runs/" .. run .. "/findings",
    "/api/runs",
    "/api/runs/" .. run .. "/series?split=train&tag=lr&points=2000",
  }
end

function delay()
  return interval
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
