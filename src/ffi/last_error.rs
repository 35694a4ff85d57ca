//! The thread-local message of the last failed call.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub fn set(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// The reason of the last call on this thread that returned an error status,
/// or `""` if none has. The string belongs to the library and stays valid
/// until the next failing call on the same thread; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn rcache_last_error() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}
