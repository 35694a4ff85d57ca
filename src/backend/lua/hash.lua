-- Hash records. KEYS[1]: the record's key. ARGV[1]: the operation.
-- A string value is the wrong type; an entry whose tag was invalidated counts
-- as missing (and 'set' replaces it), as everywhere else.
local kind = entry_of(KEYS[1])
local op = ARGV[1]

if op == 'get' then
  -- Returns false when missing, else HGETALL's flat field, value list.
  if kind == 'none' then
    return false
  elseif kind == 'string' then
    return redis.error_reply(WRONGTYPE)
  end
  return redis.call('HGETALL', KEYS[1]) -- a list or a set raises WRONGTYPE here
elseif op == 'set' then
  -- ARGV[2]: 'always', 'if_exists' or 'if_absent'; ARGV[3]: TTL in ms, 0 for
  -- none, -1 to keep the current one; ARGV[4..]: field, value pairs.
  -- Returns 1 when written, 0 when the condition does not hold.
  local condition = ARGV[2]
  if (condition == 'if_exists' and kind == 'none') or (condition == 'if_absent' and kind ~= 'none') then
    return 0
  elseif kind == 'string' then
    return redis.error_reply(WRONGTYPE)
  elseif kind == 'none' then
    redis.call('UNLINK', KEYS[1])
  end
  for i = 4, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  local ttl = tonumber(ARGV[3])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
  elseif ttl == 0 then
    redis.call('PERSIST', KEYS[1])
  end
  return 1
end
return redis.error_reply('ERR unknown hash operation')
