'use strict';
// rcache for Node.js: librcache.so loaded with koffi, no native addon to build.
//
// Every method is one synchronous C call plus conversions, like the Python
// package: keys and values are strings or Buffers, values come back as
// Buffers (null on a miss), TTLs are seconds (null or undefined: the
// client's default; NO_EXPIRY: none). Errors are RCacheError with the
// library's status and message. A call blocks the event loop for one round
// trip to the server, bounded by the client's timeouts.
//
// The library is RCACHE_LIB when set, else the checkout's
// target/release/librcache.so, else librcache.so.<ABI> from the system path.

const fs = require('node:fs');
const path = require('node:path');
const koffi = require('koffi');

const ABI_VERSION = 2;

function libraryPath() {
  if (process.env.RCACHE_LIB) return process.env.RCACHE_LIB;
  const checkout = path.join(__dirname, '..', '..', 'target', 'release', 'librcache.so');
  return fs.existsSync(checkout) ? checkout : `librcache.so.${ABI_VERSION}`;
}

const lib = koffi.load(libraryPath());

// Types, named as include/rcache.h names them.
koffi.opaque('rcache_client');
koffi.opaque('rcache_session_store');
koffi.opaque('rcache_session_record');
koffi.opaque('rcache_compute_output');
koffi.struct('rcache_options', {
  connect_timeout_ms: 'uint32_t',
  response_timeout_ms: 'uint32_t',
  key_prefix: 'const char *',
  default_ttl_ms: 'int64_t',
  max_key_bytes: 'size_t',
  max_value_bytes: 'size_t',
  memory_max_entries: 'size_t',
  memory_max_bytes: 'size_t',
  fail_open: 'bool',
  breaker_threshold: 'uint32_t',
  breaker_cooldown_ms: 'uint32_t',
});
koffi.struct('rcache_buffer', { data: 'uint8_t *', len: 'size_t' });
koffi.struct('rcache_bytes', { data: 'const uint8_t *', len: 'size_t' });
koffi.struct('rcache_compute_options', {
  ttl_ms: 'int64_t',
  tags: 'const rcache_bytes *',
  tag_count: 'size_t',
  lock_lease_ms: 'uint32_t',
  wait_timeout_ms: 'uint32_t',
  fail_on_wait_timeout: 'bool',
  early_refresh_beta: 'double',
});
koffi.struct('rcache_session_new', { id: 'char[33]', secret: 'char[33]' });
koffi.proto('bool rcache_compute_fn(void *user_data, rcache_compute_output *output)');

