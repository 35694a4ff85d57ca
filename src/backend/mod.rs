//! Storage backends: the primitive operations the engine builds on.
//!
//! Keys reaching a backend already carry the namespace prefix and have been
//! checked against the configured limits.

mod memory;
mod redis;

pub use self::memory::{MemoryBackend, MemoryLimits};
pub use self::redis::{RedisBackend, RedisSettings};

use std::time::Duration;

/// Tags outlive the entries recorded against them by this margin.
pub const TAG_MARGIN: Duration = Duration::from_millis(1000);

use crate::error::Result;

/// How long a stored entry lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    Never,
    After(Duration),
}

/// What a backend knows about an entry's remaining lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remaining {
    Missing,
    Forever,
    Left(Duration),
}

/// A value, the metadata stored beside it, and its remaining lifetime.
pub type ForRefresh = (Vec<u8>, Option<Vec<u8>>, Remaining);

/// The primitive operations every backend provides, each atomic on its own.
///
/// Implementations are shared between threads; every method may be called
/// concurrently.
pub trait Backend: Send + Sync {
    /// The value, or `None` when missing, expired, or carrying an invalidated tag.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Values in the order of `keys`, in one round trip.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>>;
    fn set(&self, key: &[u8], value: &[u8], expiry: Expiry) -> Result<()>;
    /// Stores every entry with the same expiry, all or nothing, in one round trip.
    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()>;
    /// Stores a value valid until any of `tags` (full tag keys) is invalidated.
    /// Reading the tags' tokens and writing the entry is one atomic step.
    fn set_tagged(&self, key: &[u8], value: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()>;
    /// Adds tags to a live entry, keeping its value and TTL; false when missing or invalid.
    fn add_tags(&self, key: &[u8], tags: &[Vec<u8>]) -> Result<bool>;
    /// Makes every entry carrying one of `tags` invalid, in O(number of tags).
    fn invalidate_tags(&self, tags: &[Vec<u8>]) -> Result<()>;
    /// Deletes every key matching the glob `pattern` (full keys), incrementally;
    /// returns how many were deleted.
    fn clear(&self, pattern: &[u8]) -> Result<u64>;
    /// For early refresh: the value at `key` (tags honoured), the bytes at
    /// `meta_key`, and the value's remaining lifetime, in one round trip.
    fn get_for_refresh(&self, key: &[u8], meta_key: &[u8]) -> Result<Option<ForRefresh>>;
    /// Takes the lock at `key` for `owner` (a unique token) for `lease`,
    /// unless anyone holds it; true when taken.
    fn lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool>;
    /// Renews a lock `owner` holds for another `lease`; false when it is not theirs any more.
    fn extend_lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool>;
    /// Releases a lock `owner` holds; false when it was not theirs.
    fn unlock(&self, key: &[u8], owner: &[u8]) -> Result<bool>;
    /// True when the key existed.
    fn delete(&self, key: &[u8]) -> Result<bool>;
    fn exists(&self, key: &[u8]) -> Result<bool>;
    fn remaining(&self, key: &[u8]) -> Result<Remaining>;
    /// Replaces the expiry of an existing entry; false when the key is missing.
    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool>;
    /// Adds `delta` to the integer stored at `key`, creating it from 0 with
    /// `expiry_if_new` in the same atomic step when it is missing.
    fn increment(&self, key: &[u8], delta: i64, expiry_if_new: Expiry) -> Result<i64>;
    /// How often a circuit breaker opened, and how many calls it turned away.
    fn breaker_counts(&self) -> (u64, u64) {
        (0, 0)
    }
}
