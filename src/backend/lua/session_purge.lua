-- KEYS: session keys found by a scan. ARGV[1]: delete sessions whose last
-- save or touch is at or before this time (ms since the epoch).
local purged = 0
for _, key in ipairs(KEYS) do
  local touched = redis.pcall('HGET', key, '__touched')
  if type(touched) == 'string' and tonumber(touched) <= tonumber(ARGV[1]) then
    redis.call('UNLINK', key)
    purged = purged + 1
  end
end
return purged
