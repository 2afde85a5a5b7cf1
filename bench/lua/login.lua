-- POST /api/v1/auth/login with the seeded user's credentials. Args: <email> <password>.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = string.format('{"email": "%s", "password": "%s"}', args[1], args[2])
  wrk.method = "POST"
  wrk.path = "/api/v1/auth/login"
end
