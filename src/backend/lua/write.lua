-- Writes of a plain value that depend on what the key holds now.
-- KEYS[1]: value key. ARGV[1]: 'set' or 'cas'; ARGV[2]: the value as stored;
-- ARGV[3]: TTL in ms, 0 for none, -1 to keep the key's current expiry (a key
-- that is missing, or an entry whose tag was invalidated, gets none);
-- ARGV[4] ('cas'): the payload the key must hold. Returns 1 when written.
local kind, payload = entry_of(KEYS[1])
if ARGV[1] == 'cas' then
  if kind == 'other' then
    return redis.error_reply(WRONGTYPE)
  elseif type(payload) == 'table' then
    return payload -- a damaged entry: report it
  elseif kind ~= 'string' or payload ~= ARGV[4] then
    return 0
  end
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
elseif ttl == 0 or kind == 'none' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return 1
