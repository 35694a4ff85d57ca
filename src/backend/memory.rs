//! The embedded in-process backend: an LRU map with per-entry expiry behind
//! one lock, so the size bounds hold exactly for the whole store.

use std::time::Instant;

use lru::LruCache;
use parking_lot::Mutex;

use super::{Backend, Expiry, Remaining};
use crate::error::{Error, ErrorKind, Result};

/// Bytes charged per entry on top of its key and value, for the map's own bookkeeping.
const ENTRY_OVERHEAD: usize = 96;

/// Size bounds of a memory backend; the least recently used entries are
/// evicted to stay within both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

struct Entry {
    value: Box<[u8]>,
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    fn charge(key: &[u8], value: &[u8]) -> usize {
        key.len() + value.len() + ENTRY_OVERHEAD
    }
}

struct Store {
    entries: LruCache<Box<[u8]>, Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Store {
    /// The live entry for `key`, dropping it first if it has expired.
    fn live(&mut self, key: &[u8], now: Instant) -> Option<&mut Entry> {
        let expired = !self.entries.peek(key)?.is_live(now);
        if expired {
            self.remove(key);
            return None;
        }
        self.entries.get_mut(key)
    }

    /// Refuses an entry that could only be stored by evicting everything else and then itself.
    fn check_fits(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let charge = Entry::charge(key, value);
        if charge > self.max_bytes {
            return Err(Error::too_large(format!(
                "entry of {charge} bytes exceeds the memory backend's bound of {} bytes",
                self.max_bytes
            )));
        }
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        match self.entries.pop_entry(key) {
            Some((key, entry)) => {
                self.bytes -= Entry::charge(&key, &entry.value);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: &[u8], value: Box<[u8]>, expires_at: Option<Instant>, now: Instant) -> Result<()> {
        self.check_fits(key, &value)?;
        self.remove(key);
        self.bytes += Entry::charge(key, &value);
        self.entries.put(key.into(), Entry { value, expires_at });
        self.shrink(now);
        Ok(())
    }

    /// Drops expired entries at the cold end, then evicts until within bounds.
    fn shrink(&mut self, now: Instant) {
        while let Some((key, entry)) = self.entries.peek_lru() {
            let over = self.entries.len() > self.max_entries || self.bytes > self.max_bytes;
            if !over && entry.is_live(now) {
                break;
            }
            let charge = Entry::charge(key, &entry.value);
            self.entries.pop_lru();
            self.bytes -= charge;
        }
    }
}

/// An in-process store shared by every thread of the handle that owns it.
pub struct MemoryBackend {
    store: Mutex<Store>,
}

impl MemoryBackend {
    pub fn new(limits: MemoryLimits) -> Self {
        MemoryBackend {
            store: Mutex::new(Store {
                entries: LruCache::unbounded(),
                bytes: 0,
                max_entries: limits.max_entries,
                max_bytes: limits.max_bytes,
            }),
        }
    }

    /// Entries currently held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.store.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged against the `max_bytes` bound.
    pub fn bytes_used(&self) -> usize {
        self.store.lock().bytes
    }
}

fn deadline(expiry: Expiry, now: Instant) -> Option<Instant> {
    match expiry {
        Expiry::Never => None,
        Expiry::After(ttl) => Some(now + ttl),
    }
}

/// Reads a counter the way Redis does: canonical decimal only, so `"007"`,
/// `"+5"`, `"-0"` and `" 1"` are not integers.
fn parse_counter(value: &[u8]) -> Result<i64> {
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == value.len(),
        [first, ..] => *first != b'0' && digits.iter().all(u8::is_ascii_digit),
    };
    std::str::from_utf8(value)
        .ok()
        .filter(|_| canonical)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::WrongType, "value is not an integer or out of range"))
}

#[cfg(test)]
mod tests {
    use super::parse_counter;

    #[test]
    fn counters_are_read_as_redis_reads_them() {
        for accepted in ["0", "7", "-7", "9223372036854775807", "-9223372036854775808"] {
            assert_eq!(parse_counter(accepted.as_bytes()).unwrap().to_string(), accepted);
        }
        for refused in ["", "-", "007", "+5", "-0", " 1", "1 ", "1.0", "9223372036854775808", "x"] {
            assert!(parse_counter(refused.as_bytes()).is_err(), "{refused:?}");
        }
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let now = Instant::now();
        Ok(self.store.lock().live(key, now).map(|entry| entry.value.to_vec()))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    fn set(&self, key: &[u8], value: &[u8], expiry: Expiry) -> Result<()> {
        let now = Instant::now();
        self.store.lock().insert(key, value.into(), deadline(expiry, now), now)
    }

    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()> {
        let now = Instant::now();
        let expires_at = deadline(expiry, now);
        let mut store = self.store.lock();
        for (key, value) in entries {
            store.check_fits(key, value)?;
        }
        for (key, value) in entries {
            store.insert(key, (*value).into(), expires_at, now)?;
        }
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let now = Instant::now();
        let mut store = self.store.lock();
        let existed = store.live(key, now).is_some();
        store.remove(key);
        Ok(existed)
    }

    fn exists(&self, key: &[u8]) -> Result<bool> {
        let now = Instant::now();
        Ok(self.store.lock().live(key, now).is_some())
    }

    fn remaining(&self, key: &[u8]) -> Result<Remaining> {
        let now = Instant::now();
        Ok(match self.store.lock().live(key, now) {
            None => Remaining::Missing,
            Some(Entry { expires_at: None, .. }) => Remaining::Forever,
            Some(Entry { expires_at: Some(at), .. }) => Remaining::Left(*at - now),
        })
    }

    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool> {
        let now = Instant::now();
        Ok(match self.store.lock().live(key, now) {
            Some(entry) => {
                entry.expires_at = deadline(expiry, now);
                true
            }
            None => false,
        })
    }

    fn increment(&self, key: &[u8], delta: i64, expiry_if_new: Expiry) -> Result<i64> {
        let now = Instant::now();
        let mut store = self.store.lock();
        let (current, expires_at) = match store.live(key, now) {
            Some(entry) => (parse_counter(&entry.value)?, entry.expires_at),
            None => (0, deadline(expiry_if_new, now)),
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| Error::invalid("increment or decrement would overflow"))?;
        store.insert(key, next.to_string().into_bytes().into(), expires_at, now)?;
        Ok(next)
    }
}