const KEY = 'const uint8_t *key, size_t key_len';
const SESSION = 'const uint8_t *id, size_t id_len, const uint8_t *secret, size_t secret_len';
const c = {
  version: lib.func('const char *rcache_version(void)'),
  abi_version: lib.func('uint32_t rcache_abi_version(void)'),
  last_error: lib.func('const char *rcache_last_error(void)'),
  status_name: lib.func('const char *rcache_status_name(int status)'),
  options_default: lib.func('rcache_options rcache_options_default(void)'),
  connect: lib.func('int rcache_client_connect(const char *url, const rcache_options *options, _Out_ rcache_client **client_out)'),
  free: lib.func('void rcache_client_free(rcache_client *client)'),
  get: lib.func(`int rcache_client_get(const rcache_client *client, ${KEY}, _Out_ rcache_buffer *value_out)`),
  set: lib.func(`int rcache_client_set(const rcache_client *client, ${KEY}, const uint8_t *value, size_t value_len, int64_t ttl_ms)`),
  set_tagged: lib.func(
    `int rcache_client_set_tagged(const rcache_client *client, ${KEY}, const uint8_t *value, size_t value_len,
                                  int64_t ttl_ms, const rcache_bytes *tags, size_t tag_count)`),
  invalidate_tags: lib.func('int rcache_client_invalidate_tags(const rcache_client *client, const rcache_bytes *tags, size_t tag_count)'),
  delete: lib.func(`int rcache_client_delete(const rcache_client *client, ${KEY})`),
  ttl: lib.func(`int rcache_client_ttl(const rcache_client *client, ${KEY}, _Out_ int64_t *ttl_ms_out)`),
  incr: lib.func(`int rcache_client_incr(const rcache_client *client, ${KEY}, int64_t delta, int64_t ttl_ms, _Out_ int64_t *value_out)`),
  buffer_free: lib.func('void rcache_buffer_free(_Inout_ rcache_buffer *buffer)'),
  compute_options_default: lib.func('rcache_compute_options rcache_compute_options_default(void)'),
  compute_output_set: lib.func('int rcache_compute_output_set(rcache_compute_output *output, const uint8_t *value, size_t value_len)'),
  compute_output_fail: lib.func('int rcache_compute_output_fail(rcache_compute_output *output, const char *message)'),
  get_or_compute: lib.func(
    `int rcache_client_get_or_compute(const rcache_client *client, ${KEY}, const rcache_compute_options *options,
                                      rcache_compute_fn *compute, void *user_data, _Out_ rcache_buffer *value_out)`),
  store_open: lib.func(
    'int rcache_session_store_open(const rcache_client *client, const uint8_t *ns, size_t ns_len, _Out_ rcache_session_store **store_out)'),
  store_free: lib.func('void rcache_session_store_free(rcache_session_store *store)'),
  session_create: lib.func(
    `int rcache_session_create(const rcache_session_store *store, const rcache_bytes *names, const rcache_bytes *values,
                               size_t count, int64_t ttl_ms, _Out_ rcache_session_new *session_out)`),
  session_load: lib.func(
    `int rcache_session_load(const rcache_session_store *store, ${SESSION}, int64_t slide_ttl_ms,
                             _Out_ rcache_session_record **record_out)`),
  session_save: lib.func(
    `int rcache_session_save(const rcache_session_store *store, ${SESSION}, uint64_t expected_version,
                             const rcache_bytes *names, const rcache_bytes *values, size_t count,
                             const rcache_bytes *deleted, size_t deleted_count, int64_t ttl_ms, _Out_ uint64_t *version_out)`),
  session_destroy: lib.func(`int rcache_session_destroy(const rcache_session_store *store, ${SESSION})`),
  record_version: lib.func('uint64_t rcache_session_record_version(const rcache_session_record *record)'),
  record_field_count: lib.func('size_t rcache_session_record_field_count(const rcache_session_record *record)'),
  record_field: lib.func(
    'int rcache_session_record_field(const rcache_session_record *record, size_t index, _Out_ rcache_bytes *name_out, _Out_ rcache_bytes *value_out)'),
  record_free: lib.func('void rcache_session_record_free(rcache_session_record *record)'),
};

if (c.abi_version() !== ABI_VERSION) {
  throw new Error(`rcache: ${libraryPath()} has ABI ${c.abi_version()}, this wrapper needs ${ABI_VERSION}`);
}

const OK = 0;
const MISS = 1;
const COMPUTE_FAILED = 12;
const CONFLICT = 13;
const TTL_DEFAULT = 0;
const TTL_NONE = -1;
const SESSION_NO_SLIDE = -2;
/** TTL meaning "no expiry". */
const NO_EXPIRY = Symbol('rcache.NO_EXPIRY');

/** A failed call: `status` is the library's status number, `code` its name
 * (e.g. "RCACHE_STATUS_CONNECTION"), `message` the library's reason. */
class RCacheError extends Error {
  constructor(status, message) {
    const code = c.status_name(status);
    super(`${code}: ${message || c.last_error()}`);
    this.name = 'RCacheError';
    this.status = status;
    this.code = code;
  }
}

function check(status) {
  if (status !== OK && status !== MISS) throw new RCacheError(status);
  return status;
}

function bytes(value, what = 'key') {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`rcache: ${what} must be a string or a Buffer, not ${typeof value}`);
}

function bytesArray(items, what) {
  return Array.from(items, (item) => {
    const data = bytes(item, what);
    return { data, len: data.length };
  });
}

