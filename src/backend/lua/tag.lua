-- Tag keys outlive the entries recorded against them by this margin (ms).
local TAG_MARGIN = 1000

-- The current token of a tag key, creating it with `fresh` when missing, and
-- extending its life to cover an entry living `ttl` ms (0: forever).
local function ensure_tag(tag_key, fresh, ttl)
  local token = redis.call('GET', tag_key)
  if not token then
    token = fresh
    if ttl > 0 then
      redis.call('SET', tag_key, token, 'PX', ttl + TAG_MARGIN)
    else
      redis.call('SET', tag_key, token)
    end
    return token
  end
  local left = redis.call('PTTL', tag_key)
  if ttl == 0 then
    if left >= 0 then
      redis.call('PERSIST', tag_key)
    end
  elseif left >= 0 and left < ttl + TAG_MARGIN then
    redis.call('PEXPIRE', tag_key, ttl + TAG_MARGIN)
  end
  return token
end
