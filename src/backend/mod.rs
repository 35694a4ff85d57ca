//! Storage backends: the primitive operations the engine builds on.
//!
//! Keys reaching a backend already carry the namespace prefix and have been
//! checked against the configured limits.

mod memory;
mod redis;

pub use self::memory::{MemoryBackend, MemoryLimits};
pub use self::redis::{RedisBackend, RedisSettings};

use std::time::Duration;

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

/// The primitive operations every backend provides, each atomic on its own.
///
/// Implementations are shared between threads; every method may be called
/// concurrently.
pub trait Backend: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Values in the order of `keys`, in one round trip.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>>;
    fn set(&self, key: &[u8], value: &[u8], expiry: Expiry) -> Result<()>;
    /// Stores every entry with the same expiry, all or nothing, in one round trip.
    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()>;
    /// True when the key existed.
    fn delete(&self, key: &[u8]) -> Result<bool>;
    fn exists(&self, key: &[u8]) -> Result<bool>;
    fn remaining(&self, key: &[u8]) -> Result<Remaining>;
    /// Replaces the expiry of an existing entry; false when the key is missing.
    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool>;
    /// Adds `delta` to the integer stored at `key`, creating it from 0 with
    /// `expiry_if_new` in the same atomic step when it is missing.
    fn increment(&self, key: &[u8], delta: i64, expiry_if_new: Expiry) -> Result<i64>;
}
