//! The client handle and its operations.
//!
//! Every function here may be called from any thread, concurrently on the same
//! handle, except `rcache_client_free`, which must be the last call on it.
//!
//! Safety contract of every export: a non-NULL `client` comes from
//! `rcache_client_connect` and is not yet freed; every `(pointer, length)` pair
//! points to that many readable bytes; out-parameters point to writable storage.
//! NULL where a value is required gives `RCACHE_STATUS_INVALID_ARGUMENT`.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{CStr, c_char};
use std::sync::Arc;
use std::time::Duration;

use crate::{Cache, Remaining};

use super::boundary::{array, bytes, guard, guard_void, non_null, out_param};
use super::fork;
use super::status::{Failure, rcache_status};
use super::types::{rcache_buffer, rcache_bytes, rcache_options, rcache_stats, ttl_from_millis};

use rcache_status::{RCACHE_STATUS_MISS as MISS, RCACHE_STATUS_OK as OK};

/// An open cache client: a connection to Redis or an embedded store.
/// Opaque; create it with `rcache_client_connect`, release it with
/// `rcache_client_free`. Thread-safe: share one handle between threads.
#[allow(non_camel_case_types)]
pub struct rcache_client {
    /// Shared with the session stores and queues opened on it, so either may be freed first.
    cache: Arc<Cache>,
    /// The process the handle was created in, by fork generation.
    generation: u64,
}

impl rcache_client {
    /// The engine behind a handle argument, refusing NULL and handles inherited through fork().
    ///
    /// # Safety
    /// A non-NULL `client` must come from `rcache_client_connect` and not be freed.
    pub(crate) unsafe fn cache<'a>(client: *const rcache_client) -> Result<&'a Cache, Failure> {
        // SAFETY: forwarded to the caller's promise.
        unsafe { Self::shared(client) }.map(|cache| &**cache)
    }

    /// The engine behind a handle argument, as a reference count a session store keeps.
    ///
    /// # Safety
    /// As `cache`.
    pub(crate) unsafe fn shared<'a>(client: *const rcache_client) -> Result<&'a Arc<Cache>, Failure> {
        // SAFETY: forwarded to the caller's promise.
        let client = unsafe { non_null(client, "client") }?;
        check_generation(client.generation)?;
        Ok(&client.cache)
    }
}

/// Refuses a handle created in another process (before a fork()).
pub(crate) fn check_generation(generation: u64) -> Result<(), Failure> {
    if generation != fork::generation() {
        return Err(Failure::new(
            rcache_status::RCACHE_STATUS_FORKED,
            "this handle was created before fork(); create a new one in the child process",
        ));
    }
    Ok(())
}

pub(super) fn found(hit: bool) -> rcache_status {
    if hit { OK } else { MISS }
}

/// The library's default options, as `rcache_client_connect` applies them
/// when passed NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rcache_options_default() -> rcache_options {
    rcache_options::from_options(&crate::Options::default())
}

