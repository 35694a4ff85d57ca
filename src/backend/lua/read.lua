-- KEYS: value keys. ARGV[1]: 'one' (errors propagate), 'many' (other types
-- read as misses, like MGET), 'exists' (1 or 0), 'ttl' and 'refresh' (a
-- value with its PTTL), 'live' (which of KEYS exist) or 'near'.
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
if mode == 'near' then
  -- For the near cache, on a connection with CLIENT TRACKING on. Redis 7.0
  -- tracks, for a script that runs any read command, the keys it declares
  -- in KEYS (later versions track the keys its commands read); so every key
  -- a value depends on is both declared and read here. KEYS: groups of a
  -- value key followed by the tag keys declared for it; ARGV[3..]: the number
  -- of tag keys in each group. ARGV[2]: 'one' or 'many' as above, or
  -- 'refresh' (one group, whose value key is followed by its metadata key,
  -- then its tag keys). Returns one element per group: false, or {payload,
  -- PTTL, {tag keys}}; 'refresh' appends the metadata or false.
  local how = ARGV[2]
  local out = {}
  local meta = false
  local pos = 1
  for group = 1, #ARGV - 2 do
    local key = KEYS[pos]
    pos = pos + 1
    if how == 'refresh' then
      meta = redis.pcall('GET', KEYS[pos])
      if type(meta) ~= 'string' then
        meta = false
      end
      pos = pos + 1
    end
    pos = pos + tonumber(ARGV[group + 2])
    local value
    if how == 'many' then
      value = redis.pcall('GET', key)
      if type(value) ~= 'string' then
        value = false
      end
    else
      value = redis.call('GET', key)
    end
    local payload = value and payload_of(value)
    if type(payload) == 'table' then
      return payload -- a corrupt entry: report it
    end
    if payload then
      out[group] = { payload, redis.call('PTTL', key), tag_keys_of(value) }
    else
      out[group] = false
    end
  end
  if how == 'refresh' then
    out[#out + 1] = meta
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
