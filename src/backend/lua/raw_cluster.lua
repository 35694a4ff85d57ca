-- KEYS[1]: an entry. The stored string and its PTTL, or false when missing
-- (a key of another type: WRONGTYPE).
local value = redis.call('GET', KEYS[1])
if not value then
  return false
end
return { value, redis.call('PTTL', KEYS[1]) }