/// Opens a client for `url` and stores the new handle in `*client_out`.
///
/// `url` is a NUL-terminated URL: `memory://` (the embedded in-process store,
/// also used when `url` is NULL or empty), `redis://[user:password@]host[:port][/db]`,
/// `rediss://...` (TLS), `unix:///path/to/socket[?db=N]`,
/// `redis+sentinel://[user:password@]host:port,host:port/<service>[/db]` (the
/// primary the sentinels name, followed through failovers) or
/// `redis+cluster://[user:password@]host:port,host:port` (a Redis Cluster);
/// `rediss+sentinel://` and `rediss+cluster://` use TLS. Every `rediss` form
/// takes `?tls_ca=<PEM file>` (trusted instead of the system's roots) and
/// `&tls_cert=<PEM file>&tls_key=<PEM file>` (a client certificate).
/// `options` may be NULL for the defaults. For Redis, waits for the first
/// connection at most the connect timeout. `*client_out` is written only on
/// `RCACHE_STATUS_OK`.
///
/// Any Redis URL (standalone, Sentinel or Cluster) may add a near cache, e.g.
/// `redis://host:6379/0?near_cache=100000&near_cache_bytes=67108864`:
/// `near_cache` is the most entries kept in process memory, `near_cache_bytes`
/// the most bytes (default 64 MiB). Reads are then answered from memory while
/// the server (Redis 6 or later, RESP3 and CLIENT TRACKING) has not reported a
/// change: a write or tag invalidation by any client is seen once its report
/// arrives, writes by this handle at once, and everything is dropped when the
/// connection carrying the reports breaks, Sentinel names another primary or
/// a Cluster's slot map changes. `memory://` URLs take no near cache
/// (`RCACHE_STATUS_INVALID_ARGUMENT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_connect(
    url: *const c_char,
    options: *const rcache_options,
    client_out: *mut *mut rcache_client,
) -> rcache_status {
    guard(|| {
        // SAFETY: the caller passes writable storage for one pointer, or NULL.
        let client_out = unsafe { out_param(client_out, "client_out") }?;
        let url = match url.is_null() {
            true => None,
            // SAFETY: the caller passes a NUL-terminated string.
            false => Some(unsafe { CStr::from_ptr(url) }.to_str().map_err(|_| Failure::invalid("url is not UTF-8"))?),
        };
        let options = match options.is_null() {
            true => crate::Options::default(),
            // SAFETY: non-NULL options point to an rcache_options whose key_prefix is NULL or NUL-terminated.
            false => unsafe { (*options).to_options() }?,
        };
        let generation = fork::generation();
        let cache = Cache::connect(url, options)?;
        *client_out = Box::into_raw(Box::new(rcache_client { cache: Arc::new(cache), generation }));
        Ok(OK)
    })
}

/// Releases the handle, and closes the connection unless a session store or
/// a queue (`rcache_queue_new`) opened on it is still open (it keeps the
/// connection until it is freed). NULL is a no-op. No other call on the
/// handle may run or follow. Called from a compute callback of this handle
/// (whose call is still running) it frees nothing and sets
/// `rcache_last_error()`. In a child process after fork() the
/// inherited handle is not touched (its connection belongs to the parent): its
/// memory is left allocated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_free(client: *mut rcache_client) {
    guard_void(|| {
        if client.is_null() {
            return Ok(OK);
        }
        if super::compute::is_computing(client) {
            return Err(Failure::invalid(
                "rcache_client_free was called inside a compute callback of this client, whose call is still running: nothing was freed",
            ));
        }
        // SAFETY: a non-NULL handle comes from rcache_client_connect and is freed once.
        let client = unsafe { Box::from_raw(client) };
        if client.generation != fork::generation() {
            std::mem::forget(client);
        }
        Ok(OK)
    });
}

/// Reads `key`. On `RCACHE_STATUS_OK` the value is in `*value_out`, to be
/// released with `rcache_buffer_free`; on `RCACHE_STATUS_MISS` `*value_out` is untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_get(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    value_out: *mut rcache_buffer,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, value_out) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, out_param(value_out, "value_out")?) };
        Ok(match cache.get(key)? {
            Some(value) => {
                *value_out = rcache_buffer::from_vec(value);
                OK
            }
            None => MISS,
        })
    })
}

