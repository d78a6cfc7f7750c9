-- Runs health.lua against JSON fixtures, as Argo CD would (obj is a global).
-- Usage: lua5.1 argocd/health_test.lua  (from the repository root)
local cjson = require("cjson")

local cases = {
  {file = "healthy.json", status = "Healthy", message = "Integration response ir1 matches the spec."},
  {file = "no-status.json", status = "Progressing", message = "Waiting for the operator to report status"},
  {file = "creating.json", status = "Progressing", message = "Creating the integration response in AWS."},
  {file = "dependency-not-found.json", status = "Progressing", message = "GetIntegrationResponses: the API or integration was not found"},
  {file = "stalled.json", status = "Degraded", message = "AWS refused CreateIntegrationResponse: BadRequestException: Invalid template"},
  {file = "stale-generation.json", status = "Progressing", message = "Waiting for the operator to observe generation 3"},
  {file = "observe-in-sync.json", status = "Healthy", message = "Integration response ir1 matches the spec (managementPolicy Observe)."},
  {file = "observe-differs.json", status = "Degraded", message = "AWS differs from the spec in responseTemplates (see status.differences)"},
  {file = "stalled-stale-generation.json", status = "Progressing", message = "Waiting for the operator to observe generation 2"},
}

local function read(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("*a")
  f:close()
  return text
end

local passed, failed = 0, 0
for _, case in ipairs(cases) do
  obj = cjson.decode(read("argocd/testdata/" .. case.file))
  local hs = dofile("argocd/health.lua")
  local ok = hs.status == case.status and string.find(hs.message or "", case.message, 1, true) == 1
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    print(string.format("FAIL %s: got %s %q, want %s %q", case.file, tostring(hs.status), tostring(hs.message), case.status, case.message))
  end
end
print(string.format("health.lua: %d passed, %d failed", passed, failed))
if failed > 0 then os.exit(1) end
