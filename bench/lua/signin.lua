dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local body = '{"email":"storm@example.com","password":"correct horse battery staple"}'
request = function()
  return wrk.format("POST", "/v1/auth/sign-in",
    { ["Content-Type"] = "application/json", ["X-Tenant-ID"] = os.getenv("TENANT") }, body)
end
