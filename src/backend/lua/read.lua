-- KEYS: value keys. ARGV[1]: 'exists' (1 or 0), 'live' (which of KEYS
-- exist) or 'near'.
local mode = ARGV[1]
if mode == 'exists' then
  local value = redis.pcall('GET', KEYS[1])
  if type(value) == 'table' then
    return 1 -- a key of another type exists
  end
  return (value and payload_of(value)) and 1 or 0
end
if mode == 'near' then
  -- For the near cache, on a connection with CLIENT TRACKING on. Redis 7.0
  -- tracks, for a script that runs any read command, the keys it declares
  -- in KEYS (later versions track the keys its commands read); the tag keys
  -- of the values read are declared (tags.lua), so every key a value depends
  -- on is both declared and read. ARGV[2]: 'one' (errors propagate), 'many'
  -- (other types read as misses, like MGET) or 'refresh' (KEYS: one value
  -- key, then its metadata key). Returns one element per value key: false,
  -- or {payload, PTTL, {tag keys}}; 'refresh' appends the metadata or false.
  local how = ARGV[2]
  local out = {}
  local values = how == 'refresh' and 1 or #KEYS
  for i = 1, values do
    local value
    if how == 'many' then
      value = redis.pcall('GET', KEYS[i])
      if type(value) ~= 'string' then
        value = false
      end
    else
      value = redis.call('GET', KEYS[i])
    end
    local payload = value and payload_of(value)
    if type(payload) == 'table' then
      return payload -- a corrupt entry: report it
    end
    if payload then
      out[i] = { payload, redis.call('PTTL', KEYS[i]), tag_keys_of(value) }
    else
      out[i] = false
    end
  end
  if how == 'refresh' then
    local meta = redis.pcall('GET', KEYS[2])
    if type(meta) ~= 'string' then
      meta = false
    end
    out[2] = meta
  end
  return out
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
return redis.error_reply('ERR unknown read mode')
