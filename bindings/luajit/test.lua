-- The LuaJIT wrapper on memory:// and, when RCACHE_TEST_REDIS_URL names a
-- private server (tests/with-redis.sh), on Redis. Prints one line per case
-- and "N passed, N failed"; exits non-zero when a case failed.
--   luajit bindings/luajit/test.lua
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local rcache = require("rcache")
local ffi = require("ffi")

local passed, failed = 0, 0

local function case(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
    print("ok     " .. name)
  else
    failed = failed + 1
    print("FAILED " .. name .. "\n" .. tostring(err))
  end
end

local function eq(actual, expected, what)
  if actual ~= expected then
    error(("%s: expected %s, got %s"):format(what or "value", tostring(expected), tostring(actual)), 2)
  end
end

-- The rcache.Error a call raised, or a failure when it raised none (or another error).
local function raised(fn)
  local ok, err = pcall(fn)
  assert(not ok, "no error raised")
  assert(getmetatable(err) == rcache.Error, "not an rcache.Error: " .. tostring(err))
  return err
end

ffi.cdef("int poll(void *fds, unsigned long nfds, int timeout);")
local function sleep(seconds)
  ffi.C.poll(nil, 0, seconds * 1000)
end

local urls = { "memory://" }
if os.getenv("RCACHE_TEST_REDIS_URL") then
  urls[#urls + 1] = os.getenv("RCACHE_TEST_REDIS_URL")
end

case("the library and the header agree on the ABI", function()
  eq(rcache.abi_version, rcache.constants.RCACHE_ABI_VERSION, "ABI")
  assert(rcache.version:match("^%d+%.%d+%.%d+$"), rcache.version)
end)

for run, url in ipairs(urls) do
  local backend = url:match("^(%w+)")
  local client = rcache.connect(url, { prefix = ("luajit-test-%d-%d:"):format(os.time(), run) })

  case(backend .. ": get and set bytes with a TTL", function()
    eq(client:get("missing"), nil, "a miss")
    client:set("k", "v", 60)
    eq(client:get("k"), "v")
    local left = client:ttl("k")
    assert(left > 55 and left <= 60, "ttl " .. left)
    client:set("\0\1\255", "\0\0\7")
    eq(client:get("\0\1\255"), "\0\0\7", "binary value")
    client:set("empty", "")
    eq(client:get("empty"), "", "empty value")
    client:set("forever", "x", rcache.NO_EXPIRY)
    eq(client:ttl("forever"), math.huge, "no expiry")
    client:set("short", "gone soon", 0.1)
    sleep(0.25)
    eq(client:get("short"), nil, "expired")
    eq(client:delete("k"), true, "delete")
    eq(client:delete("k"), false, "second delete")
  end)

  case(backend .. ": counters get their TTL when created", function()
    eq(client:incr("hits", 1, 60), 1)
    eq(client:incr("hits", 5), 6)
    assert(client:ttl("hits") > 0)
  end)

  case(backend .. ": invalidating a tag hides its entries only", function()
    client:set("user:1", "Ada", 60, { "users", "team:a" })
    client:set("user:2", "Grace", 60, { "users" })
    client:set("team", "A", 60, { "team:a" })
    client:set("plain", "p", 60)
    client:invalidate_tags({ "users" })
    eq(client:get("user:1"), nil, "user:1")
    eq(client:get("user:2"), nil, "user:2")
    eq(client:get("team"), "A", "team")
    eq(client:get("plain"), "p", "plain")
    client:set("user:1", "Ada again", 60, { "users" })
    eq(client:get("user:1"), "Ada again")
  end)

  case(backend .. ": get_or_compute computes once and passes the error on", function()
    local calls = 0
    local function compute()
      calls = calls + 1
      return "computed " .. calls
    end
    eq(client:get_or_compute("page", compute, 60), "computed 1")
    eq(client:get_or_compute("page", compute, 60), "computed 1")
    eq(calls, 1, "computations")
    local ok, err = pcall(client.get_or_compute, client, "broken", function()
      error("the database is down", 0)
    end)
    eq(ok, false)
    eq(err, "the database is down", "the callback's error")
    eq(client:get("broken"), nil, "nothing stored")
    eq(client:get_or_compute("broken", function() return "fine now" end, 60), "fine now")
  end)

  case(backend .. ": sessions with versioned saves", function()
    local sessions = client:sessions("sess:")
    local id, secret = sessions:create({ user = "ada" }, 600)
    assert(#id == 32 and id:match("^%x+$") and #secret == 32, id)
    local first = sessions:load(id, secret)
    eq(first.fields.user, "ada")
    local version = sessions:save(id, secret, { cart = "3 items" }, { version = first.version, ttl = 600 })
    assert(version > first.version)
    local conflict = raised(function()
      sessions:save(id, secret, { cart = "stale" }, { version = first.version })
    end)
    eq(conflict.code, "RCACHE_STATUS_CONFLICT")
    sessions:save(id, secret, {}, { remove = { "user" } })
    local now = sessions:load(id, secret)
    eq(now.fields.user, nil, "removed field")
    eq(now.fields.cart, "3 items")
    eq(sessions:load(id, ("f"):rep(32)), nil, "wrong secret")
    eq(sessions:destroy(id, secret), true)
    eq(sessions:load(id, secret), nil, "destroyed")
  end)

  case(backend .. ": bad input gets the library's status and message", function()
    local err = raised(function() client:get("") end)
    eq(err.code, "RCACHE_STATUS_INVALID_ARGUMENT")
    assert(err.message:find("key"), err.message)
    assert(not pcall(client.set, client, "k", "v", -5), "negative TTL accepted")
    assert(not pcall(client.get, client, 42), "number key accepted")
  end)

  client:close()
end

case("a malformed URL, an unreachable server and a closed client", function()
  eq(raised(function() rcache.connect("nonsense://x") end).code, "RCACHE_STATUS_INVALID_ARGUMENT")
  local err = raised(function() rcache.connect("redis://127.0.0.1:1/0", { connect_timeout = 0.2 }) end)
  eq(err.code, "RCACHE_STATUS_CONNECTION")
  local client = rcache.connect()
  client:close()
  raised(function() client:get("k") end)
  client:close()
end)

case("the example runs", function()
  local url = urls[#urls]
  local pipe = io.popen(("RCACHE_URL='%s' luajit '%sexample.lua' 2>&1; echo \"exit $?\""):format(url, here))
  local output = pipe:read("*a")
  pipe:close()
  assert(output:find("computed 1 time%(s%)") and output:find("cart 3 items") and output:find("exit 0\n$"), output)
end)

print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
