-- On a Cluster tag keys cannot be extended from a script that runs in the
-- entry's slot: the caller extends them itself after a successful 'expire'
-- (key_ops.lua).
local function ensure_tag() end
