//! Hash records through the C API.
#![allow(clippy::missing_safety_doc)]

use std::ffi::c_int;

use crate::WriteCondition;

use super::boundary::{bytes, guard, out_param};
use super::client::{byte_pairs, found, rcache_client};
use super::status::{Failure, rcache_status};
use super::types::{rcache_buffer, rcache_bytes, ttl_from_millis};

use rcache_status::{RCACHE_STATUS_MISS as MISS, RCACHE_STATUS_OK as OK};

/// When `rcache_client_hash_set` writes. Passed to it as an `int`, so that a
/// value outside the enum is an argument error rather than undefined behaviour.
#[allow(non_camel_case_types, clippy::enum_variant_names)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rcache_write_condition {
    /// Write whether or not the key exists.
    RCACHE_WRITE_ALWAYS = 0,
    /// Write only when the key exists.
    RCACHE_WRITE_IF_EXISTS = 1,
    /// Write only when the key does not exist.
    RCACHE_WRITE_IF_ABSENT = 2,
}

fn write_condition(condition: c_int) -> Result<WriteCondition, Failure> {
    use rcache_write_condition::*;
    [
        (RCACHE_WRITE_ALWAYS, WriteCondition::Always),
        (RCACHE_WRITE_IF_EXISTS, WriteCondition::IfExists),
        (RCACHE_WRITE_IF_ABSENT, WriteCondition::IfAbsent),
    ]
    .into_iter()
    .find(|(known, _)| *known as c_int == condition)
    .map(|(_, condition)| condition)
    .ok_or_else(|| Failure::invalid(format!("condition {condition} is not an rcache_write_condition")))
}

/// Reads every field of the hash record at `key`. On `RCACHE_STATUS_OK`,
/// `*names_out` and `*values_out` are arrays of `*count_out` buffers (at
/// least one): field `i` is `(*names_out)[i]` -> `(*values_out)[i]`, in no
/// particular order. Release each array with
/// `rcache_buffer_array_free(array, *count_out)`. `RCACHE_STATUS_MISS`
/// (outputs untouched) when the key is missing; `RCACHE_STATUS_WRONG_TYPE`
/// when it holds a string value (as a record is to `rcache_client_get`).
/// Counted as a hit or a miss in the stats, like `rcache_client_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_hash_get(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    names_out: *mut *mut rcache_buffer,
    values_out: *mut *mut rcache_buffer,
    count_out: *mut usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, names_out, values_out, count_out) = unsafe {
            (
                rcache_client::cache(client)?,
                bytes(key, key_len, "key")?,
                out_param(names_out, "names_out")?,
                out_param(values_out, "values_out")?,
                out_param(count_out, "count_out")?,
            )
        };
        let Some(fields) = cache.hash_get(key)? else { return Ok(MISS) };
        let (names, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
        (*names_out, *count_out) = rcache_buffer::array_from(names);
        (*values_out, _) = rcache_buffer::array_from(values);
        Ok(OK)
    })
}

/// Merges `count` fields (`names[i]` -> `values[i]`, binary-safe; a repeated
/// name keeps its last value) into the hash record at `key`, creating it,
/// and sets its expiry, in one atomic step (`HSET` and `PEXPIRE` in one
/// script on Redis). `ttl_ms` as in `rcache_client_set`; `RCACHE_TTL_KEEP`
/// leaves the record's expiry as it is (a new record gets none). `condition`
/// is an `rcache_write_condition` value; any other is
/// `RCACHE_STATUS_INVALID_ARGUMENT`. `RCACHE_STATUS_OK` when written,
/// `RCACHE_STATUS_MISS` (nothing written) when the condition does not hold.
/// A key holding a string value is `RCACHE_STATUS_WRONG_TYPE` (with
/// `RCACHE_WRITE_IF_ABSENT` it is `RCACHE_STATUS_MISS`: the key exists).
/// `count` must be at least 1, and names and values together at most
/// `max_value_bytes`. Fields are never removed here: delete the key to drop
/// the record. Not retried, and not answered by `fail_open`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_hash_set(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    names: *const rcache_bytes,
    values: *const rcache_bytes,
    count: usize,
    ttl_ms: i64,
    condition: c_int,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key, fields) =
            unsafe { (rcache_client::cache(client)?, bytes(key, key_len, "key")?, byte_pairs(names, values, count)?) };
        let (ttl, condition) = (ttl_from_millis(ttl_ms)?, write_condition(condition)?);
        Ok(found(cache.hash_set(key, &fields, ttl, condition)?))
    })
}
