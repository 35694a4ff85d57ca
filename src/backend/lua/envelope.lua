-- A tagged entry is stored as one string:
--   MAGIC <count> ':' { <tag key length> ':' <tag key> <16-byte token> } <payload>
-- It is valid while every tag key still holds the token recorded in it. A
-- value without MAGIC is a plain entry, returned as it is.
local MAGIC = '\0rcache-tags\0'

-- How a script learns the current tokens of tag keys: TAGS.current(tag keys)
-- returns them in order; tags.lua defines it.
local TAGS = {}

-- The tag keys recorded in a stored value (empty for a plain value).
local function tag_keys_of(value)
  local keys = {}
  if string.sub(value, 1, #MAGIC) ~= MAGIC then
    return keys
  end
  local pos = #MAGIC + 1
  local colon = string.find(value, ':', pos, true)
  local count = tonumber(string.sub(value, pos, colon - 1))
  pos = colon + 1
  for i = 1, count do
    colon = string.find(value, ':', pos, true)
    local length = tonumber(string.sub(value, pos, colon - 1))
    keys[i] = string.sub(value, colon + 1, colon + length)
    pos = colon + length + 17
  end
  return keys
end

-- The payload of a stored value, or false when a tag has been invalidated
-- (its token changed) or has vanished (expired or evicted).
local function payload_of(value)
  if string.sub(value, 1, #MAGIC) ~= MAGIC then
    return value
  end
  local pos = #MAGIC + 1
  local colon = string.find(value, ':', pos, true)
  local count = colon and tonumber(string.sub(value, pos, colon - 1))
  if not count or count < 0 or count ~= math.floor(count) then
    return redis.error_reply('CORRUPT rcache entry: bad tag header')
  end
  pos = colon + 1
  local tag_keys, tokens = {}, {}
  for i = 1, count do
    colon = string.find(value, ':', pos, true)
    local length = colon and tonumber(string.sub(value, pos, colon - 1))
    if not length or length < 1 or length ~= math.floor(length) or colon + length + 16 > #value then
      return redis.error_reply('CORRUPT rcache entry: bad tag record')
    end
    tag_keys[i] = string.sub(value, colon + 1, colon + length)
    tokens[i] = string.sub(value, colon + length + 1, colon + length + 16)
    pos = colon + length + 17
  end
  if count > 0 then
    local current = TAGS.current(tag_keys)
    for i = 1, count do
      if current[i] ~= tokens[i] then
        return false
      end
    end
  end
  return string.sub(value, pos)
end

local WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'

-- What `key` holds, as rcache sees it: 'none' (missing, or an entry whose tag
-- was invalidated), 'string' (a valid entry; its payload, or the error reply
-- of a damaged entry, comes second) or 'other' (a key of another type).
local function entry_of(key)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' then
    return 'other'
  end
  local payload = value and payload_of(value)
  if not payload then
    return 'none'
  end
  return 'string', payload
end