/// Answers `key` from the handle's near cache alone (see
/// `rcache_client_connect`): never sends anything to the server and never
/// waits for I/O, so it may be called where blocking is not allowed (a
/// Python caller may keep its interpreter lock around it).
///
/// `RCACHE_STATUS_OK`: a live copy is held and its length is in
/// `*value_len_out`. If it is at most `value_buf_len`, its bytes are copied
/// to `value_buf` and the call counts as a near hit; if not, nothing is
/// copied or counted: call again with a buffer of `*value_len_out` bytes
/// (the copy may have changed meanwhile), or use `rcache_client_get`.
/// `RCACHE_STATUS_MISS`: no live copy is held, or the handle has no near
/// cache; `*value_len_out` is untouched and no miss is counted: read the key
/// with `rcache_client_get`, which counts it. The key is checked as in
/// `rcache_client_get`. `value_buf` may be NULL only when `value_buf_len`
/// is 0. Both buffers stay the caller's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_near_get(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    value_buf: *mut u8,
    value_buf_len: usize,
    value_len_out: *mut usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, value_len_out) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, out_param(value_len_out, "value_len_out")?) };
        if value_buf.is_null() && value_buf_len > 0 {
            return Err(Failure::invalid(format!("value_buf is NULL but its length is {value_buf_len}")));
        }
        let mut too_long = None;
        let copied = cache.get_held(key, |value| {
            if value.len() > value_buf_len {
                too_long = Some(value.len());
                return None;
            }
            // SAFETY: value_buf has room for value_buf_len >= value.len() bytes (it is NULL only
            // when 0 bytes are copied), and it is the caller's memory, not the near cache's.
            unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), value_buf, value.len()) };
            Some(value.len())
        })?;
        Ok(match copied.or(too_long) {
            Some(len) => {
                *value_len_out = len;
                OK
            }
            None => MISS,
        })
    })
}

/// Stores `value` under `key`, replacing whatever it held. Keys are
/// binary-safe; keys starting with `__rcache_` are reserved for the library's
/// own tags and locks (`RCACHE_STATUS_INVALID_ARGUMENT`). `ttl_ms` > 0 is the
/// TTL in milliseconds; `RCACHE_TTL_DEFAULT` (0) applies the client's default
/// TTL; `RCACHE_TTL_NONE` (-1) stores without expiry; `RCACHE_TTL_KEEP` (-2)
/// keeps the key's current expiry (a new key gets none), like Redis's
/// `KEEPTTL`. Other negative values, and values over `RCACHE_TTL_MAX`, get
/// `RCACHE_STATUS_INVALID_ARGUMENT`; so does `RCACHE_TTL_KEEP` in every other
/// function than this one, `rcache_client_compare_and_set` and `rcache_client_hash_set`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_set(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: i64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, value) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, bytes(value, value_len, "value")?) };
        cache.set(key, value, ttl_from_millis(ttl_ms)?)?;
        Ok(OK)
    })
}

/// Reads `key` and its remaining TTL in one round trip. On
/// `RCACHE_STATUS_OK` the value is in `*value_out`, to be released with
/// `rcache_buffer_free`, and the remaining milliseconds in `*ttl_ms_out`
/// (`RCACHE_TTL_NONE` (-1) for a key without expiry); on `RCACHE_STATUS_MISS`
/// both are untouched. Counted as a hit or a miss in the stats, like
/// `rcache_client_get`, and a hash record is `RCACHE_STATUS_WRONG_TYPE` as there.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_get_with_ttl(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    value_out: *mut rcache_buffer,
    ttl_ms_out: *mut i64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, value_out, ttl_ms_out) = unsafe {
            (
                rcache_client::cache(client)?,
                bytes(key, key_len, "key")?,
                out_param(value_out, "value_out")?,
                out_param(ttl_ms_out, "ttl_ms_out")?,
            )
        };
        let Some((value, remaining)) = cache.get_with_ttl(key)? else { return Ok(MISS) };
        let Some(ttl_ms) = millis_left(remaining) else { return Ok(MISS) };
        *value_out = rcache_buffer::from_vec(value);
        *ttl_ms_out = ttl_ms;
        Ok(OK)
    })
}

