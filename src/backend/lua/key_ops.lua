-- KEYS[1]: value key. ARGV[1]: 'ttl' (PTTL, -2 when missing or invalid),
-- 'delete' (1 when a valid entry was deleted; an invalid one is deleted too),
-- 'expire' with ARGV[2] the new TTL in ms, 0 for none (1 when done; the
-- entry's tags are kept alive as long as the entry).
local value = redis.pcall('GET', KEYS[1])
local valid
if type(value) == 'table' then
  valid = redis.call('EXISTS', KEYS[1]) == 1 -- another type: plain key semantics
  value = nil
else
  valid = value and payload_of(value)
  if type(valid) == 'table' then
    if ARGV[1] ~= 'delete' then
      return valid -- a corrupt entry: report it
    end
    valid = true -- a corrupt entry can always be deleted
  end
end
local op = ARGV[1]
if op == 'ttl' then
  if not valid then
    return -2
  end
  return redis.call('PTTL', KEYS[1])
elseif op == 'delete' then
  redis.call('UNLINK', KEYS[1])
  return valid and 1 or 0
end
if not valid then
  return 0
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
if value then
  for _, tag_key in ipairs(tag_keys_of(value)) do
    ensure_tag(tag_key, 'unused', ttl)
  end
end
return 1
