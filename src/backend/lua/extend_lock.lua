-- KEYS[1]: a lock; ARGV[1]: its owner; ARGV[2]: the new lease in ms.
-- 1 when renewed; 0 when the lock is not the owner's (a key of another
-- type is not a lock).
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
