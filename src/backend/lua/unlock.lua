-- KEYS[1]: a lock; ARGV[1]: its owner. 1 when released; 0 when the lock is
-- not the owner's (a key of another type is not a lock).
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
