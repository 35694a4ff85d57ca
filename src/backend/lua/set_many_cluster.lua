-- KEYS: keys of one slot; ARGV[1]: TTL in ms (0: none); ARGV[i + 1]: the
-- value of KEYS[i]. Stores them all in one step.
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if ttl > 0 then
    redis.call('SET', key, ARGV[i + 1], 'PX', ttl)
  else
    redis.call('SET', key, ARGV[i + 1])
  end
end
return 1
