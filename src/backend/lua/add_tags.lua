-- KEYS[1]: value key; KEYS[2..]: tag keys to add. ARGV[1]: the most tags an
-- entry may carry; ARGV[2..]: a fresh token per tag key (ARGV[i] for KEYS[i]).
-- Returns 0 when the entry is missing or already invalid, else 1; the error
-- 'TAGLIMIT <count>', with nothing changed, when the entry would carry more
-- tags than allowed. The entry keeps its payload and TTL.
local value = redis.call('GET', KEYS[1])
if not value then
  return 0
end
local payload = payload_of(value)
if type(payload) == 'table' then
  return payload
elseif not payload then
  return 0
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = 0
end
local records, count = {}, 0
local present = {}
if string.sub(value, 1, #MAGIC) == MAGIC then
  -- Keep the existing records verbatim: everything between the header and the payload.
  local colon = string.find(value, ':', #MAGIC + 1, true)
  count = tonumber(string.sub(value, #MAGIC + 1, colon - 1))
  local existing = string.sub(value, colon + 1, #value - #payload)
  records[1] = existing
  local pos = 1
  for _ = 1, count do
    local sep = string.find(existing, ':', pos, true)
    local length = tonumber(string.sub(existing, pos, sep - 1))
    present[string.sub(existing, sep + 1, sep + length)] = true
    pos = sep + length + 17
  end
end
local new = {}
for i = 2, #KEYS do
  if not present[KEYS[i]] then
    present[KEYS[i]] = true
    new[#new + 1] = i
  end
end
if count + #new > tonumber(ARGV[1]) then
  return redis.error_reply('TAGLIMIT ' .. tostring(count + #new))
end
for _, i in ipairs(new) do
  records[#records + 1] = tostring(#KEYS[i]) .. ':' .. KEYS[i] .. ensure_tag(KEYS[i], ARGV[i], ttl)
end
count = count + #new
redis.call('SET', KEYS[1], MAGIC .. tostring(count) .. ':' .. table.concat(records) .. payload, 'KEEPTTL')
return 1
