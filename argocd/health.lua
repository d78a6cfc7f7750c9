-- Argo CD health check for apigatewayv2.aws.operator.rs/IntegrationResponse (Lua 5.1).
-- Healthy: Ready=True for the current generation. Degraded: Stalled=True for the current
-- generation (retrying cannot help until the spec or AWS changes), or, under managementPolicy
-- Observe, Ready=False with reason Differs (AWS differs from the spec; the message names the
-- fields). Progressing: anything else, including status that describes an older generation.
local hs = {}
local generation = obj.metadata and obj.metadata.generation
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
local conditions = {}
for _, condition in ipairs(status.conditions) do
  conditions[condition.type] = condition
end
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or stalled.reason or "Stalled"
  return hs
end
local ready = conditions["Ready"]
if ready ~= nil and ready.status == "False" and ready.reason == "Differs" then
  hs.status = "Degraded"
  hs.message = ready.message or "AWS differs from the spec"
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = ready.message or ready.reason or "Not ready"
else
  hs.message = "Waiting for the Ready condition"
end
return hs