/// Stores `value` under `key` only if `key` holds exactly `expected` now,
/// in one atomic step: `RCACHE_STATUS_OK` when stored, `RCACHE_STATUS_MISS`
/// (nothing stored) when the key is missing or holds another value. A tagged
/// entry is compared by its value and replaced by a plain one; a hash record
/// is `RCACHE_STATUS_WRONG_TYPE`. `ttl_ms` as in `rcache_client_set`,
/// `RCACHE_TTL_KEEP` included. Not retried, and not answered by `fail_open`:
/// after `RCACHE_STATUS_TIMEOUT` or `RCACHE_STATUS_CONNECTION` the value may
/// or may not have been stored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_compare_and_set(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    expected: *const u8,
    expected_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: i64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, expected, value) = unsafe {
            (
                rcache_client::cache(client)?,
                bytes(key, key_len, "key")?,
                bytes(expected, expected_len, "expected")?,
                bytes(value, value_len, "value")?,
            )
        };
        Ok(found(cache.compare_and_set(key, expected, value, ttl_from_millis(ttl_ms)?)?))
    })
}

/// Deletes `key`: `RCACHE_STATUS_OK` if it existed, `RCACHE_STATUS_MISS` if not.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_delete(client: *const rcache_client, key: *const u8, key_len: usize) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key) = unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?) };
        Ok(found(cache.delete(key)?))
    })
}

/// `RCACHE_STATUS_OK` if `key` exists, `RCACHE_STATUS_MISS` if not.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_exists(client: *const rcache_client, key: *const u8, key_len: usize) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key) = unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?) };
        Ok(found(cache.exists(key)?))
    })
}

/// Remaining TTL of `key` in milliseconds, in `*ttl_ms_out`: `RCACHE_TTL_NONE`
/// (-1) for an entry without expiry. `RCACHE_STATUS_MISS` (output untouched) if the key is missing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_ttl(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    ttl_ms_out: *mut i64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, ttl_ms_out) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, out_param(ttl_ms_out, "ttl_ms_out")?) };
        Ok(match millis_left(cache.remaining(key)?) {
            None => MISS,
            Some(ttl_ms) => {
                *ttl_ms_out = ttl_ms;
                OK
            }
        })
    })
}

/// A remaining lifetime as C reads it: milliseconds, or `RCACHE_TTL_NONE`
/// for no expiry; `None` for a missing key.
fn millis_left(remaining: Remaining) -> Option<i64> {
    match remaining {
        Remaining::Missing => None,
        Remaining::Forever => Some(super::types::RCACHE_TTL_NONE),
        Remaining::Left(left) => Some(i64::try_from(left.as_millis()).unwrap_or(i64::MAX)),
    }
}

/// Gives an existing `key` a new TTL (same conventions as `rcache_client_set`;
/// `RCACHE_TTL_NONE` removes the expiry). `RCACHE_STATUS_MISS` if the key is missing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_expire(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    ttl_ms: i64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key) = unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?) };
        Ok(found(cache.expire(key, ttl_from_millis(ttl_ms)?)?))
    })
}

/// Reads `count` keys in one round trip. On `RCACHE_STATUS_OK`, `values_out[i]`
/// holds the value of `keys[i]`, or `data == NULL` for a miss; release each
/// with `rcache_buffer_free` (or all with `rcache_buffers_free`). On an error
/// `values_out` is untouched. Unlike `rcache_client_get`, a Redis key holding
/// another data type reads as a miss here (MGET semantics).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_get_many(
    client: *const rcache_client,
    keys: *const rcache_bytes,
    count: usize,
    values_out: *mut rcache_buffer,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, keys) = unsafe { (rcache_client::cache(client)?, array(keys, count, "keys")?) };
        if values_out.is_null() && count > 0 {
            return Err(Failure::invalid("values_out is NULL"));
        }
        // SAFETY: each key's bytes are readable as the caller promises.
        let keys = keys.iter().map(|key| unsafe { bytes(key.data, key.len, "keys[i]") }).collect::<Result<Vec<_>, _>>()?;
        let values = cache.get_many(&keys)?;
        for (index, value) in values.into_iter().enumerate() {
            let buffer = value.map_or(rcache_buffer::EMPTY, rcache_buffer::from_vec);
            // SAFETY: values_out has room for `count` buffers; `index < count`.
            unsafe { values_out.add(index).write(buffer) };
        }
        Ok(OK)
    })
}

