//! Tagged entries as stored (the layout `lua/envelope.lua` writes), read in
//! Rust: a read fetches the stored string, and only when it carries tags
//! reads their tokens (one MGET) and compares. Tokens only ever change to new
//! random values, so checking them after the read is safe: an invalidation
//! racing with it leaves the entry carrying an old token.
//!
//! `KnownTags` remembers the tag keys of entries read or written lately, so
//! that the next read of such an entry asks for their tokens in the same
//! `MGET` as the entry itself: one request instead of two.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};

use lru::LruCache;
use parking_lot::Mutex;
use redis::{RedisError, RedisResult};

use super::wire::TAG_MARKER;

pub(crate) fn corrupt(what: &str) -> RedisError {
    redis::make_extension_error("CORRUPT".to_string(), Some(format!("rcache entry: {what}")))
}

/// A tag token: 16 hex characters.
pub(crate) const TOKEN_LEN: usize = 16;

/// A stored string as `lua/envelope.lua` lays it out; a plain value has no tags.
pub(crate) struct Envelope<'v> {
    /// (tag key, token recorded) of each tag.
    pub(crate) tags: Vec<(&'v [u8], &'v [u8])>,
    pub(crate) payload: &'v [u8],
    /// The bytes between the count and the payload: the records as stored.
    pub(crate) records: &'v [u8],
}