function ttlMs(ttl) {
  if (ttl === undefined || ttl === null) return TTL_DEFAULT;
  if (ttl === NO_EXPIRY) return TTL_NONE;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) {
    throw new RangeError(`rcache: a TTL is a positive number of seconds, null or NO_EXPIRY, not ${String(ttl)}`);
  }
  return Math.max(1, Math.round(ttl * 1000));
}

/** The bytes of a library buffer, copied into a Buffer; the library's copy is freed. */
function take(buffer) {
  const copy = buffer.len > 0 ? Buffer.from(koffi.decode(buffer.data, 'uint8_t', buffer.len)) : Buffer.alloc(0);
  c.buffer_free(buffer);
  return copy;
}

function borrowed(view) {
  return view.len > 0 ? Buffer.from(koffi.decode(view.data, 'uint8_t', view.len)) : Buffer.alloc(0);
}

/** A connection to a cache: `memory://` (the default) or a Redis URL (docs/urls.md). */
class Client {
  /**
   * @param {string} [url] memory://, redis://host:port/db, ...
   * @param {object} [options] prefix, defaultTtl (s), connectTimeout (s), responseTimeout (s), failOpen
   */
  constructor(url = 'memory://', options = {}) {
    const raw = c.options_default();
    if (options.prefix !== undefined) raw.key_prefix = options.prefix;
    if (options.defaultTtl !== undefined) raw.default_ttl_ms = ttlMs(options.defaultTtl);
    if (options.connectTimeout !== undefined) raw.connect_timeout_ms = Math.round(options.connectTimeout * 1000);
    if (options.responseTimeout !== undefined) raw.response_timeout_ms = Math.round(options.responseTimeout * 1000);
    if (options.failOpen !== undefined) raw.fail_open = Boolean(options.failOpen);
    const out = [null];
    check(c.connect(url, raw, out));
    this.handle = out[0];
  }

  /** Frees the handle; later calls throw. Idempotent. */
  close() {
    if (this.handle !== null) c.free(this.handle);
    this.handle = null;
  }

  live() {
    if (this.handle === null) throw new RCacheError(2, 'the client is closed');
    return this.handle;
  }

  /** The value at key as a Buffer, or null on a miss. */
  get(key) {
    const k = bytes(key);
    const value = {};
    if (check(c.get(this.live(), k, k.length, value)) === MISS) return null;
    return take(value);
  }

  /** Stores value at key for ttl seconds, tagged with tags (an array) when given. */
  set(key, value, ttl = null, tags = null) {
    const k = bytes(key);
    const v = bytes(value, 'value');
    if (tags === null || tags === undefined) {
      check(c.set(this.live(), k, k.length, v, v.length, ttlMs(ttl)));
    } else {
      const t = bytesArray(tags, 'tag');
      check(c.set_tagged(this.live(), k, k.length, v, v.length, ttlMs(ttl), t, t.length));
    }
  }

  /** Makes every entry carrying any of tags unreadable, for every client. */
  invalidateTags(tags) {
    const t = bytesArray(tags, 'tag');
    check(c.invalidate_tags(this.live(), t, t.length));
  }

  /** Deletes key; true if it existed. */
  delete(key) {
    const k = bytes(key);
    return check(c.delete(this.live(), k, k.length)) === OK;
  }

  /** Seconds key has left to live, Infinity for no expiry, null when missing. */
  ttl(key) {
    const k = bytes(key);
    const out = [0];
    if (check(c.ttl(this.live(), k, k.length, out)) === MISS) return null;
    return out[0] < 0 ? Infinity : Number(out[0]) / 1000;
  }

  /** Adds delta to the counter at key (created with ttl seconds); the new value. */
  incr(key, delta = 1, ttl = null) {
    const k = bytes(key);
    const out = [0];
    check(c.incr(this.live(), k, k.length, delta, ttlMs(ttl), out));
    return Number(out[0]);
  }