/// Stores `count` entries (`keys[i]` -> `values[i]`) with one TTL, all or
/// nothing, in one round trip. TTL conventions as in `rcache_client_set`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_set_many(
    client: *const rcache_client,
    keys: *const rcache_bytes,
    values: *const rcache_bytes,
    count: usize,
    ttl_ms: i64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, keys, values) =
            unsafe { (rcache_client::cache(client)?, array(keys, count, "keys")?, array(values, count, "values")?) };
        let entries = keys
            .iter()
            .zip(values)
            // SAFETY: each key's and value's bytes are readable as the caller promises.
            .map(|(key, value)| unsafe { Ok((bytes(key.data, key.len, "keys[i]")?, bytes(value.data, value.len, "values[i]")?)) })
            .collect::<Result<Vec<_>, Failure>>()?;
        cache.set_many(&entries, ttl_from_millis(ttl_ms)?)?;
        Ok(OK)
    })
}

/// Adds `delta` to the integer counter at `key` and writes the new value to
/// `*value_out`. A missing counter starts at 0 and gets `ttl_ms` in the same
/// atomic step (conventions as in `rcache_client_set`); an existing one keeps
/// its TTL. `RCACHE_STATUS_WRONG_TYPE` if the stored value is not a canonical
/// decimal integer (as Redis reads it), `RCACHE_STATUS_INVALID_ARGUMENT` if the
/// result would overflow `int64_t`; the stored value is unchanged in both cases.
/// Never retried: after `RCACHE_STATUS_TIMEOUT` the increment may have been applied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_incr(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    delta: i64,
    ttl_ms: i64,
    value_out: *mut i64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, value_out) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, out_param(value_out, "value_out")?) };
        *value_out = cache.increment(key, delta, ttl_from_millis(ttl_ms)?)?;
        Ok(OK)
    })
}

/// The client's counters so far, in `*stats_out`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_stats(client: *const rcache_client, stats_out: *mut rcache_stats) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, stats_out) = unsafe { (rcache_client::cache(client)?, out_param(stats_out, "stats_out")?) };
        let stats = cache.stats();
        let micros = |latency: std::time::Duration| latency.as_micros() as u64;
        *stats_out = rcache_stats {
            hits: stats.hits,
            misses: stats.misses,
            computations: stats.computations,
            lock_waits: stats.lock_waits,
            early_refreshes: stats.early_refreshes,
            fail_opens: stats.fail_opens,
            breaker_trips: stats.breaker_trips,
            breaker_skips: stats.breaker_skips,
            connection_errors: stats.connection_errors,
            timeout_errors: stats.timeout_errors,
            server_errors: stats.server_errors,
            other_errors: stats.other_errors,
            latency_p50_us: micros(stats.latency_p50),
            latency_p99_us: micros(stats.latency_p99),
            latency_max_us: micros(stats.latency_max),
            near_hits: stats.near_hits,
            near_misses: stats.near_misses,
            near_invalidations: stats.near_invalidations,
            near_evictions: stats.near_evictions,
            near_flushes: stats.near_flushes,
            near_entries: stats.near_entries,
            near_bytes: stats.near_bytes,
        };
        Ok(OK)
    })
}

/// Borrowed `(name, value)` pairs.
pub(crate) type Pairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// The `(name, value)` pairs of two parallel `rcache_bytes` arrays of `count` elements.
///
/// # Safety
/// As `byte_strings`, for both arrays.
pub(crate) unsafe fn byte_pairs<'a>(
    names: *const rcache_bytes,
    values: *const rcache_bytes,
    count: usize,
) -> Result<Pairs<'a>, Failure> {
    // SAFETY: both arrays hold `count` rcache_bytes, as the caller promises.
    let (names, values) = unsafe { (byte_strings(names, count, "names")?, byte_strings(values, count, "values")?) };
    Ok(names.into_iter().zip(values).collect())
}

