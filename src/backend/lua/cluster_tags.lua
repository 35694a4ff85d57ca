-- On a Redis Cluster a script may only touch keys of its own slot, and tag
-- keys live in other slots than their entries. So the caller reads the tags'
-- tokens beforehand and appends them to ARGV:
--   tag key, token, tag key, token, ..., count
-- with an empty token for a tag key that is missing. This prelude takes them
-- off ARGV, so the script body sees its usual arguments.
local KNOWN = {}
do
  local count = tonumber(table.remove(ARGV))
  for _ = 1, count do
    local token = table.remove(ARGV)
    KNOWN[table.remove(ARGV)] = token
  end
end

local function hex(bytes)
  return (string.gsub(bytes, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

-- A tag the caller did not cover: stop before anything is written, naming
-- (in hex) every tag key recorded in every string value of KEYS, so the
-- caller reads them all and runs the script again.
local function need_tags()
  local needed = {}
  for _, key in ipairs(KEYS) do
    local value = redis.pcall('GET', key)
    if type(value) == 'string' then
      for _, tag_key in ipairs(tag_keys_of(value)) do
        if KNOWN[tag_key] == nil then
          needed[#needed + 1] = hex(tag_key)
        end
      end
    end
  end
  error({ err = 'RCACHE-TAGS ' .. table.concat(needed, ' ') })
end

function TAGS.current(tag_keys)
  local tokens = {}
  for i, tag_key in ipairs(tag_keys) do
    local token = KNOWN[tag_key]
    if token == nil then
      need_tags()
    end
    tokens[i] = token -- '' (missing) never equals a recorded 16-character token
  end
  return tokens
end

-- Tag keys cannot be extended from here: the caller extends them itself
-- after a successful 'expire' (key_ops.lua).
local function ensure_tag() end
