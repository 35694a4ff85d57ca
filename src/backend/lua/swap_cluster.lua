-- KEYS[1]: an entry. Replaces the stored string ARGV[1] by ARGV[2], keeping
-- the TTL: 1; 0 when it changed meanwhile.
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
