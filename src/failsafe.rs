//! Fail-safe's in-process copies: the last value get-or-compute stored for
//! each key, kept for when the server cannot be reached.
//!
//! The copy the server keeps (a tagged entry at a reserved companion key)
//! is the one every process shares and the one tag invalidations reach;
//! this one only answers while the server is unreachable. It is dropped by
//! this handle's deletes, tag invalidations and clears, whatever their
//! outcome, and when a read of the server finds the shared copy gone.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

use crate::glob;

struct StaleCopy {
    value: Vec<u8>,
    /// Full keys of the tags the value was stored with.
    tags: Vec<Vec<u8>>,
    /// After this the copy may not be served any more.
    until: Instant,
}

/// At most `limit` copies, by caller key (without the prefix).
pub(crate) struct StaleCopies {
    limit: usize,
    copies: Mutex<HashMap<Vec<u8>, StaleCopy>>,
}

impl StaleCopies {
    pub fn new(limit: usize) -> StaleCopies {
        StaleCopies { limit, copies: Mutex::new(HashMap::new()) }
    }

    /// Keeps `value` as the copy of `key` until `until`. When full, expired
    /// copies go first, then an arbitrary one.
    pub fn keep(&self, key: &[u8], value: &[u8], tags: &[Vec<u8>], until: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut copies = self.copies.lock();
        if copies.len() >= self.limit && !copies.contains_key(key) {
            let now = Instant::now();
            copies.retain(|_, copy| copy.until > now);
            if copies.len() >= self.limit {
                if let Some(victim) = copies.keys().next().cloned() {
                    copies.remove(&victim);
                }
            }
        }
        copies.insert(key.to_vec(), StaleCopy { value: value.to_vec(), tags: tags.to_vec(), until });
    }

    /// The copy of `key`, if one is still within its stale window.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut copies = self.copies.lock();
        match copies.get(key) {
            Some(copy) if copy.until > Instant::now() => Some(copy.value.clone()),
            Some(_) => {
                copies.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn forget(&self, key: &[u8]) {
        self.copies.lock().remove(key);
    }

    /// Drops every copy stored with one of `tags` (full tag keys).
    pub fn forget_tagged(&self, tags: &[Vec<u8>]) {
        self.copies.lock().retain(|_, copy| !copy.tags.iter().any(|tag| tags.contains(tag)));
    }

    /// Drops the copies of keys matching the glob `pattern`, or all when `None`.
    pub fn forget_matching(&self, pattern: Option<&[u8]>) {
        let mut copies = self.copies.lock();
        match pattern {
            Some(pattern) => copies.retain(|key, _| !glob::matches(pattern, key)),
            None => copies.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn copies_are_bounded_dropped_by_tag_pattern_and_expiry() {
        let later = Instant::now() + Duration::from_secs(60);
        let copies = StaleCopies::new(2);
        copies.keep(b"a", b"1", &[b"t".to_vec()], later);
        copies.keep(b"b", b"2", &[], later);
        copies.keep(b"c", b"3", &[], later);
        assert_eq!(copies.copies.lock().len(), 2, "bounded");
        assert_eq!(copies.get(b"c").as_deref(), Some(&b"3"[..]));
        copies.keep(b"a", b"1", &[b"t".to_vec()], later);
        copies.forget_tagged(&[b"t".to_vec()]);
        assert_eq!(copies.get(b"a"), None);
        copies.forget_matching(Some(b"c*"));
        assert_eq!(copies.get(b"c"), None);
        copies.keep(b"d", b"4", &[], Instant::now());
        assert_eq!(copies.get(b"d"), None, "past its window");
        assert_eq!(StaleCopies::new(0).get(b"x"), None);
    }
}
