//! The thread-local message of the last failed call.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Empties the message; a no-op when it is already empty (no allocation on the hot path).
pub fn clear() {
    LAST_ERROR.with(|slot| {
        if !slot.borrow().is_empty() {
            *slot.borrow_mut() = CString::default();
        }
    });
}

pub fn set(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// The reason of the last failed call on this thread, or `""`. Every
/// function that returns an `rcache_status` sets it: to the reason when the
/// status is an error, to `""` when it is `RCACHE_STATUS_OK` or
/// `RCACHE_STATUS_MISS`. Functions that return no status (the `_free`
/// functions, `rcache_session_record_*` accessors other than
/// `rcache_session_record_field`, `rcache_version`, ...) leave it as it is.
/// The string belongs to the library and stays valid until the next call on
/// the same thread that returns a status; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn rcache_last_error() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}
