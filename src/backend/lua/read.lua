-- KEYS: value keys. ARGV[1]: 'one' (errors propagate), 'many' (other types
-- read as misses, like MGET) or 'exists' (1 or 0).
local mode = ARGV[1]
if mode == 'one' then
  local value = redis.call('GET', KEYS[1])
  return value and payload_of(value)
end
if mode == 'exists' then
  local value = redis.pcall('GET', KEYS[1])
  if type(value) == 'table' then
    return 1 -- a key of another type exists
  end
  return (value and payload_of(value)) and 1 or 0
end
local values = {}
for i, key in ipairs(KEYS) do
  local value = redis.pcall('GET', key)
  if type(value) == 'string' then
    values[i] = payload_of(value)
  else
    values[i] = false
  end
end
return values
