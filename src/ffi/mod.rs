//! The C ABI: the only code that knows about C. Every export checks its
//! pointers, converts, calls the engine and converts back, inside a panic
//! boundary.
//!
//! All functions are thread-safe unless their documentation says otherwise.
#![deny(clippy::undocumented_unsafe_blocks)]

mod boundary;
mod client;
mod compute;
mod fork;
mod last_error;
mod metrics;
mod queue;
mod records;
mod session;
mod status;
mod types;
mod worker;

pub use client::*;
pub use compute::*;
pub use last_error::rcache_last_error;
pub use metrics::*;
pub use queue::*;
pub use records::*;
pub use session::*;
pub use status::{rcache_status, rcache_status_name};
pub use types::{
    RCACHE_MAX_TAGS, RCACHE_TTL_DEFAULT, RCACHE_TTL_KEEP, RCACHE_TTL_MAX, RCACHE_TTL_NONE, rcache_buffer, rcache_bytes,
    rcache_options, rcache_stats,
};

use std::ffi::c_char;

pub const RCACHE_VERSION_MAJOR: u32 = 0;
pub const RCACHE_VERSION_MINOR: u32 = 1;
pub const RCACHE_VERSION_PATCH: u32 = 0;
/// Raised whenever a function, struct or enum changes incompatibly; bindings
/// compare it with `rcache_abi_version()` before use.
pub const RCACHE_ABI_VERSION: u32 = 2;

/// The library version, e.g. `"0.1.0"`. Static; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn rcache_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version the library was built with; compare it with `RCACHE_ABI_VERSION`.
#[unsafe(no_mangle)]
pub extern "C" fn rcache_abi_version() -> u32 {
    RCACHE_ABI_VERSION
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_constants_match_the_crate_version() {
        let expected = format!("{}.{}.{}", super::RCACHE_VERSION_MAJOR, super::RCACHE_VERSION_MINOR, super::RCACHE_VERSION_PATCH);
        assert_eq!(env!("CARGO_PKG_VERSION"), expected);
    }

    #[test]
    fn the_soname_carries_the_abi_version() {
        assert_eq!(env!("RCACHE_SONAME"), format!("librcache.so.{}", super::RCACHE_ABI_VERSION));
    }

    #[test]
    fn the_c_tag_limit_is_the_engine_limit() {
        assert_eq!(super::RCACHE_MAX_TAGS, crate::MAX_TAGS);
    }

    #[test]
    fn the_c_ttl_limit_is_the_engine_limit() {
        assert_eq!(super::RCACHE_TTL_MAX as u128, crate::MAX_TTL.as_millis());
    }
}
