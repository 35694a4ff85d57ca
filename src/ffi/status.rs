//! The status every fallible export returns, and failures on their way to C.

use std::ffi::{c_char, c_int};

use crate::error::{Error, ErrorKind};

use super::last_error;

/// The outcome of a call. `RCACHE_STATUS_OK` and `RCACHE_STATUS_MISS` are
/// successes, and so are `RCACHE_STATUS_STALE` and `RCACHE_STATUS_NO_VALUE`
/// (returned only by `rcache_client_get_or_compute_failsafe`); every other value is an error whose reason
/// `rcache_last_error()` gives on the same thread.
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rcache_status {
    /// The call did what was asked.
    RCACHE_STATUS_OK = 0,
    /// The key does not exist (or has expired). Not an error.
    RCACHE_STATUS_MISS = 1,
    /// A NULL pointer, an empty key, a TTL out of range, a malformed URL or option.
    RCACHE_STATUS_INVALID_ARGUMENT = 2,
    /// The server could not be reached or the connection broke.
    RCACHE_STATUS_CONNECTION = 3,
    /// The server did not answer within the configured timeout. Only calls
    /// that are safe to run twice end with this status (see
    /// `RCACHE_STATUS_UNKNOWN_OUTCOME`); a timed-out request is never sent again.
    RCACHE_STATUS_TIMEOUT = 4,
    /// The server answered with an error.
    RCACHE_STATUS_SERVER = 5,
    /// The stored value has the wrong type for the operation (for example a counter that is not an integer).
    RCACHE_STATUS_WRONG_TYPE = 6,
    /// A key or value exceeds the configured limit.
    RCACHE_STATUS_TOO_LARGE = 7,
    /// The handle was created before a fork(); create a new one in this process.
    RCACHE_STATUS_FORKED = 8,
    /// The URL names a feature this build does not provide (no URL does today;
    /// kept so the values stay stable).
    RCACHE_STATUS_UNSUPPORTED = 9,
    /// The library hit an internal bug; the handle is still safe to free.
    RCACHE_STATUS_PANIC = 10,
    /// Stored data could not be decoded (for example a damaged tagged entry);
    /// nothing was changed.
    RCACHE_STATUS_CORRUPT = 11,
    /// A compute callback failed; its message is in `rcache_last_error()`.
    RCACHE_STATUS_COMPUTE_FAILED = 12,
    /// A versioned save found a newer version: nothing was saved; load again.
    RCACHE_STATUS_CONFLICT = 13,
    /// The request reached the server, or may have, and its reply was lost
    /// (the connection dropped, or no reply came within the timeout): the
    /// call ran once or not at all, and was not sent again. Read the data
    /// to learn which.
    ///
    /// Which calls are sent again after a dropped connection (never after a
    /// timeout), on every topology:
    /// - sent again (a second run gives the same answer and data): get,
    ///   get_with_ttl, get_many, exists, ttl, key listing, hash get, server
    ///   info, session load, touch and listing, set (plain value, any TTL),
    ///   set_many, set with tags, add_tags, invalidate_tags, hash set with no
    ///   condition, expire;
    /// - never sent again, `RCACHE_STATUS_UNKNOWN_OUTCOME` when the reply is
    ///   lost: increment, compare-and-set, lock extend, hash set if exists / if absent,
    ///   lock, unlock, delete, clear, session create, save, destroy and purge.
    ///
    /// A reply saying the request did not run (a Cluster redirect, TRYAGAIN,
    /// CLUSTERDOWN, LOADING, a refused connection) is followed on every call.
    RCACHE_STATUS_UNKNOWN_OUTCOME = 14,
    /// A success of `rcache_client_get_or_compute_failsafe`: the value
    /// returned is the last good one, served by fail-safe instead of an
    /// error (the computation failed or timed out, or the server could not
    /// be reached); it may be past its expiry. `rcache_last_error()` is not set.
    RCACHE_STATUS_STALE = 15,
    /// A success of `rcache_client_get_or_compute_failsafe`: the computation
    /// found no value (negative caching); nothing is returned.
    RCACHE_STATUS_NO_VALUE = 16,
}

