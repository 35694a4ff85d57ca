//! Plain C structs passed across the boundary.

use std::ffi::{CStr, c_char};
use std::time::Duration;

use crate::{MemoryLimits, Options, Ttl};

use super::status::Failure;

/// The longest TTL accepted, in milliseconds (100 years); longer ones get
/// `RCACHE_STATUS_INVALID_ARGUMENT`.
pub const RCACHE_TTL_MAX: i64 = 3_153_600_000_000;

/// Most tags one entry may carry, counted across `rcache_client_set_tagged`
/// and every later `rcache_client_add_tags`; so also most tags one call may name.
pub const RCACHE_MAX_TAGS: usize = 256;

/// Store without expiry: pass as `ttl_ms` (or as `default_ttl_ms`).
pub const RCACHE_TTL_NONE: i64 = -1;
/// Use the client's default TTL: pass as `ttl_ms`.
pub const RCACHE_TTL_DEFAULT: i64 = 0;
/// Keep the key's current expiry (a new key gets none), like Redis's
/// `SET ... KEEPTTL`: pass as `ttl_ms` to `rcache_client_set`,
/// `rcache_client_compare_and_set` and `rcache_client_hash_set`; other
/// functions refuse it with `RCACHE_STATUS_INVALID_ARGUMENT`.
pub const RCACHE_TTL_KEEP: i64 = -2;

/// Borrowed bytes: `len` bytes at `data`. `data` may be NULL only when `len` is 0.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rcache_bytes {
    pub data: *const u8,
    pub len: usize,
}

/// Bytes owned by the library, handed to the caller. Release them with
/// `rcache_buffer_free`. `data` is NULL only in a buffer that holds nothing
/// (a miss in `rcache_client_get_many`, or a freed buffer). Arrays of buffers
/// the library allocates (`rcache_client_keys`, `rcache_client_hash_get`)
/// are released, buffers and array together, with `rcache_buffer_array_free`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug)]
pub struct rcache_buffer {
    pub data: *mut u8,
    pub len: usize,
}

impl rcache_buffer {
    pub const EMPTY: rcache_buffer = rcache_buffer { data: std::ptr::null_mut(), len: 0 };

    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        rcache_buffer { data: Box::into_raw(boxed).cast::<u8>(), len }
    }

    /// A library-owned array of buffers and its length, NULL when empty;
    /// `rcache_buffer_array_free` releases it.
    pub fn array_from(items: Vec<Vec<u8>>) -> (*mut rcache_buffer, usize) {
        if items.is_empty() {
            return (std::ptr::null_mut(), 0);
        }
        let boxed: Box<[rcache_buffer]> = items.into_iter().map(rcache_buffer::from_vec).collect();
        let len = boxed.len();
        (Box::into_raw(boxed).cast::<rcache_buffer>(), len)
    }
}

/// Settings for `rcache_client_connect`. Start from `rcache_options_default()`
/// or zero the struct: every field left 0 (or NULL) takes the library default.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rcache_options {
    /// Bound on establishing a connection, in milliseconds. Default 1000.
    pub connect_timeout_ms: u32,
    /// Bound on waiting for each reply, in milliseconds. Default 1000. A call
    /// ends within `connect_timeout_ms + response_timeout_ms` (a reconnect
    /// included), except that on a standalone or Sentinel server a large
    /// reply still arriving when that time is up is read to its end (only a
    /// wait with no progress is cut off; see docs/limits.md). After
    /// `RCACHE_STATUS_TIMEOUT` or `RCACHE_STATUS_CONNECTION` the command may
    /// or may not have been applied.
    pub response_timeout_ms: u32,
    /// NUL-terminated text prepended to every key, e.g. `"myapp:"`; NULL for none.
    /// Copied during `rcache_client_connect`.
    pub key_prefix: *const c_char,
    /// TTL of entries stored with `RCACHE_TTL_DEFAULT`, in milliseconds;
    /// 0 or `RCACHE_TTL_NONE` keeps them without expiry.
    pub default_ttl_ms: i64,
    /// Longest key accepted, prefix excluded. Default 64 KiB.
    pub max_key_bytes: usize,
    /// Longest value accepted, at most 512 MiB. Default 64 MiB.
    /// Longer keys and values get `RCACHE_STATUS_TOO_LARGE`.
    pub max_value_bytes: usize,
    /// `memory://` only: most entries kept before the least recently used are evicted. Default 1,000,000.
    pub memory_max_entries: usize,
    /// `memory://` only: most bytes (keys, values, bookkeeping) kept. Default 256 MiB.
    /// A single entry larger than this gets `RCACHE_STATUS_TOO_LARGE`.
    pub memory_max_bytes: usize,
    /// When the server cannot be reached or answers too late: reads return
    /// `RCACHE_STATUS_MISS`, writes of entries are dropped (`RCACHE_STATUS_OK`),
    /// get-or-compute computes without caching; each such call is counted in
    /// `rcache_stats.fail_opens`. Deletes, invalidations, clears and counters
    /// still report the error, and so do compare-and-set, hash-set, locks,
    /// key listing and server info. Default false.
    pub fail_open: bool,
    /// Consecutive connection failures or timeouts after which calls skip the
    /// server for `breaker_cooldown_ms`, failing at once with
    /// `RCACHE_STATUS_CONNECTION`. Default 5.
    pub breaker_threshold: u32,
    /// How long an open breaker turns calls away, in milliseconds. Default 500.
    pub breaker_cooldown_ms: u32,
}

