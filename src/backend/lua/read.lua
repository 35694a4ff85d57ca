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
if mode == 'refresh' then
  -- KEYS[2]: the entry's metadata key. Returns false, or {payload, meta or false, PTTL}.
  local value = redis.call('GET', KEYS[1])
  local payload = value and payload_of(value)
  if not payload or type(payload) == 'table' then
    return payload
  end
  local meta = redis.pcall('GET', KEYS[2])
  if type(meta) ~= 'string' then
    meta = false
  end
  return { payload, meta, redis.call('PTTL', KEYS[1]) }
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
