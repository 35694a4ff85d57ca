-- Tag keys outlive the entries recorded against them by this margin (ms).
local TAG_MARGIN = 1000
-- How long a tag key recorded by entries without a TTL lives after the last
-- write that records it (ms, 30 days; UNTIMED_TAG_LIFETIME in Rust).
local UNTIMED_TAG_LIFETIME = 2592000000

-- The current token of a tag key, creating it with `fresh` when missing, and
-- extending its life to cover an entry living `ttl` ms (0: no TTL, which
-- counts as UNTIMED_TAG_LIFETIME). A tag key never loses its expiry, and one
-- found without any gets one: once no entry can need it, it expires.
local function ensure_tag(tag_key, fresh, ttl)
  if ttl == 0 then
    ttl = UNTIMED_TAG_LIFETIME
  end
  local needed = ttl + TAG_MARGIN
  local token = redis.call('GET', tag_key)
  if not token then
    redis.call('SET', tag_key, fresh, 'PX', needed)
    return fresh
  end
  -- PTTL is -1 for a key without expiry: it gets one too.
  if redis.call('PTTL', tag_key) < needed then
    redis.call('PEXPIRE', tag_key, needed)
  end
  return token
end