/// The byte strings of an `rcache_bytes` array argument.
///
/// # Safety
/// As `array` and `bytes`: `count` readable elements, each pointing to its readable bytes.
pub(crate) unsafe fn byte_strings<'a>(items: *const rcache_bytes, count: usize, name: &str) -> Result<Vec<&'a [u8]>, Failure> {
    // SAFETY: forwarded to the caller's promise.
    let items = unsafe { array(items, count, name) }?;
    // SAFETY: each element's bytes are readable as the caller promises.
    items.iter().map(|item| unsafe { bytes(item.data, item.len, name) }).collect()
}

/// Stores `value` under `key` like `rcache_client_set`, tagged with
/// `tag_count` tags: the entry becomes unreadable, from every client, once
/// any of its tags is invalidated with `rcache_client_invalidate_tags`.
/// Recording the tags and writing the entry is one atomic step, so a write
/// racing with an invalidation never survives it. At most 256 tags; with none
/// this is `rcache_client_set`. `RCACHE_TTL_KEEP` is refused when there are tags.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_set_tagged(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: i64,
    tags: *const rcache_bytes,
    tag_count: usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, value, tags) = unsafe {
            (
                rcache_client::cache(client)?,
                bytes(key, key_len, "key")?,
                bytes(value, value_len, "value")?,
                byte_strings(tags, tag_count, "tags")?,
            )
        };
        cache.set_with_tags(key, value, ttl_from_millis(ttl_ms)?, &tags)?;
        Ok(OK)
    })
}

/// Adds tags to the existing entry at `key`, keeping its value and TTL.
/// `RCACHE_STATUS_MISS` if the key is missing or already invalidated.
/// `RCACHE_STATUS_INVALID_ARGUMENT`, with nothing added, when the entry would
/// then carry more than `RCACHE_MAX_TAGS` tags (tags it has already count once).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_add_tags(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    tags: *const rcache_bytes,
    tag_count: usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, tags) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, byte_strings(tags, tag_count, "tags")?) };
        Ok(found(cache.add_tags(key, &tags)?))
    })
}

/// Invalidates `tag_count` tags: when this returns `RCACHE_STATUS_OK`, no
/// client reads an entry that carried any of them. Costs one small write per
/// tag, whatever the number of tagged entries; the entries themselves are
/// left to expire.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_invalidate_tags(
    client: *const rcache_client,
    tags: *const rcache_bytes,
    tag_count: usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, tags) = unsafe { (rcache_client::cache(client)?, byte_strings(tags, tag_count, "tags")?) };
        cache.invalidate_tags(&tags)?;
        Ok(OK)
    })
}

/// Deletes the keys of the client's namespace that match the glob `pattern`
/// (Redis syntax: `*`, `?`, `[...]`, `\` escapes; matched against keys without
/// the prefix), or all of the namespace's keys (tags included) when `pattern`
/// is NULL and `pattern_len` is 0. NULL with a non-zero `pattern_len` is
/// `RCACHE_STATUS_INVALID_ARGUMENT` (nothing is deleted). On Redis it scans and unlinks in batches, never KEYS or FLUSHDB,
/// and never touches keys outside the namespace. The number deleted goes to
/// `*deleted_out` when that is not NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_clear(
    client: *const rcache_client,
    pattern: *const u8,
    pattern_len: usize,
    deleted_out: *mut u64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let cache = unsafe { rcache_client::cache(client) }?;
        // SAFETY: a non-NULL pattern points to pattern_len readable bytes.
        let pattern = unsafe { optional_pattern(pattern, pattern_len) }?;
        let deleted = cache.clear(pattern)?;
        // SAFETY: a non-NULL deleted_out points to writable storage.
        if let Some(out) = unsafe { deleted_out.as_mut() } {
            *out = deleted;
        }
        Ok(OK)
    })
}

