-- KEYS[1]: a counter. Adds ARGV[1], creating it from 0 with a TTL of ARGV[2]
-- ms (0: none) in the same step when it is missing.
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], 0, 'PX', ttl, 'NX')
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
