-- Authenticated POST /api/v1/projects. Args: <access token>.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local n = 0

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local body = string.format('{"name": "Bench project %d", "description": "load test"}', n)
  return wrk.format("POST", "/api/v1/projects", nil, body)
end
