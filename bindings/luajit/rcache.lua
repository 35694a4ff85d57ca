-- rcache for LuaJIT: librcache.so through LuaJIT's FFI, declared from the
-- library's own header (include/rcache.h, preprocessor lines left out).
--
--   local rcache = require("rcache")        -- bindings/luajit on package.path
--   local client = rcache.connect("redis://127.0.0.1:6379/0", {prefix = "myapp:"})
--
-- Keys and values are Lua strings (binary-safe); get returns nil on a miss.
-- TTLs are seconds (nil: the client's default; rcache.NO_EXPIRY: none).
-- Failures raise an rcache.Error table: status, code (the status name) and
-- message, printable with tostring.
--
-- The library is RCACHE_LIB when set, else the checkout's
-- target/release/librcache.so, else librcache.so.<ABI> from the system path;
-- the header is RCACHE_HEADER, else the checkout's include/rcache.h.

local ffi = require("ffi")

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local checkout = here .. "../../"

local function readable(path)
  local file = io.open(path, "rb")
  if file then
    file:close()
  end
  return file ~= nil
end

local function read_header(path)
  local file = assert(io.open(path, "rb"), "rcache: cannot read the header " .. path .. " (set RCACHE_HEADER)")
  local text = file:read("*a")
  file:close()
  local constants, declarations, skipping = {}, {}, false
  for line in text:gmatch("[^\n]*") do
    local name, value = line:match("^#define%s+([%w_]+)%s+(%-?%d+)%s*$")
    if name then
      constants[name] = tonumber(value)
    elseif line:match("^#ifdef%s+__cplusplus") then
      skipping = true -- the extern "C" lines
    elseif line:match("^#endif") then
      skipping = false
    elseif not skipping and not line:match("^%s*#") then
      declarations[#declarations + 1] = line
    end
  end
  return constants, table.concat(declarations, "\n")
end

local constants, declarations = read_header(os.getenv("RCACHE_HEADER") or (checkout .. "include/rcache.h"))
ffi.cdef(declarations)

local function library_path()
  local explicit = os.getenv("RCACHE_LIB")
  if explicit then
    return explicit
  end
  local built = checkout .. "target/release/librcache.so"
  return readable(built) and built or ("librcache.so." .. constants.RCACHE_ABI_VERSION)
end

local C = ffi.load(library_path())
if C.rcache_abi_version() ~= constants.RCACHE_ABI_VERSION then
  error(("rcache: %s has ABI %d, the header %d"):format(library_path(), C.rcache_abi_version(), constants.RCACHE_ABI_VERSION))
end

local OK, MISS = C.RCACHE_STATUS_OK, C.RCACHE_STATUS_MISS

local M = {
  version = ffi.string(C.rcache_version()),
  abi_version = C.rcache_abi_version(),
  library = library_path(),
  constants = constants,
  NO_EXPIRY = setmetatable({}, { __tostring = function() return "rcache.NO_EXPIRY" end }),
}

local Error = {}
Error.__index = Error
Error.__tostring = function(e)
  return e.code .. ": " .. e.message
end
M.Error = Error

local function raise(status, message)
  error(setmetatable({
    status = tonumber(status),
    code = ffi.string(C.rcache_status_name(status)),
    message = message or ffi.string(C.rcache_last_error()),
  }, Error), 3)
end

local function check(status)
  if status ~= OK and status ~= MISS then
    raise(status)
  end
  return status
end

local function text(value, what)
  if type(value) ~= "string" then
    error(("rcache: %s must be a string, not %s"):format(what or "key", type(value)), 3)
  end
  return value
end

local function ttl_ms(ttl)
  if ttl == nil then
    return constants.RCACHE_TTL_DEFAULT
  elseif ttl == M.NO_EXPIRY then
    return constants.RCACHE_TTL_NONE
  elseif type(ttl) ~= "number" or ttl <= 0 or ttl ~= ttl then
    error("rcache: a TTL is a positive number of seconds, nil or rcache.NO_EXPIRY, not " .. tostring(ttl), 3)
  end
  return math.max(1, math.floor(ttl * 1000 + 0.5))
end

-- An rcache_bytes[] over Lua strings (kept alive by the caller's `strings`).
local function bytes_array(strings, what)
  local array = ffi.new("rcache_bytes[?]", math.max(#strings, 1))
  for i, s in ipairs(strings) do
    text(s, what)
    array[i - 1].data = ffi.cast("const uint8_t *", s)
    array[i - 1].len = #s
  end
  return array, #strings
end

-- The bytes of a library buffer as a Lua string; the library's copy is freed.
local function take(buffer)
  local value = ffi.string(buffer.data, buffer.len)
  C.rcache_buffer_free(buffer)
  return value
end

local Client = {}
Client.__index = Client

--- Connects to url (default memory://; docs/urls.md). options: prefix,
--- default_ttl (s), connect_timeout (s), response_timeout (s), fail_open.
function M.connect(url, options)
  options = options or {}
  local raw = C.rcache_options_default()
  if options.prefix then
    raw.key_prefix = text(options.prefix, "prefix")
  end
  if options.default_ttl then
    raw.default_ttl_ms = ttl_ms(options.default_ttl)
  end
  if options.connect_timeout then
    raw.connect_timeout_ms = options.connect_timeout * 1000
  end
  if options.response_timeout then
    raw.response_timeout_ms = options.response_timeout * 1000
  end
  raw.fail_open = options.fail_open and true or false
  local out = ffi.new("rcache_client *[1]")
  check(C.rcache_client_connect(url or "memory://", raw, out))
  -- Freed by close(), or by the garbage collector.
  return setmetatable({ handle = ffi.gc(out[0], C.rcache_client_free) }, Client)
end

--- Frees the handle; later calls raise. Idempotent.
function Client:close()
  if self.handle ~= nil then
    C.rcache_client_free(ffi.gc(self.handle, nil))
    self.handle = nil
  end
end

function Client:live()
  if self.handle == nil then
    raise(C.RCACHE_STATUS_INVALID_ARGUMENT, "the client is closed")
  end
  return self.handle
end

--- The value at key, or nil on a miss.
function Client:get(key)
  text(key)
  local value = ffi.new("rcache_buffer")
  if check(C.rcache_client_get(self:live(), key, #key, value)) == MISS then
    return nil
  end
  return take(value)
end

--- Stores value at key for ttl seconds, tagged with the strings of tags when given.
function Client:set(key, value, ttl, tags)
  text(key)
  text(value, "value")
  if tags == nil then
    check(C.rcache_client_set(self:live(), key, #key, value, #value, ttl_ms(ttl)))
  else
    local array, count = bytes_array(tags, "tag")
    check(C.rcache_client_set_tagged(self:live(), key, #key, value, #value, ttl_ms(ttl), array, count))
  end
end

--- Makes every entry carrying any of tags unreadable, for every client.
function Client:invalidate_tags(tags)
  local array, count = bytes_array(tags, "tag")
  check(C.rcache_client_invalidate_tags(self:live(), array, count))
end

--- Deletes key; true if it existed.
function Client:delete(key)
  text(key)
  return check(C.rcache_client_delete(self:live(), key, #key)) == OK
end

--- Seconds key has left to live, math.huge for no expiry, nil when missing.
function Client:ttl(key)
  text(key)
  local out = ffi.new("int64_t[1]")
  if check(C.rcache_client_ttl(self:live(), key, #key, out)) == MISS then
    return nil
  end
  return out[0] < 0 and math.huge or tonumber(out[0]) / 1000
end

--- Adds delta (default 1) to the counter at key, created with ttl seconds; the new value.
function Client:incr(key, delta, ttl)
  text(key)
  local out = ffi.new("int64_t[1]")
  check(C.rcache_client_incr(self:live(), key, #key, delta or 1, ttl_ms(ttl), out))
  return tonumber(out[0])
end

--- The value at key; on a miss compute() (returning a string) makes it and
--- it is stored for ttl seconds. Callers missing the same key, in any
--- process, wait while one computes. An error raised by compute propagates
--- and nothing is stored.
function Client:get_or_compute(key, compute, ttl)
  text(key)
  local options = C.rcache_compute_options_default()
  options.ttl_ms = ttl_ms(ttl)
  local raised
  local callback = ffi.cast("rcache_compute_fn", function(_, output)
    local ok, value = pcall(compute)
    if ok and type(value) == "string" then
      return C.rcache_compute_output_set(output, value, #value) == OK
    end
    raised = ok and ("rcache: compute returned a " .. type(value) .. ", not a string") or value
    C.rcache_compute_output_fail(output, tostring(raised))
    return false
  end)
  local value = ffi.new("rcache_buffer")
  local status = C.rcache_client_get_or_compute(self:live(), key, #key, options, callback, nil, value)
  callback:free()
  if status == C.RCACHE_STATUS_COMPUTE_FAILED and raised ~= nil then
    error(raised, 0)
  end
  check(status)
  return take(value)
end
-- A C function calling back into Lua must not be reached from JIT-compiled code.
jit.off(Client.get_or_compute)

local Sessions = {}
Sessions.__index = Sessions

--- The sessions under namespace (default "sess:").
function Client:sessions(namespace)
  return setmetatable({ client = self, namespace = text(namespace or "sess:", "namespace") }, Sessions)
end

-- fn(store) on a store handle opened for this call, so none outlives the client.
function Sessions:with_store(fn)
  local out = ffi.new("rcache_session_store *[1]")
  check(C.rcache_session_store_open(self.client:live(), self.namespace, #self.namespace, out))
  local ok, result = pcall(fn, out[0])
  C.rcache_session_store_free(out[0])
  if not ok then
    error(result, 0)
  end
  return result
end

local function field_arrays(fields, keep)
  local names, values = {}, {}
  for name, value in pairs(fields or {}) do
    names[#names + 1], values[#values + 1] = text(name, "field name"), text(value, "field value")
  end
  keep[#keep + 1], keep[#keep + 2] = names, values
  local name_array, count = bytes_array(names, "field name")
  return name_array, (bytes_array(values, "field value")), count
end

--- A new session holding fields (a table of strings); its id and secret.
function Sessions:create(fields, ttl)
  local keep = {}
  local names, values, count = field_arrays(fields, keep)
  local made = ffi.new("rcache_session_new")
  self:with_store(function(store)
    return check(C.rcache_session_create(store, names, values, count, ttl_ms(ttl), made))
  end)
  return ffi.string(made.id), ffi.string(made.secret)
end

--- {fields = {...}, version = n}, or nil when the id is unknown or the secret wrong.
function Sessions:load(id, secret, slide)
  text(id, "session id")
  text(secret, "secret")
  local slide_ms = slide == nil and constants.RCACHE_SESSION_NO_SLIDE or ttl_ms(slide)
  return self:with_store(function(store)
    local out = ffi.new("rcache_session_record *[1]")
    if check(C.rcache_session_load(store, id, #id, secret, #secret, slide_ms, out)) == MISS then
      return nil
    end
    local record = out[0]
    local fields, name, value = {}, ffi.new("rcache_bytes"), ffi.new("rcache_bytes")
    for index = 0, tonumber(C.rcache_session_record_field_count(record)) - 1 do
      C.rcache_session_record_field(record, index, name, value)
      fields[ffi.string(name.data, name.len)] = ffi.string(value.data, value.len)
    end
    local version = tonumber(C.rcache_session_record_version(record))
    C.rcache_session_record_free(record)
    return { fields = fields, version = version }
  end)
end

--- Sets fields and deletes the names in options.remove, renewing the expiry to
--- options.ttl, in one atomic step; the new version, or nil when the session is
--- gone. With options.version (from load), raises RCACHE_STATUS_CONFLICT if
--- the session changed since.
function Sessions:save(id, secret, fields, options)
  text(id, "session id")
  text(secret, "secret")
  options = options or {}
  local keep = {}
  local names, values, count = field_arrays(fields, keep)
  local removed = options.remove or {}
  local deleted, deleted_count = bytes_array(removed, "field name")
  local version = ffi.new("uint64_t[1]")
  local status = self:with_store(function(store)
    return check(C.rcache_session_save(store, id, #id, secret, #secret, options.version or 0, names, values, count,
      deleted, deleted_count, ttl_ms(options.ttl), version))
  end)
  if status == MISS then
    return nil
  end
  return tonumber(version[0])
end

--- Deletes the session; true if it existed (and the secret matched).
function Sessions:destroy(id, secret)
  text(id, "session id")
  text(secret, "secret")
  return self:with_store(function(store)
    return check(C.rcache_session_destroy(store, id, #id, secret, #secret))
  end) == OK
end

return M
