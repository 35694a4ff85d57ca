//! Storage backends: the primitive operations the engine builds on.
//!
//! Keys reaching a backend already carry the namespace prefix and have been
//! checked against the configured limits.

mod cluster;
mod cluster_near;
pub(crate) mod conn;
mod memory;
mod redis;
mod sentinel;
pub(crate) mod slots;
pub(crate) mod tls;
mod tracking;

pub use self::cluster::{ClusterBackend, ClusterSettings};
pub use self::memory::{MemoryBackend, MemoryLimits};
pub use self::redis::{RedisBackend, RedisSettings};
pub use self::sentinel::{SentinelBackend, SentinelSettings};

use std::sync::Arc;
use std::time::Duration;

/// Tags outlive the entries recorded against them by this margin.
pub const TAG_MARGIN: Duration = Duration::from_millis(1000);
/// How long a tag recorded by entries without a TTL lives after the last
/// write that records it (plus `TAG_MARGIN`): 30 days. A tag's lifetime is
/// always finite, so tags of deleted entries never pile up; an entry without
/// a TTL whose tag expires this way reads as a miss, never as stale.
pub const UNTIMED_TAG_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most tags one entry may carry, counted across the call that stores it and
/// every later `add_tags` (and so most tags one call may name).
pub const MAX_TAGS: usize = 256;

use crate::error::{Error, ErrorKind, Result};

/// The error of an `add_tags` that would give its entry `count` tags, more than `MAX_TAGS`.
pub(crate) fn too_many_tags(count: usize) -> Error {
    Error::invalid(format!("the entry would carry {count} tags, more than the limit of {MAX_TAGS} tags per entry"))
}

/// True for bytes that start like a tagged entry's stored form, which a
/// value the library stores raw (a lock owner) must never look like.
pub(crate) fn looks_tagged(value: &[u8]) -> bool {
    value.starts_with(conn::wire::TAG_MARKER)
}

/// How long a stored entry lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    Never,
    After(Duration),
}

/// What a write does to its key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteExpiry {
    /// Replaces it.
    Set(Expiry),
    /// Keeps the key's current expiry, as Redis's `KEEPTTL`: a key that is
    /// missing (or an invalidated tagged entry) gets none.
    Keep,
}

/// When a conditional write goes ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    Always,
    /// Only when the key exists.
    IfExists,
    /// Only when the key is missing.
    IfAbsent,
}

impl WriteCondition {
    /// The condition as the hash script takes it.
    pub(crate) const fn script_arg(self) -> &'static str {
        match self {
            WriteCondition::Always => "always",
            WriteCondition::IfExists => "if_exists",
            WriteCondition::IfAbsent => "if_absent",
        }
    }
}

/// What a backend knows about an entry's remaining lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remaining {
    Missing,
    Forever,
    Left(Duration),
}

/// A stored session: the caller's fields (reserved ones left out), its
/// version (bumped by every save) and when it was last saved or touched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionRecord {
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    pub version: u64,
    /// Milliseconds since the UNIX epoch.
    pub touched_ms: u64,
}

/// A versioned session save, as `Backend::session_save` takes it. Field
/// names in `set` and `delete` are the caller's fields: the backend does not
/// refuse reserved (`__`-prefixed) names, so the caller must.
#[derive(Clone, Copy)]
pub struct SessionSave<'a> {
    /// The session's full key, namespace prefix included.
    pub key: &'a [u8],
    /// The secret as stored (its hash); nothing is saved unless it matches,
    /// compared in constant time.
    pub secret: &'a [u8],
    /// The version the caller's copy was loaded at: a session now at another
    /// version is left as it is (`SaveOutcome::Conflict`). `None` saves over
    /// any version.
    pub expected: Option<u64>,
    /// Fields to set, applied after `delete`, so a name in both ends up set.
    pub set: &'a [(&'a [u8], &'a [u8])],
    /// Names of fields to delete; a name the session lacks is ignored.
    pub delete: &'a [&'a [u8]],
    /// The session's new expiry, counted from now.
    pub expiry: Expiry,
    /// Milliseconds since the UNIX epoch, recorded as the session's touched time.
    pub now_ms: u64,
}

/// What a versioned save did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Saved; the session's new version.
    Saved(u64),
    /// Not saved: the session is at this version, not the expected one.
    Conflict(u64),
    /// Not saved: no session with this id and secret.
    Missing,
}

