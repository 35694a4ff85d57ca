-- On a Cluster, one tag at a time, in its own slot. KEYS[1]: tag key.
-- ARGV[1]: a fresh token to create it with; ARGV[2]: the TTL in ms (0: none)
-- of the entry it must outlive. Returns the tag's current token.
return ensure_tag(KEYS[1], ARGV[1], tonumber(ARGV[2]))