impl<'v> Envelope<'v> {
    /// Reads a stored value, with the checks `payload_of` makes in Lua.
    pub(crate) fn parse(value: &'v [u8]) -> RedisResult<Envelope<'v>> {
        let Some(rest) = value.strip_prefix(TAG_MARKER) else {
            return Ok(Envelope { tags: Vec::new(), payload: value, records: &[] });
        };
        let number = |bytes: &[u8]| std::str::from_utf8(bytes).ok()?.parse::<usize>().ok();
        let colon = rest.iter().position(|&byte| byte == b':');
        let Some(count) = colon.and_then(|colon| number(&rest[..colon])) else {
            return Err(corrupt("bad tag header"));
        };
        let records_start = colon.expect("checked") + 1;
        let mut at = records_start;
        let mut tags = Vec::with_capacity(count);
        for _ in 0..count {
            let colon = rest[at..].iter().position(|&byte| byte == b':').map(|offset| at + offset);
            let length = colon.and_then(|colon| number(&rest[at..colon]));
            match (colon, length) {
                (Some(colon), Some(length)) if length >= 1 && colon + 1 + length + TOKEN_LEN <= rest.len() => {
                    let key = &rest[colon + 1..colon + 1 + length];
                    let token = &rest[colon + 1 + length..colon + 1 + length + TOKEN_LEN];
                    tags.push((key, token));
                    at = colon + 1 + length + TOKEN_LEN;
                }
                _ => return Err(corrupt("bad tag record")),
            }
        }
        Ok(Envelope { tags, payload: &rest[at..], records: &rest[records_start..at] })
    }

    /// `parse`, and every tag key must lie in `tag_space`.
    pub(crate) fn parse_in(value: &'v [u8], tag_space: &[u8]) -> RedisResult<Envelope<'v>> {
        let envelope = Envelope::parse(value)?;
        for (tag_key, _) in &envelope.tags {
            check_tag_space(tag_key, tag_space)?;
        }
        Ok(envelope)
    }

    /// The stored form of `payload` recorded against `tags` (tag key, token).
    pub(crate) fn build(records: &[u8], count: usize, new: &[(&[u8], &[u8])], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(TAG_MARKER.len() + records.len() + payload.len() + 64);
        out.extend_from_slice(TAG_MARKER);
        out.extend_from_slice((count + new.len()).to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(records);
        for (tag_key, token) in new {
            out.extend_from_slice(tag_key.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(tag_key);
            out.extend_from_slice(token);
        }
        out.extend_from_slice(payload);
        out
    }
}

/// Stored strings parsed, waiting for the tokens of their tags.
pub(crate) struct Stored<'v> {
    envelopes: Vec<Option<Envelope<'v>>>,
    tag_keys: Vec<Vec<u8>>,
}

impl<'v> Stored<'v> {
    /// Parses each stored string; a tag key outside `tag_space` (the
    /// handle's `<prefix>__rcache_tag:`) is corrupt: rcache did not write it.
    pub(crate) fn parse(stored: &'v [Option<Vec<u8>>], tag_space: &[u8]) -> RedisResult<Stored<'v>> {
        let mut envelopes = Vec::with_capacity(stored.len());
        let mut tag_keys: Vec<Vec<u8>> = Vec::new();
        for value in stored {
            let envelope = value.as_deref().map(|value| Envelope::parse_in(value, tag_space)).transpose()?;
            if let Some(envelope) = &envelope {
                for (tag_key, _) in &envelope.tags {
                    if !tag_keys.iter().any(|known| known == tag_key) {
                        tag_keys.push(tag_key.to_vec());
                    }
                }
            }
            envelopes.push(envelope);
        }
        Ok(Stored { envelopes, tag_keys })
    }

    /// The tag keys of the entries read whose tokens `read` lacks.
    pub(crate) fn missing(&self, read: &Tokens) -> Vec<Vec<u8>> {
        self.tag_keys.iter().filter(|tag_key| !read.keys.contains(tag_key)).cloned().collect()
    }

    /// The payloads, given in `read` the current tokens of every tag of the
    /// entries read: a tagged entry whose tag holds another token, or none,
    /// is a miss.
    pub(crate) fn payloads_from(&self, read: &Tokens) -> Vec<Option<Vec<u8>>> {
        let current: HashMap<&[u8], Option<&[u8]>> =
            read.keys.iter().map(Vec::as_slice).zip(read.values.iter().map(Option::as_deref)).collect();
        self.envelopes
            .iter()
            .map(|envelope| {
                let envelope = envelope.as_ref()?;
                let valid = envelope.tags.iter().all(|(tag_key, token)| current.get(tag_key).copied().flatten() == Some(*token));
                valid.then(|| envelope.payload.to_vec())
            })
            .collect()
    }

    /// Records in `known` the tag keys of each entry read, `keys` in the
    /// order they were read; forgets those found plain or absent.
    pub(crate) fn remember(&self, keys: &[&[u8]], known: &KnownTags) {
        for (key, envelope) in keys.iter().zip(&self.envelopes) {
            match envelope {
                Some(envelope) if !envelope.tags.is_empty() => {
                    known.learn(key, envelope.tags.iter().map(|(tag_key, _)| tag_key.to_vec()).collect())
                }
                _ => known.forget(key),
            }
        }
    }
}

/// Tag tokens read so far: the tag keys and, in the same order, their tokens
/// (none for a tag that does not exist).
#[derive(Default)]
pub(crate) struct Tokens {
    keys: Vec<Vec<u8>>,
    values: Vec<Option<Vec<u8>>>,
}

impl Tokens {
    pub(crate) fn new(keys: Vec<Vec<u8>>, values: Vec<Option<Vec<u8>>>) -> Tokens {
        debug_assert_eq!(keys.len(), values.len());
        Tokens { keys, values }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn extend(&mut self, keys: Vec<Vec<u8>>, values: Vec<Option<Vec<u8>>>) {
        debug_assert_eq!(keys.len(), values.len());
        self.keys.extend(keys);
        self.values.extend(values);
    }
}

/// How many entries `KnownTags` remembers; beyond that the least recently
/// used are forgotten, and a read of one of them takes two requests again.
pub(crate) const KNOWN_TAGS: usize = 4096;

/// The tag keys of tagged entries this handle read or wrote lately, by entry
/// key. A read of such an entry names them in the `MGET` of the entry, which
/// reads the entry and the tokens at one instant; tag keys the stored entry
/// records and the `MGET` did not name are read after it, as without a
/// record. So a record out of date costs a second request, never a wrong
/// answer, and a record is only ever a hint: the stored entry decides which
/// tags are checked.
pub(crate) struct KnownTags {
    entries: Mutex<LruCache<Vec<u8>, Vec<Vec<u8>>>>,
    /// False until the first record: untagged work never takes the lock.
    any: AtomicBool,
}

impl Default for KnownTags {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(KNOWN_TAGS).expect("not zero");
        KnownTags { entries: Mutex::new(LruCache::new(capacity)), any: AtomicBool::new(false) }
    }
}

impl KnownTags {
    /// The tag keys recorded for `keys`, each once.
    pub(crate) fn of(&self, keys: &[&[u8]]) -> Vec<Vec<u8>> {
        if !self.any.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut entries = self.entries.lock();
        let mut tag_keys: Vec<Vec<u8>> = Vec::new();
        for key in keys {
            for tag_key in entries.get(*key).into_iter().flatten() {
                if !tag_keys.contains(tag_key) {
                    tag_keys.push(tag_key.clone());
                }
            }
        }
        tag_keys
    }

    /// Records that `key` holds an entry tagged with `tag_keys`.
    pub(crate) fn learn(&self, key: &[u8], tag_keys: Vec<Vec<u8>>) {
        self.any.store(true, Ordering::Relaxed);
        self.entries.lock().put(key.to_vec(), tag_keys);
    }

    /// Drops the record of `key`, if any.
    pub(crate) fn forget(&self, key: &[u8]) {
        if self.any.load(Ordering::Relaxed) {
            self.entries.lock().pop(key);
        }
    }
}

/// Fails when a tag key is outside the handle's tag space.
pub(crate) fn check_tag_space(tag_key: &[u8], tag_space: &[u8]) -> RedisResult<()> {
    match tag_key.starts_with(tag_space) {
        true => Ok(()),
        false => Err(corrupt("a tag key outside this handle's tag space")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_damage_is_reported() {
        let token = b"0123456789abcdef";
        let stored = Envelope::build(&[], 0, &[(b"t:a", token), (b"t:b", token)], b"payload");
        let envelope = Envelope::parse(&stored).unwrap();
        assert_eq!(envelope.tags, vec![(&b"t:a"[..], &token[..]), (&b"t:b"[..], &token[..])]);
        assert_eq!(envelope.payload, b"payload");
        let more = Envelope::build(envelope.records, 2, &[(b"t:c", token)], envelope.payload);
        assert_eq!(Envelope::parse(&more).unwrap().tags.len(), 3);
        assert_eq!(Envelope::parse(b"plain").unwrap().payload, b"plain");
        let wrapped = [TAG_MARKER, b"0:", TAG_MARKER, b"x"].concat();
        assert_eq!(Envelope::parse(&wrapped).unwrap().payload, [TAG_MARKER, b"x"].concat());
        for damaged in [&b"x:"[..], b"2:3:abc", b"1:0:", b"1:3:t:a0123"] {
            assert!(Envelope::parse(&[TAG_MARKER, damaged].concat()).is_err(), "{damaged:?}");
        }
    }

    #[test]
    fn tag_keys_outside_the_tag_space_are_corrupt() {
        let token = b"0123456789abcdef";
        let stored = Envelope::build(&[], 0, &[(b"p:__rcache_tag:a", token)], b"x");
        assert!(Envelope::parse_in(&stored, b"p:__rcache_tag:").is_ok());
        assert!(Envelope::parse_in(&stored, b"q:__rcache_tag:").is_err());
        let values = [Some(stored), Some(b"plain".to_vec()), None];
        assert!(Stored::parse(&values, b"q:__rcache_tag:").is_err());
        let parsed = Stored::parse(&values, b"p:__rcache_tag:").unwrap();
        assert_eq!(parsed.missing(&Tokens::default()), vec![b"p:__rcache_tag:a".to_vec()]);
        let read = Tokens::new(vec![b"p:__rcache_tag:a".to_vec()], vec![Some(token.to_vec())]);
        assert!(parsed.missing(&read).is_empty());
        assert_eq!(parsed.payloads_from(&read), vec![Some(b"x".to_vec()), Some(b"plain".to_vec()), None]);
        let invalidated = Tokens::new(vec![b"p:__rcache_tag:a".to_vec()], vec![Some(b"fedcba9876543210".to_vec())]);
        assert_eq!(parsed.payloads_from(&invalidated), vec![None, Some(b"plain".to_vec()), None]);
        assert_eq!(parsed.payloads_from(&Tokens::default()), vec![None, Some(b"plain".to_vec()), None]);
    }
}
