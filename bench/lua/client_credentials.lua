dofile(os.getenv("BENCH_LUA") .. "/common.lua")
-- OAuth2 client credentials (RFC 6749 §4.4) with client_secret_basic; CLIENT_BASIC is
-- base64(client_id:client_secret), set by bench/run.
local path = "/oidc/" .. os.getenv("TENANT") .. "/token"
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded",
                  ["Authorization"] = "Basic " .. os.getenv("CLIENT_BASIC") }
request = function()
  return wrk.format("POST", path, headers, "grant_type=client_credentials")
end