/// A value, the metadata stored beside it, and its remaining lifetime.
pub type ForRefresh = (Vec<u8>, Option<Vec<u8>>, Remaining);

/// What `Backend::read_tracked` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackedRead<'a> {
    /// One key; a key of another type is an error, as in `get`.
    One,
    /// Any number of keys; keys of other types read as misses, as in `get_many`.
    Many,
    /// One key and the metadata stored beside it at this key, as in `get_for_refresh`.
    Refresh(&'a [u8]),
}

/// A value read by `Backend::read_tracked`, with what the near cache needs to
/// know about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedValue {
    pub value: Vec<u8>,
    /// Remaining lifetime when read; `None` for no expiry.
    pub ttl: Option<Duration>,
    /// Full keys of the tags the value depends on.
    pub tags: Vec<Vec<u8>>,
    /// Whether later changes of the value and of every one of its tags will
    /// be reported; false for a value that was rewritten while being read.
    pub tracked: bool,
}

/// What `Backend::read_tracked` returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackedReads {
    /// In the order of the keys; `None` for a miss.
    pub values: Vec<Option<TrackedValue>>,
    /// `TrackedRead::Refresh` only: the metadata, if any.
    pub meta: Option<Vec<u8>>,
}

/// Receives the server's reports of changed keys, for the near cache. Called
/// from the backend's own thread; every method must return quickly.
pub trait InvalidationSink: Send + Sync {
    /// Reports flow: every key read by `read_tracked` from now on is reported when it changes.
    fn connected(&self);
    /// Reports may have stopped: any key read so far may change unreported.
    fn disconnected(&self);
    /// These keys (full keys) changed, or may have.
    fn invalidate(&self, keys: &[&[u8]]);
    /// Every key may have changed (the database was flushed).
    fn invalidate_all(&self);
    /// Longest the sink may go unaware that reports stopped: the reporting
    /// connection is checked often enough to notice within this. `None`: a
    /// ping every 500 ms, answered within the response timeout.
    fn max_staleness(&self) -> Option<Duration> {
        None
    }
    /// `Some(prefix)`: report every change of a key starting with `prefix`
    /// (`CLIENT TRACKING ON BCAST PREFIX`), not only of the keys read.
    fn broadcast_prefix(&self) -> Option<&[u8]> {
        None
    }
}

/// The fields of a hash record, as (name, value) pairs.
pub type HashFields = Vec<(Vec<u8>, Vec<u8>)>;