/// Counters of a client's life so far, from `rcache_client_stats`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct rcache_stats {
    /// Reads that found a value (get, get-with-TTL, hash-get, get-many per
    /// key, get-or-compute), near-cache hits included.
    pub hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Computations run by get-or-compute, early refreshes included.
    pub computations: u64,
    /// Get-or-compute calls that waited for another caller's computation.
    pub lock_waits: u64,
    /// Computations started early (XFetch) while the value was still valid.
    pub early_refreshes: u64,
    /// Calls answered without the server because of `fail_open`.
    pub fail_opens: u64,
    /// Times the circuit breaker opened.
    pub breaker_trips: u64,
    /// Calls the open breaker failed at once, without trying the server.
    pub breaker_skips: u64,
    /// Failed calls by kind: connection, timeout, server, anything else.
    pub connection_errors: u64,
    pub timeout_errors: u64,
    pub server_errors: u64,
    pub other_errors: u64,
    /// Latency of backend calls in microseconds (each within 19%); 0 before
    /// the first. Near-cache hits make no backend call.
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
    /// Near cache (`near_cache=` in the URL; all 0 without one): reads it
    /// answered, also counted in `hits`.
    pub near_hits: u64,
    /// Reads the near cache could not answer, sent to the server.
    pub near_misses: u64,
    /// Changed keys the server reported (a flushed database counts once).
    pub near_invalidations: u64,
    /// Entries evicted to stay within `near_cache` entries and `near_cache_bytes`.
    pub near_evictions: u64,
    /// Times the near cache was emptied at once: its tracking connection
    /// broke or was replaced, the database was flushed, or a clear ran.
    pub near_flushes: u64,
    /// Entries held now.
    pub near_entries: u64,
    /// Bytes held now (keys, values, bookkeeping), at most `near_cache_bytes`.
    pub near_bytes: u64,
}

impl rcache_options {
    pub fn from_options(options: &Options) -> Self {
        rcache_options {
            connect_timeout_ms: options.connect_timeout.as_millis() as u32,
            response_timeout_ms: options.response_timeout.as_millis() as u32,
            key_prefix: std::ptr::null(),
            default_ttl_ms: options.default_ttl.map_or(0, |ttl| ttl.as_millis() as i64),
            max_key_bytes: options.max_key_bytes,
            max_value_bytes: options.max_value_bytes,
            memory_max_entries: options.memory_limits.max_entries,
            memory_max_bytes: options.memory_limits.max_bytes,
            fail_open: options.fail_open,
            breaker_threshold: options.breaker_threshold,
            breaker_cooldown_ms: options.breaker_cooldown.as_millis() as u32,
        }
    }

    /// The engine's options.
    ///
    /// # Safety
    /// `key_prefix`, when not NULL, must point to a NUL-terminated string.
    pub unsafe fn to_options(&self) -> Result<Options, Failure> {
        let defaults = Options::default();
        let or_default = |value: usize, default: usize| if value == 0 { default } else { value };
        let millis_or = |value: u32, default: Duration| {
            if value == 0 { default } else { Duration::from_millis(value.into()) }
        };
        let key_prefix = if self.key_prefix.is_null() {
            Vec::new()
        } else {
            // SAFETY: the caller promises a NUL-terminated string (documented on the field).
            unsafe { CStr::from_ptr(self.key_prefix) }.to_bytes().to_vec()
        };
        let default_ttl = match self.default_ttl_ms {
            0 | RCACHE_TTL_NONE => None,
            ms if ms > 0 => Some(Duration::from_millis(ms as u64)),
            ms => return Err(Failure::invalid(format!("default_ttl_ms {ms} is negative"))),
        };
        Ok(Options {
            connect_timeout: millis_or(self.connect_timeout_ms, defaults.connect_timeout),
            response_timeout: millis_or(self.response_timeout_ms, defaults.response_timeout),
            key_prefix,
            default_ttl,
            max_key_bytes: or_default(self.max_key_bytes, defaults.max_key_bytes),
            max_value_bytes: or_default(self.max_value_bytes, defaults.max_value_bytes),
            memory_limits: MemoryLimits {
                max_entries: or_default(self.memory_max_entries, defaults.memory_limits.max_entries),
                max_bytes: or_default(self.memory_max_bytes, defaults.memory_limits.max_bytes),
            },
            fail_open: self.fail_open,
            breaker_threshold: if self.breaker_threshold == 0 { defaults.breaker_threshold } else { self.breaker_threshold },
            breaker_cooldown: millis_or(self.breaker_cooldown_ms, defaults.breaker_cooldown),
            ..defaults
        })
    }
}

/// Reads the C convention for a per-call TTL in milliseconds.
pub fn ttl_from_millis(ttl_ms: i64) -> Result<Ttl, Failure> {
    match ttl_ms {
        RCACHE_TTL_DEFAULT => Ok(Ttl::Default),
        RCACHE_TTL_NONE => Ok(Ttl::Never),
        RCACHE_TTL_KEEP => Ok(Ttl::Keep),
        ms if ms > 0 => Ok(Ttl::After(Duration::from_millis(ms as u64))),
        ms => Err(Failure::invalid(format!("ttl_ms {ms} is negative; use RCACHE_TTL_NONE (-1) for no expiry"))),
    }
}
