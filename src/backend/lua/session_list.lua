-- KEYS: session keys. Returns the HGETALL of each; a key of another type
-- reads as empty (no session).
local out = {}
for i, key in ipairs(KEYS) do
  local fields = redis.pcall('HGETALL', key)
  if fields.err then
    out[i] = {}
  else
    out[i] = fields
  end
end
return out
