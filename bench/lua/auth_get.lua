-- Authenticated GETs. Args: <access token> <file with one path per line>; each request picks
-- one of the paths at random (one path for the list, the seeded project ids for /{id}).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local paths = {}

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  for line in io.lines(args[2]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
end

function request()
  return bench_request("GET", paths[math.random(#paths)])
end