  /**
   * The value at key; on a miss compute() (returning a string or Buffer)
   * makes it and it is stored for ttl seconds. Callers missing the same key,
   * in any process, wait while one computes. An exception thrown by compute
   * propagates and nothing is stored.
   */
  getOrCompute(key, compute, ttl = null) {
    const k = bytes(key);
    const options = c.compute_options_default();
    options.ttl_ms = ttlMs(ttl);
    let raised = null;
    const callback = (_userData, output) => {
      try {
        const v = bytes(compute(), 'computed value');
        return c.compute_output_set(output, v, v.length) === OK;
      } catch (error) {
        raised = error;
        c.compute_output_fail(output, String(error && error.message));
        return false;
      }
    };
    const value = {};
    const status = c.get_or_compute(this.live(), k, k.length, options, callback, null, value);
    if (status === COMPUTE_FAILED && raised !== null) throw raised;
    check(status);
    return take(value);
  }

  /** The sessions under namespace (default "sess:"). */
  sessions(namespace = 'sess:') {
    return new SessionStore(this, namespace);
  }
}

/** Sessions: a random id and secret each, named binary fields, versioned saves. */
class SessionStore {
  constructor(client, namespace) {
    this.client = client;
    this.namespace = bytes(namespace, 'namespace');
  }

  // Runs fn(store) on a store handle opened for this call, so none outlives the client.
  withStore(fn) {
    const out = [null];
    check(c.store_open(this.client.live(), this.namespace, this.namespace.length, out));
    try {
      return fn(out[0]);
    } finally {
      c.store_free(out[0]);
    }
  }

  /** A new session holding fields ({name: string or Buffer}); {id, secret}. */
  create(fields = {}, ttl = null) {
    const names = bytesArray(Object.keys(fields), 'field name');
    const values = bytesArray(Object.values(fields), 'field value');
    const made = {};
    this.withStore((store) => check(c.session_create(store, names, values, names.length, ttlMs(ttl), made)));
    return { id: made.id, secret: made.secret };
  }

  /** {fields: {name: Buffer}, version}, or null when the id is unknown or the secret wrong. */
  load(id, secret, slide = null) {
    const i = bytes(id, 'session id');
    const s = bytes(secret, 'secret');
    const slideMs = slide === null ? SESSION_NO_SLIDE : ttlMs(slide);
    return this.withStore((store) => {
      const out = [null];
      if (check(c.session_load(store, i, i.length, s, s.length, slideMs, out)) === MISS) return null;
      const record = out[0];
      try {
        const fields = {};
        const count = Number(c.record_field_count(record));
        for (let index = 0; index < count; index++) {
          const name = {};
          const value = {};
          check(c.record_field(record, index, name, value));
          fields[borrowed(name).toString('utf8')] = borrowed(value);
        }
        return { fields, version: Number(c.record_version(record)) };
      } finally {
        c.record_free(record);
      }
    });
  }

  /**
   * Sets fields and deletes the names in remove, renewing the expiry to ttl,
   * in one atomic step; the new version, or null when the session is gone.
   * With version (from load), throws RCacheError RCACHE_STATUS_CONFLICT if
   * the session changed since.
   */
  save(id, secret, fields = {}, { remove = [], version = 0, ttl = null } = {}) {
    const i = bytes(id, 'session id');
    const s = bytes(secret, 'secret');
    const names = bytesArray(Object.keys(fields), 'field name');
    const values = bytesArray(Object.values(fields), 'field value');
    const deleted = bytesArray(remove, 'field name');
    const out = [0];
    const status = this.withStore((store) =>
      c.session_save(store, i, i.length, s, s.length, version, names, values, names.length, deleted, deleted.length,
        ttlMs(ttl), out));
    if (check(status) === MISS) return null;
    return Number(out[0]);
  }

  /** Deletes the session; true if it existed (and the secret matched). */
  destroy(id, secret) {
    const i = bytes(id, 'session id');
    const s = bytes(secret, 'secret');
    return this.withStore((store) => check(c.session_destroy(store, i, i.length, s, s.length))) === OK;
  }
}

module.exports = {
  Client,
  SessionStore,
  RCacheError,
  NO_EXPIRY,
  CONFLICT,
  version: c.version(),
  abiVersion: c.abi_version(),
  libraryPath: libraryPath(),
};
