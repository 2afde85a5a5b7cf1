-- Authenticated POST /graphql. Args: <access token> <file holding the JSON request body>.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local body

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Content-Type"] = "application/json"
  local file = assert(io.open(args[2], "r"))
  body = file:read("*a")
  file:close()
end

function request()
  return wrk.format("POST", "/graphql", nil, body)
end