/// Lists the keys of the client's namespace that match the glob `pattern`
/// (as in `rcache_client_clear`: Redis syntax, matched against keys without
/// the prefix; NULL with `pattern_len` 0 for every key, NULL with any other
/// length is `RCACHE_STATUS_INVALID_ARGUMENT`), of any type, without the prefix, in byte
/// order. The library's own keys (`__rcache_...`) and entries whose tags were
/// invalidated are left out; on `memory://` so are sessions, which it keeps
/// apart. On Redis it walks SCAN in batches, never KEYS: keys written or
/// deleted meanwhile may or may not be listed. On `RCACHE_STATUS_OK`,
/// `*keys_out` is an array of `*count_out` buffers, NULL when there are
/// none; release it with `rcache_buffer_array_free(*keys_out, *count_out)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_keys(
    client: *const rcache_client,
    pattern: *const u8,
    pattern_len: usize,
    keys_out: *mut *mut rcache_buffer,
    count_out: *mut usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, keys_out, count_out) =
            unsafe { (rcache_client::cache(client)?, out_param(keys_out, "keys_out")?, out_param(count_out, "count_out")?) };
        // SAFETY: a non-NULL pattern points to pattern_len readable bytes.
        let pattern = unsafe { optional_pattern(pattern, pattern_len) }?;
        (*keys_out, *count_out) = rcache_buffer::array_from(cache.keys(pattern)?);
        Ok(OK)
    })
}

/// The pattern argument of `rcache_client_clear` and `rcache_client_keys`:
/// `None` (every key) for NULL with length 0; NULL with a length is an error.
///
/// # Safety
/// A non-NULL `pattern` must point to `pattern_len` readable bytes that outlive the call.
unsafe fn optional_pattern<'a>(pattern: *const u8, pattern_len: usize) -> Result<Option<&'a [u8]>, Failure> {
    match pattern.is_null() && pattern_len == 0 {
        true => Ok(None),
        // SAFETY: forwarded to the caller's promise; NULL with a length is refused there.
        false => unsafe { bytes(pattern, pattern_len, "pattern") }.map(Some),
    }
}

/// The server's `INFO` text (every default section) in `*info_out`, to be
/// released with `rcache_buffer_free`. On `memory://` a text in the same
/// format (`# Section` lines, `name:value` lines, CRLF line ends, a blank
/// line between sections) with at least `rcache_backend:memory`,
/// `used_memory:<bytes>` and `keys:<count>`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_server_info(client: *const rcache_client, info_out: *mut rcache_buffer) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, info_out) = unsafe { (rcache_client::cache(client)?, out_param(info_out, "info_out")?) };
        *info_out = rcache_buffer::from_vec(cache.server_info()?);
        Ok(OK)
    })
}

/// Takes the lock `key` for `owner` (a token unique to the holder, not
/// empty) for `lease_ms` milliseconds (at least 1): `RCACHE_STATUS_OK` when
/// taken, `RCACHE_STATUS_MISS` when the key exists (someone holds the lock,
/// or a value is stored there). The key is an ordinary key of the namespace,
/// not the library's reserved lock space, and holds `owner` while locked: on
/// Redis this is exactly `SET key owner NX PX lease_ms`, and release is a
/// compare-and-delete, so other clients of that classic protocol
/// interoperate. Not retried: after `RCACHE_STATUS_TIMEOUT` the lock may be taken.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_lock(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    owner: *const u8,
    owner_len: usize,
    lease_ms: u32,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, owner) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, bytes(owner, owner_len, "owner")?) };
        Ok(found(cache.lock(key, owner, Duration::from_millis(lease_ms.into()))?))
    })
}

