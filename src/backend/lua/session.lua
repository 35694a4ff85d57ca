-- Sessions: one hash per session, KEYS[1]. Reserved fields: __secret (the
-- session's key), __version (bumped by every save), __touched (ms since the
-- epoch of the last save or touch). Other fields belong to the caller.
-- ARGV[1] is the operation; ARGV[2] the secret; ARGV[3] the current time in ms.

-- Compares without stopping at the first difference, so timing tells nothing.
local function same_secret(stored, given)
  if not stored or #stored ~= #given then
    return false
  end
  local difference = 0
  for i = 1, #given do
    difference = bit.bor(difference, bit.bxor(string.byte(stored, i), string.byte(given, i)))
  end
  return difference == 0
end

local function expire(ttl)
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
  else
    redis.call('PERSIST', KEYS[1])
  end
end

local op, secret, now = ARGV[1], ARGV[2], ARGV[3]

if op == 'create' then
  -- ARGV[4]: TTL ms (0: none); ARGV[5..]: field, value pairs.
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
  end
  redis.call('HSET', KEYS[1], '__secret', secret, '__version', 1, '__touched', now)
  for i = 5, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  expire(tonumber(ARGV[4]))
  return 1
end

-- Everything else needs the right secret; a wrong one changes nothing. A key
-- of another type (a forged id naming a cache entry) is no session either.
local stored = redis.pcall('HGET', KEYS[1], '__secret')
if type(stored) ~= 'string' or not same_secret(stored, secret) then
  return false
end

if op == 'load' then
  -- ARGV[4]: TTL ms to slide to, or -1 to leave the expiry alone.
  local ttl = tonumber(ARGV[4])
  if ttl >= 0 then
    redis.call('HSET', KEYS[1], '__touched', now)
    expire(ttl)
  end
  return redis.call('HGETALL', KEYS[1])
elseif op == 'save' then
  -- ARGV[4]: expected version (0: any); ARGV[5]: TTL ms; ARGV[6]: number of
  -- fields to delete; then those names; then field, value pairs to set.
  local expected = tonumber(ARGV[4])
  local version = tonumber(redis.call('HGET', KEYS[1], '__version'))
  if expected > 0 and version ~= expected then
    return { 'conflict', version }
  end
  local deletions = tonumber(ARGV[6])
  for i = 7, 6 + deletions do
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
  for i = 7 + deletions, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  redis.call('HSET', KEYS[1], '__touched', now)
  version = redis.call('HINCRBY', KEYS[1], '__version', 1)
  expire(tonumber(ARGV[5]))
  return { 'saved', version }
elseif op == 'touch' then
  redis.call('HSET', KEYS[1], '__touched', now)
  expire(tonumber(ARGV[4]))
  return 1
elseif op == 'destroy' then
  redis.call('UNLINK', KEYS[1])
  return 1
end
return redis.error_reply('ERR unknown session operation')
