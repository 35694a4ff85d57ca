-- KEYS: value keys. ARGV[1]: 'one' (errors propagate), 'many' (other types
-- read as misses, like MGET), 'exists' (1 or 0), 'ttl' and 'refresh' (a
-- value with its PTTL) or 'live' (which of KEYS exist).
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
if mode == 'ttl' or mode == 'refresh' then
  -- Returns false, or {payload, PTTL}; 'refresh' (KEYS[2]: the entry's
  -- metadata key) returns {payload, meta or false, PTTL}.
  local value = redis.call('GET', KEYS[1])
  local payload = value and payload_of(value)
  if not payload or type(payload) == 'table' then
    return payload
  end
  if mode == 'ttl' then
    return { payload, redis.call('PTTL', KEYS[1]) }
  end
  local meta = redis.pcall('GET', KEYS[2])
  if type(meta) ~= 'string' then
    meta = false
  end
  return { payload, meta, redis.call('PTTL', KEYS[1]) }
end
if mode == 'live' then
  -- The keys that exist, of any type, leaving out entries whose tags were invalidated.
  local live = {}
  for _, key in ipairs(KEYS) do
    if entry_of(key) ~= 'none' then
      live[#live + 1] = key
    end
  end
  return live
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
