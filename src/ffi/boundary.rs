//! The panic boundary and the checks every pointer argument goes through.

use std::any::Any;

use super::status::{Failure, rcache_status};

/// Runs an export's body, turning an `Err` into its status (recording the
/// message) and a panic into `RCACHE_STATUS_PANIC`. Nothing unwinds into C.
pub fn guard(body: impl FnOnce() -> Result<rcache_status, Failure>) -> rcache_status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => failure.report(),
        Err(payload) => Failure::new(rcache_status::RCACHE_STATUS_PANIC, panic_message(&*payload)).report(),
    }
}

/// For exports that return a plain value rather than a status: `body`'s
/// result, or `default` (with the panic recorded as the last error) if it panics.
pub fn guard_or<T>(default: T, body: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            Failure::new(rcache_status::RCACHE_STATUS_PANIC, panic_message(&*payload)).report();
            default
        }
    }
}

pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string());
    format!("internal error (panic): {detail}")
}

/// The referent of a pointer argument, or an argument error naming it.
///
/// # Safety
/// A non-NULL `ptr` must point to a live, properly aligned `T`.
pub unsafe fn non_null<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: forwarded to the caller's promise.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::invalid(format!("{name} is NULL")))
}

/// A mutable out-parameter, or an argument error naming it.
///
/// # Safety
/// A non-NULL `ptr` must point to writable, properly aligned memory for a `T`.
pub unsafe fn out_param<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: forwarded to the caller's promise.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::invalid(format!("{name} is NULL")))
}

/// `len` bytes at `data`; NULL is accepted only with `len == 0`.
///
/// # Safety
/// A non-NULL `data` must point to `len` readable bytes that outlive the call.
pub unsafe fn bytes<'a>(data: *const u8, len: usize, name: &str) -> Result<&'a [u8], Failure> {
    if data.is_null() {
        return match len {
            0 => Ok(&[]),
            _ => Err(Failure::invalid(format!("{name} is NULL but its length is {len}"))),
        };
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!("{name} length {len} is out of range")));
    }
    // SAFETY: non-NULL and in range; readability is the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// `count` elements at `data`; NULL is accepted only with `count == 0`.
///
/// # Safety
/// A non-NULL `data` must point to `count` readable elements that outlive the call.
pub unsafe fn array<'a, T>(data: *const T, count: usize, name: &str) -> Result<&'a [T], Failure> {
    if data.is_null() {
        return match count {
            0 => Ok(&[]),
            _ => Err(Failure::invalid(format!("{name} is NULL but its count is {count}"))),
        };
    }
    if count.checked_mul(size_of::<T>()).is_none_or(|size| size > isize::MAX as usize) {
        return Err(Failure::invalid(format!("{name} count {count} is out of range")));
    }
    // SAFETY: non-NULL and in range; readability is the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(data, count) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = guard(|| panic!("boom"));
        assert_eq!(status, rcache_status::RCACHE_STATUS_PANIC);
        // SAFETY: rcache_last_error returns a valid NUL-terminated string.
        let message = unsafe { std::ffi::CStr::from_ptr(super::super::last_error::rcache_last_error()) };
        assert!(message.to_str().unwrap().contains("boom"));
    }

    #[test]
    fn a_panic_in_a_value_export_gives_the_default() {
        assert_eq!(guard_or(7u64, || panic!("bang")), 7);
        assert_eq!(guard_or(7u64, || 3), 3);
    }
}
