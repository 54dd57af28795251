dofile(os.getenv("BENCH_LUA") .. "/common.lua")
request = function()
  return wrk.format("PATCH", "/v1/me",
    { ["Authorization"] = "Bearer " .. next_token(), ["Content-Type"] = "application/json" },
    '{"bio":"benchmark ' .. counter .. '"}')
end