/// Keys of another type than the operation expects (a hash record read as a
/// string value, or the other way round) get this error, as on Redis.
pub fn wrong_type() -> Error {
    Error::new(ErrorKind::WrongType, "WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// The primitive operations every backend provides, each atomic on its own.
///
/// Implementations are shared between threads; every method may be called
/// concurrently.
pub trait Backend: Send + Sync {
    /// The value, or `None` when missing, expired, or carrying an invalidated
    /// tag. A hash record is the wrong type.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// `get` and the value's remaining lifetime (never `Missing`), in one round trip.
    fn get_with_ttl(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Remaining)>>;
    /// Values in the order of `keys`, in one round trip; keys of another type read as `None`.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Stores a plain value, replacing whatever the key held, of any type.
    fn set(&self, key: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<()>;
    /// Stores `value` as a plain entry only if the key now holds a valid string
    /// value (plain or tagged) equal to `expected`; true when stored. A hash
    /// record is the wrong type.
    fn compare_and_set(&self, key: &[u8], expected: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<bool>;
    /// Stores every entry with the same expiry, all or nothing, in one round trip.
    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()>;
    /// Stores a value valid until any of `tags` (full tag keys) is invalidated.
    /// Reading the tags' tokens and writing the entry is one atomic step.
    fn set_tagged(&self, key: &[u8], value: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()>;
    /// Adds tags to a live entry, keeping its value and TTL; false when missing
    /// or invalid. Refuses (`too_many_tags`, nothing added) when the entry
    /// would then carry more than `MAX_TAGS`: counting and adding is one atomic step.
    fn add_tags(&self, key: &[u8], tags: &[Vec<u8>]) -> Result<bool>;
    /// Makes every entry carrying one of `tags` invalid, in O(number of tags).
    fn invalidate_tags(&self, tags: &[Vec<u8>]) -> Result<()>;
    /// Deletes every key matching the glob `pattern` (full keys), incrementally;
    /// returns how many were deleted.
    fn clear(&self, pattern: &[u8]) -> Result<u64>;
    /// Every live key matching the glob `pattern` (full keys), of any type,
    /// incrementally (SCAN on Redis), in no particular order and possibly
    /// with duplicates.
    fn keys(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Every field of the hash record at `key`; `None` when missing. A string
    /// value is the wrong type.
    fn hash_get(&self, key: &[u8]) -> Result<Option<HashFields>>;
    /// Merges `fields` into the hash record at `key` (creating it) and applies
    /// `expiry`, all in one atomic step, if `condition` holds; true when
    /// written. A string value is the wrong type (unless the condition fails first).
    fn hash_set(&self, key: &[u8], fields: &[(&[u8], &[u8])], expiry: WriteExpiry, condition: WriteCondition) -> Result<bool>;
    /// The server's `INFO` text (`# Section` headers, `name:value` lines, CRLF).
    fn server_info(&self) -> Result<Vec<u8>>;
    /// For early refresh: the value at `key` (tags honoured), the bytes at
    /// `meta_key`, and the value's remaining lifetime, in one round trip.
    fn get_for_refresh(&self, key: &[u8], meta_key: &[u8]) -> Result<Option<ForRefresh>>;
    /// Takes the lock at `key` for `owner` (a unique token) for `lease`,
    /// unless the key exists; true when taken. The lock is a plain value
    /// holding `owner` (`SET key owner NX PX lease` on Redis).
    fn lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool>;
    /// Renews a lock `owner` holds for another `lease`; false when it is not
    /// theirs any more (or the key holds anything but a plain `owner`).
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
    /// Creates a session at `key` unless one exists; false when it does.
    fn session_create(&self, key: &[u8], secret: &[u8], fields: &[(&[u8], &[u8])], expiry: Expiry, now_ms: u64) -> Result<bool>;
    /// The session if `secret` matches (compared in constant time), else
    /// `None` with nothing changed. `touch` slides its expiry.
    fn session_load(&self, key: &[u8], secret: &[u8], touch: Option<Expiry>, now_ms: u64) -> Result<Option<SessionRecord>>;
    /// Deletes and sets fields if the secret matches and the version is the
    /// expected one, bumping the version and sliding the expiry.
    fn session_save(&self, save: SessionSave<'_>) -> Result<SaveOutcome>;
    /// Slides the expiry if `secret` matches; false otherwise.
    fn session_touch(&self, key: &[u8], secret: &[u8], expiry: Expiry, now_ms: u64) -> Result<bool>;
    /// Deletes the session if `secret` matches; false otherwise.
    fn session_destroy(&self, key: &[u8], secret: &[u8]) -> Result<bool>;
    /// Every session whose key matches the glob `pattern`, with its full key.
    fn session_list(&self, pattern: &[u8]) -> Result<Vec<(Vec<u8>, SessionRecord)>>;
    /// Deletes the sessions matching `pattern` last saved or touched at or
    /// before `idle_since_ms`; returns how many.
    fn session_purge(&self, pattern: &[u8], idle_since_ms: u64) -> Result<u64>;
    /// How often a circuit breaker opened, and how many calls it turned away.
    fn breaker_counts(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Starts reporting to `sink` every later change of the keys read with
    /// `read_tracked` (and of the keys those reads depended on), until the
    /// backend is dropped. Fails when the server cannot report changes.
    fn track(&self, _sink: Arc<dyn InvalidationSink>) -> Result<()> {
        Err(Error::new(ErrorKind::Unsupported, "this backend cannot report changed keys"))
    }
    /// Reads as `get`, `get_many` or `get_for_refresh` do, such that later
    /// changes of the keys read, tags included, are reported to the sink
    /// given to `track` (values whose changes would not all be are marked
    /// untracked). `None` while nothing can be tracked (the sink has been or
    /// is being told): read again with the untracked operation.
    fn read_tracked(&self, _keys: &[Vec<u8>], _read: TrackedRead<'_>) -> Result<Option<TrackedReads>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_keep_tags_as_long_as_the_rust_side_does() {
        let script = include_str!("lua/tag.lua");
        assert!(script.contains(&format!("local TAG_MARGIN = {}\n", TAG_MARGIN.as_millis())));
        assert!(script.contains(&format!("local UNTIMED_TAG_LIFETIME = {}\n", UNTIMED_TAG_LIFETIME.as_millis())));
    }
}
