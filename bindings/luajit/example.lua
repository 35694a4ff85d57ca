-- rcache from LuaJIT: connect, get/set with a TTL, tags, invalidation,
-- get-or-compute and a session. Runs on memory://, or on RCACHE_URL.
--   luajit bindings/luajit/example.lua
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local rcache = require("rcache")

local url = os.getenv("RCACHE_URL") or "memory://"
print(("rcache %s from %s, backend %s"):format(rcache.version, jit.version, url))
local client = rcache.connect(url, { prefix = "luajit-example:" })

client:set("greeting", "hello from LuaJIT", 60) -- TTLs are seconds
print(("get greeting -> %s, %.1f s left"):format(client:get("greeting"), client:ttl("greeting")))

client:set("user:1", "Ada", 3600, { "users" })
client:invalidate_tags({ "users" })
print("after invalidating tag users -> get user:1: " .. tostring(client:get("user:1")))

local computed = 0
local function render()
  computed = computed + 1
  return "<p>page 1</p>"
end
client:delete("page:1")
client:get_or_compute("page:1", render, 300)
local page = client:get_or_compute("page:1", render, 300)
print(("get_or_compute page:1 twice -> %s, computed %d time(s)"):format(page, computed))

local sessions = client:sessions("sess:")
local id, secret = sessions:create({ user = "ada" }, 1800)
local loaded = sessions:load(id, secret)
sessions:save(id, secret, { cart = "3 items" }, { version = loaded.version, ttl = 1800 })
local fields = sessions:load(id, secret).fields
print(("session %s… -> user %s, cart %s"):format(id:sub(1, 8), fields.user, fields.cart))
sessions:destroy(id, secret)
client:close()
assert(computed == 1 and page == "<p>page 1</p>" and fields.cart == "3 items")
