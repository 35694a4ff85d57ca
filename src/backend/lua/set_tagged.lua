-- KEYS[1]: value key; KEYS[2..]: tag keys.
-- ARGV[1]: payload; ARGV[2]: TTL in ms, 0 for none; ARGV[3..]: a fresh token per tag key.
-- Reads each tag's token (creating the tag when missing), records the tokens
-- in the entry, and makes each tag key live at least as long as the entry:
-- all in one atomic step, so a concurrent invalidation is either before
-- (the entry carries the new token) or after (the entry is invalid).
local ttl = tonumber(ARGV[2])
local parts = { MAGIC, tostring(#KEYS - 1), ':' }
for i = 2, #KEYS do
  parts[#parts + 1] = tostring(#KEYS[i]) .. ':' .. KEYS[i] .. ensure_tag(KEYS[i], ARGV[i + 1], ttl)
end
parts[#parts + 1] = ARGV[1]
if ttl > 0 then
  redis.call('SET', KEYS[1], table.concat(parts), 'PX', ttl)
else
  redis.call('SET', KEYS[1], table.concat(parts))
end
return 1
