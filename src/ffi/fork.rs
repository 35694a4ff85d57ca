//! Fork detection: a handle's I/O thread does not exist in a forked child.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn bump_generation() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Which process (in fork order) the caller runs in; changes in every child.
pub fn generation() -> u64 {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the handler only touches an atomic, which is async-signal-safe
        // as pthread_atfork child handlers must be.
        unsafe { libc::pthread_atfork(None, None, Some(bump_generation)) };
    });
    GENERATION.load(Ordering::Relaxed)
}