/// Renews the lease of the lock `key` to `lease_ms` from now if `owner`
/// holds it: `RCACHE_STATUS_OK` when renewed, `RCACHE_STATUS_MISS` when it
/// is not theirs (expired, released, or taken by another owner).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_extend_lock(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    owner: *const u8,
    owner_len: usize,
    lease_ms: u32,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, owner) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, bytes(owner, owner_len, "owner")?) };
        Ok(found(cache.extend_lock(key, owner, Duration::from_millis(lease_ms.into()))?))
    })
}

/// Releases the lock `key` if `owner` holds it, in one atomic
/// compare-and-delete: `RCACHE_STATUS_OK` when released, `RCACHE_STATUS_MISS`
/// when it is not theirs (nothing is deleted).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_unlock(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    owner: *const u8,
    owner_len: usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, owner) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, bytes(owner, owner_len, "owner")?) };
        Ok(found(cache.unlock(key, owner)?))
    })
}

/// Releases the bytes of a buffer the library handed out and resets it to
/// empty. NULL, and a buffer already empty, are no-ops.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_buffer_free(buffer: *mut rcache_buffer) {
    guard_void(|| {
        // SAFETY: a non-NULL buffer is one the library filled, or an empty one.
        let Some(buffer) = (unsafe { buffer.as_mut() }) else { return Ok(OK) };
        if !buffer.data.is_null() {
            let slice = std::ptr::slice_from_raw_parts_mut(buffer.data, buffer.len);
            // SAFETY: data and len come from rcache_buffer::from_vec's Box::into_raw.
            drop(unsafe { Box::from_raw(slice) });
        }
        *buffer = rcache_buffer::EMPTY;
        Ok(OK)
    });
}

/// `rcache_buffer_free` on each of `count` buffers of an array the caller
/// owns, as filled by `rcache_client_get_many`; the array itself is left to the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_buffers_free(buffers: *mut rcache_buffer, count: usize) {
    guard_void(|| {
        if !buffers.is_null() {
            for index in 0..count {
                // SAFETY: the caller passes `count` buffers filled by the library.
                unsafe { rcache_buffer_free(buffers.add(index)) };
            }
        }
        Ok(OK)
    });
}

/// Releases an array of buffers the library allocated (`rcache_client_keys`,
/// `rcache_client_hash_get`): every buffer in it, then the array itself.
/// `count` must be the count returned with the array. NULL is a no-op. Not
/// for arrays the caller allocated: use `rcache_buffers_free` on those.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_buffer_array_free(buffers: *mut rcache_buffer, count: usize) {
    guard_void(|| {
        if buffers.is_null() {
            return Ok(OK);
        }
        // SAFETY: the array holds `count` buffers the library filled, as documented.
        unsafe { rcache_buffers_free(buffers, count) };
        let array = std::ptr::slice_from_raw_parts_mut(buffers, count);
        // SAFETY: the array and its length come from rcache_buffer::array_from's Box::into_raw.
        drop(unsafe { Box::from_raw(array) });
        Ok(OK)
    });
}

/// Sets the handle's TTL jitter: every entry written afterwards with a TTL
/// (set, set-many, tagged set, compare-and-set, hash-set, get-or-compute)
/// lives up to `percent` percent less, at random and at least 1 ms, so that
/// entries written together do not expire together. 0 (the default) turns it
/// off; over 100 is `RCACHE_STATUS_INVALID_ARGUMENT`. Sessions and locks keep
/// their exact lifetimes. Any thread, at any time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_set_ttl_jitter(client: *const rcache_client, percent: u32) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let cache = unsafe { rcache_client::cache(client) }?;
        let percent = u8::try_from(percent).map_err(|_| Failure::invalid(format!("TTL jitter {percent} is over 100 percent")))?;
        cache.set_ttl_jitter(percent)?;
        Ok(OK)
    })
}
