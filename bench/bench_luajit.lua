-- Get/set ops/s from one LuaJIT thread: rcache (LuaJIT's FFI) against
-- redis-lua (Debian's lua-redis, over LuaSocket) on the same server, one
-- call at a time, 100-byte values.
--   luajit bench/bench_luajit.lua redis://127.0.0.1:PORT/0 [seconds] [rounds]
-- Prints "luajit <client> <GET|SET> <ops/s>" per round.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "../bindings/luajit/?.lua;" .. package.path
local rcache = require("rcache")
local redis = require("redis")
local ffi = require("ffi")

ffi.cdef([[
struct rcache_bench_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clock, struct rcache_bench_timespec *ts);
]])
local now_ts = ffi.new("struct rcache_bench_timespec")
local function now()
  ffi.C.clock_gettime(1, now_ts) -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) + tonumber(now_ts.tv_nsec) / 1e9
end

local url, seconds, rounds = arg[1], tonumber(arg[2] or 1), tonumber(arg[3] or 3)
local host, port = url:match("^redis://([^:/]+):(%d+)")
local value = ("x"):rep(100)
local keys = {}
for i = 1, 100 do
  keys[i] = "bench:" .. i
end

local client = rcache.connect(url, { prefix = "bench-luajit:" })
local plain = redis.connect(host, tonumber(port))

local function measure(op)
  local count, start = 0, now()
  local finish = start + seconds
  while now() < finish do
    for i = 1, 100 do
      op(keys[i])
    end
    count = count + 100
  end
  return count / (now() - start)
end

for i = 1, 100 do
  client:set(keys[i], value)
  plain:set("bench-luajit-redis:" .. keys[i], value)
end
for _ = 1, rounds do
  local results = {
    { "rcache", "GET", measure(function(key) return client:get(key) end) },
    { "redis-lua", "GET", measure(function(key) return plain:get("bench-luajit-redis:" .. key) end) },
    { "rcache", "SET", measure(function(key) client:set(key, value) end) },
    { "redis-lua", "SET", measure(function(key) plain:set("bench-luajit-redis:" .. key, value) end) },
  }
  for _, result in ipairs(results) do
    print(("luajit %s %s %d"):format(result[1], result[2], result[3]))
  end
end
client:close()
plain:quit()
