dofile(os.getenv("BENCH_LUA") .. "/common.lua")
request = function()
  return wrk.format("GET", "/v1/me", { ["Authorization"] = "Bearer " .. next_token() })
end
