-- How a script that checks tagged entries learns the current tokens of
-- their tag keys without touching a key it does not declare (as Redis
-- Cluster, ACLs and proxies that check declared keys require). The caller
-- appends to ARGV:
--   tag key, token, ..., tag key, token, <pairs>, <declared>
-- <declared>: the last <declared> KEYS are tag keys, whose tokens the script
-- reads itself (one server). <pairs>: tag keys whose tokens the caller read
-- beforehand (a Cluster, where tag keys live in other slots than the entry);
-- an empty token for a tag key that is missing. This prelude takes them off
-- KEYS and ARGV, so the script body sees its usual arguments.
--
-- The first run names no tag key. A stored entry recording a tag key named
-- in neither way stops the script before anything is written, naming (in
-- hex) the tag keys of every string value of KEYS; the caller checks that
-- they lie in its tag space, names them, and runs the script again.
local KNOWN = {}
do
  local declared = tonumber(table.remove(ARGV))
  local count = tonumber(table.remove(ARGV))
  for _ = 1, count do
    local token = table.remove(ARGV)
    KNOWN[table.remove(ARGV)] = token
  end
  if declared > 0 then
    local tag_keys = {}
    for i = declared, 1, -1 do
      tag_keys[i] = table.remove(KEYS)
    end
    local tokens = redis.call('MGET', unpack(tag_keys))
    for i, tag_key in ipairs(tag_keys) do
      KNOWN[tag_key] = tokens[i] or ''
    end
  end
end

local function hex(bytes)
  return (string.gsub(bytes, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

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
