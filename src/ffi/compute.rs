//! Get-or-compute with a caller-supplied callback.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{CStr, c_char, c_void};
use std::time::Duration;

use crate::{ComputeError, ComputeOptions, OnWaitTimeout};

use super::boundary::{bytes, guard, non_null, out_param};
use super::client::{byte_strings, rcache_client};
use super::status::{Failure, rcache_status};
use super::types::{rcache_buffer, rcache_bytes, ttl_from_millis};

/// Where a compute callback leaves its result: call `rcache_compute_output_set`
/// (success) or `rcache_compute_output_fail` (failure) on it. Owned by the
/// library; valid only during the callback.
#[allow(non_camel_case_types)]
pub struct rcache_compute_output {
    value: Option<Vec<u8>>,
    failure: Option<String>,
}

/// Computes the value of a missing key. Runs on the thread that called
/// `rcache_client_get_or_compute`, at most once per call. Return true after
/// `rcache_compute_output_set`; return false (optionally after
/// `rcache_compute_output_fail`) to fail: nothing is stored and the call returns
/// `RCACHE_STATUS_COMPUTE_FAILED`. It may use the client, but must not free it.
#[allow(non_camel_case_types)]
pub type rcache_compute_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, output: *mut rcache_compute_output) -> bool>;

/// Settings of one `rcache_client_get_or_compute` call. Start from
/// `rcache_compute_options_default()`; in a zeroed struct every field takes
/// its default except `early_refresh_beta`, which 0 turns off.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rcache_compute_options {
    /// TTL of the stored value, as `ttl_ms` of `rcache_client_set`.
    pub ttl_ms: i64,
    /// Tags recorded with the stored value (as `rcache_client_set_tagged`); may be NULL when `tag_count` is 0.
    pub tags: *const rcache_bytes,
    pub tag_count: usize,
    /// Lease of the compute lock, renewed every third of it while the
    /// callback runs; a crashed process frees it after this long. Default 10000.
    pub lock_lease_ms: u32,
    /// Longest a caller waits for another caller's computation. Default 10000.
    pub wait_timeout_ms: u32,
    /// After `wait_timeout_ms`: false computes the value itself, true returns
    /// `RCACHE_STATUS_TIMEOUT`.
    pub fail_on_wait_timeout: bool,
    /// Early refresh (XFetch): a caller recomputes a still-valid value with a
    /// probability that rises as its expiry nears, scaled by how long the
    /// value took to compute, while the others keep getting it. 1.0 by
    /// default; 0 turns it off; larger refreshes earlier.
    pub early_refresh_beta: f64,
}

/// The default compute options: the client's default TTL, no tags, a 10 s
/// lease, a 10 s wait, then compute.
#[unsafe(no_mangle)]
pub extern "C" fn rcache_compute_options_default() -> rcache_compute_options {
    let defaults = ComputeOptions::default();
    rcache_compute_options {
        ttl_ms: 0,
        tags: std::ptr::null(),
        tag_count: 0,
        lock_lease_ms: defaults.lock_lease.as_millis() as u32,
        wait_timeout_ms: defaults.wait_timeout.as_millis() as u32,
        fail_on_wait_timeout: false,
        early_refresh_beta: defaults.early_refresh_beta,
    }
}

/// Gives the computed value (copied) to the library. Call it from the callback only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_compute_output_set(
    output: *mut rcache_compute_output,
    value: *const u8,
    value_len: usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: the library passed `output` to the callback; value points to value_len bytes.
        let (output, value) = unsafe { (out_param(output, "output")?, bytes(value, value_len, "value")?) };
        output.value = Some(value.to_vec());
        Ok(rcache_status::RCACHE_STATUS_OK)
    })
}

/// Records why the computation failed (a NUL-terminated message, copied; may
/// be NULL). The callback then returns false.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_compute_output_fail(output: *mut rcache_compute_output, message: *const c_char) -> rcache_status {
    guard(|| {
        // SAFETY: the library passed `output` to the callback.
        let output = unsafe { out_param(output, "output") }?;
        let message = match message.is_null() {
            true => "the compute callback failed".to_string(),
            // SAFETY: a non-NULL message is NUL-terminated.
            false => unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned(),
        };
        output.failure = Some(message);
        Ok(rcache_status::RCACHE_STATUS_OK)
    })
}

/// Reads `key`; on a miss calls `compute` to produce the value, stores it with
/// the options' TTL and tags, and returns it. Concurrent callers that miss the
/// same key, in any thread or process sharing the backend, wait while one of
/// them computes (a lock with a unique owner token, renewed while the
/// callback runs) and then get its value. If the callback fails, nothing is
/// stored, the lock is released and a waiting caller computes instead.
/// `options` may be NULL for the defaults. On `RCACHE_STATUS_OK` the value is
/// in `*value_out` (free it with `rcache_buffer_free`); `RCACHE_STATUS_COMPUTE_FAILED`
/// when the callback failed (its message in `rcache_last_error()`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_get_or_compute(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    options: *const rcache_compute_options,
    compute: rcache_compute_fn,
    user_data: *mut c_void,
    value_out: *mut rcache_buffer,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, value_out) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, out_param(value_out, "value_out")?) };
        let compute = compute.ok_or_else(|| Failure::invalid("compute is NULL"))?;
        let defaults = rcache_compute_options_default();
        let options = match options.is_null() {
            true => &defaults,
            // SAFETY: a non-NULL options points to an rcache_compute_options.
            false => unsafe { non_null(options, "options") }?,
        };
        // SAFETY: tags points to tag_count rcache_bytes, as documented on the struct.
        let tags = unsafe { byte_strings(options.tags, options.tag_count, "options.tags") }?;
        let millis_or = |value: u32, default: u32| Duration::from_millis(u64::from(if value == 0 { default } else { value }));
        let engine_options = ComputeOptions {
            ttl: ttl_from_millis(options.ttl_ms)?,
            tags: &tags,
            lock_lease: millis_or(options.lock_lease_ms, defaults.lock_lease_ms),
            wait_timeout: millis_or(options.wait_timeout_ms, defaults.wait_timeout_ms),
            on_wait_timeout: if options.fail_on_wait_timeout { OnWaitTimeout::Fail } else { OnWaitTimeout::Compute },
            early_refresh_beta: options.early_refresh_beta,
            ..ComputeOptions::default()
        };
        let run_callback = || {
            let mut output = rcache_compute_output { value: None, failure: None };
            // SAFETY: the caller supplies a callback that follows rcache_compute_fn's contract.
            let succeeded = unsafe { compute(user_data, &mut output) };
            match (succeeded, output.value, output.failure) {
                (true, Some(value), _) => Ok(value),
                (true, None, _) => Err("the compute callback returned true without rcache_compute_output_set".to_string()),
                (false, _, Some(message)) => Err(message),
                (false, _, None) => Err("the compute callback failed".to_string()),
            }
        };
        match cache.get_or_compute(key, &engine_options, run_callback) {
            Ok(value) => {
                *value_out = rcache_buffer::from_vec(value);
                Ok(rcache_status::RCACHE_STATUS_OK)
            }
            Err(ComputeError::Cache(error)) => Err(error.into()),
            Err(ComputeError::Compute(message)) => Err(Failure::new(rcache_status::RCACHE_STATUS_COMPUTE_FAILED, message)),
        }
    })
}