impl From<ErrorKind> for rcache_status {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidArgument => rcache_status::RCACHE_STATUS_INVALID_ARGUMENT,
            ErrorKind::Connection => rcache_status::RCACHE_STATUS_CONNECTION,
            ErrorKind::Timeout => rcache_status::RCACHE_STATUS_TIMEOUT,
            ErrorKind::Server => rcache_status::RCACHE_STATUS_SERVER,
            ErrorKind::WrongType => rcache_status::RCACHE_STATUS_WRONG_TYPE,
            ErrorKind::TooLarge => rcache_status::RCACHE_STATUS_TOO_LARGE,
            ErrorKind::Unsupported => rcache_status::RCACHE_STATUS_UNSUPPORTED,
            ErrorKind::Corrupt => rcache_status::RCACHE_STATUS_CORRUPT,
            ErrorKind::UnknownOutcome => rcache_status::RCACHE_STATUS_UNKNOWN_OUTCOME,
        }
    }
}

/// A failed call: the status C sees and the message `rcache_last_error` gives.
#[derive(Debug)]
pub struct Failure {
    pub status: rcache_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: rcache_status, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(rcache_status::RCACHE_STATUS_INVALID_ARGUMENT, message)
    }

    /// Records the message for this thread and hands back the status.
    pub fn report(self) -> rcache_status {
        last_error::set(&self.message);
        self.status
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::new(error.kind.into(), error.message)
    }
}

/// The enumerator's name for a status value, e.g. `"RCACHE_STATUS_MISS"`, or
/// `"RCACHE_STATUS_UNKNOWN"` for a value outside the enum. Never NULL; the
/// string is static.
#[unsafe(no_mangle)]
pub extern "C" fn rcache_status_name(status: c_int) -> *const c_char {
    use rcache_status::*;
    let known = [
        (RCACHE_STATUS_OK, c"RCACHE_STATUS_OK"),
        (RCACHE_STATUS_MISS, c"RCACHE_STATUS_MISS"),
        (RCACHE_STATUS_INVALID_ARGUMENT, c"RCACHE_STATUS_INVALID_ARGUMENT"),
        (RCACHE_STATUS_CONNECTION, c"RCACHE_STATUS_CONNECTION"),
        (RCACHE_STATUS_TIMEOUT, c"RCACHE_STATUS_TIMEOUT"),
        (RCACHE_STATUS_SERVER, c"RCACHE_STATUS_SERVER"),
        (RCACHE_STATUS_WRONG_TYPE, c"RCACHE_STATUS_WRONG_TYPE"),
        (RCACHE_STATUS_TOO_LARGE, c"RCACHE_STATUS_TOO_LARGE"),
        (RCACHE_STATUS_FORKED, c"RCACHE_STATUS_FORKED"),
        (RCACHE_STATUS_UNSUPPORTED, c"RCACHE_STATUS_UNSUPPORTED"),
        (RCACHE_STATUS_PANIC, c"RCACHE_STATUS_PANIC"),
        (RCACHE_STATUS_CORRUPT, c"RCACHE_STATUS_CORRUPT"),
        (RCACHE_STATUS_COMPUTE_FAILED, c"RCACHE_STATUS_COMPUTE_FAILED"),
        (RCACHE_STATUS_CONFLICT, c"RCACHE_STATUS_CONFLICT"),
        (RCACHE_STATUS_UNKNOWN_OUTCOME, c"RCACHE_STATUS_UNKNOWN_OUTCOME"),
        (RCACHE_STATUS_STALE, c"RCACHE_STATUS_STALE"),
        (RCACHE_STATUS_NO_VALUE, c"RCACHE_STATUS_NO_VALUE"),
    ];
    let name = known.iter().find(|(known, _)| *known as c_int == status).map_or(c"RCACHE_STATUS_UNKNOWN", |(_, name)| *name);
    name.as_ptr()
}
