//! The embedded in-process backend: an LRU map with per-entry expiry behind
//! one lock, so the size bounds hold exactly for the whole store.
//!
//! Tags work as on Redis: each tag has a token; an entry records the tokens
//! of its tags when written and is valid while they are unchanged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use super::{
    Backend, Expiry, ForRefresh, HashFields, MAX_TAGS, Remaining, SaveOutcome, SessionRecord, SessionSave, TAG_MARGIN,
    UNTIMED_TAG_LIFETIME, WriteCondition, WriteExpiry, too_many_tags, wrong_type,
};
use crate::error::{Error, ErrorKind, Result};
use crate::glob;

/// Bytes charged per entry on top of its key and value, for the map's own bookkeeping.
const ENTRY_OVERHEAD: usize = 96;
/// Bytes charged per field of a hash record on top of its name and value.
const FIELD_OVERHEAD: usize = 32;

/// Size bounds of a memory backend; the least recently used entries are
/// evicted to stay within both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

/// Tag tokens are never reused within the process.
fn fresh_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What an entry holds, typed as Redis types its keys.
enum Data {
    /// A string value: plain, or tagged when the entry records tags. Shared,
    /// so that reads copy it out after the store's lock is released.
    String(Arc<[u8]>),
    /// A hash record: field names to values, never empty.
    Hash(BTreeMap<Box<[u8]>, Box<[u8]>>),
}

impl Data {
    fn bytes(&self) -> usize {
        match self {
            Data::String(value) => value.len(),
            Data::Hash(fields) => fields.iter().map(|(name, value)| field_charge(name, value)).sum(),
        }
    }
}

fn field_charge(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + FIELD_OVERHEAD
}

struct Entry {
    data: Data,
    expires_at: Option<Instant>,
    /// (tag key, token it had when recorded); only string values carry tags.
    tags: Box<[(Box<[u8]>, u64)]>,
}

impl Entry {
    /// Bytes charged against the store's bound for this entry under `key`.
    fn charge(&self, key: &[u8]) -> usize {
        let tag_bytes: usize = self.tags.iter().map(|(tag, _)| tag.len() + 24).sum();
        key.len() + self.data.bytes() + tag_bytes + ENTRY_OVERHEAD
    }

    /// The string value; a hash record is the wrong type.
    fn string(&self) -> Result<&[u8]> {
        match &self.data {
            Data::String(value) => Ok(&**value),
            Data::Hash(_) => Err(wrong_type()),
        }
    }

    /// The string value, shared: the caller copies it once the lock is released.
    fn shared(&self) -> Result<Arc<[u8]>> {
        match &self.data {
            Data::String(value) => Ok(Arc::clone(value)),
            Data::Hash(_) => Err(wrong_type()),
        }
    }

    /// True when the entry is a lock `owner` holds: a plain value equal to the token.
    fn held_by(&self, owner: &[u8]) -> bool {
        self.tags.is_empty() && matches!(&self.data, Data::String(value) if **value == *owner)
    }

    fn remaining(&self, now: Instant) -> Remaining {
        match self.expires_at {
            None => Remaining::Forever,
            Some(at) => Remaining::Left(at.saturating_duration_since(now)),
        }
    }
}

struct Tag {
    token: u64,
    /// Always finite: see `UNTIMED_TAG_LIFETIME`.
    expires_at: Instant,
}

fn is_live(expires_at: Option<Instant>, now: Instant) -> bool {
    expires_at.is_none_or(|at| at > now)
}

fn deadline(expiry: Expiry, now: Instant) -> Option<Instant> {
    match expiry {
        Expiry::Never => None,
        Expiry::After(ttl) => Some(now + ttl),
    }
}

/// The deadline a write gives its key, whose deadline is `current` (`None`
/// also for a key that does not exist).
fn write_deadline(expiry: WriteExpiry, current: Option<Instant>, now: Instant) -> Option<Instant> {
    match expiry {
        WriteExpiry::Set(expiry) => deadline(expiry, now),
        WriteExpiry::Keep => current,
    }
}

/// A session: kept apart from the LRU entries and never evicted, but counted
/// in the store's bounds (cache entries are evicted to make room for it) and
/// dropped once expired.
#[derive(Clone)]
struct Session {
    secret: Vec<u8>,
    fields: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    version: u64,
    touched_ms: u64,
    expires_at: Option<Instant>,
}

impl Session {
    fn record(&self) -> SessionRecord {
        SessionRecord {
            fields: self.fields.iter().map(|(name, value)| (name.clone(), value.clone())).collect(),
            version: self.version,
            touched_ms: self.touched_ms,
        }
    }

    /// Bytes charged against the store's bound for this session under `key`.
    fn charge(&self, key: &[u8]) -> usize {
        let field_bytes: usize = self.fields.iter().map(|(name, value)| field_charge(name, value)).sum();
        key.len() + self.secret.len() + field_bytes + ENTRY_OVERHEAD
    }
}

/// Compares without stopping at the first difference, so timing tells nothing.
fn same_secret(stored: &[u8], given: &[u8]) -> bool {
    stored.len() == given.len() && stored.iter().zip(given).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

struct Store {
    entries: LruCache<Box<[u8]>, Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    tags: HashMap<Box<[u8]>, Tag>,
    /// Tag count after the last sweep of expired tags.
    tags_swept_at: usize,
    sessions: HashMap<Box<[u8]>, Session>,
    /// Bytes charged for the sessions, on top of `bytes`.
    session_bytes: usize,
    /// Session count after the last sweep of expired sessions.
    sessions_swept_at: usize,
}

impl Store {
    /// The live session at `key` whose secret is `secret`; an expired one is dropped.
    fn session(&mut self, key: &[u8], secret: &[u8], now: Instant) -> Option<&mut Session> {
        let expired = !is_live(self.sessions.get(key)?.expires_at, now);
        if expired {
            self.remove_session(key);
            return None;
        }
        self.sessions.get_mut(key).filter(|session| same_secret(&session.secret, secret))
    }

    fn remove_session(&mut self, key: &[u8]) -> bool {
        match self.sessions.remove_entry(key) {
            Some((key, session)) => {
                self.session_bytes -= session.charge(&key);
                true
            }
            None => false,
        }
    }

    /// Keeps the sessions `keep` accepts (and that are live); how many were dropped.
    fn retain_sessions(&mut self, now: Instant, mut keep: impl FnMut(&[u8], &Session) -> bool) -> usize {
        let before = self.sessions.len();
        let mut freed = 0;
        self.sessions.retain(|key, session| {
            let kept = is_live(session.expires_at, now) && keep(key, session);
            if !kept {
                freed += session.charge(key);
            }
            kept
        });
        self.session_bytes -= freed;
        before - self.sessions.len()
    }

    /// Stores `session` under `key`, replacing the one there, within the
    /// store's bounds: expired sessions are swept and cache entries evicted to
    /// make room; `TooLarge` (nothing changed) when the sessions alone would
    /// not fit.
    fn put_session(&mut self, key: &[u8], session: Session, now: Instant) -> Result<()> {
        if self.sessions.len() > 2 * self.sessions_swept_at + 64 {
            self.retain_sessions(now, |_, _| true);
            self.sessions_swept_at = self.sessions.len();
        }
        let fits = |store: &Self| {
            let old = store.sessions.get(key).map_or(0, |old| old.charge(key));
            let count = store.sessions.len() + usize::from(!store.sessions.contains_key(key));
            count <= store.max_entries && store.session_bytes - old + session.charge(key) <= store.max_bytes
        };
        if !fits(self) {
            self.retain_sessions(now, |_, _| true);
            if !fits(self) {
                return Err(Error::too_large(format!(
                    "the sessions would exceed the memory backend's bound of {} entries and {} bytes",
                    self.max_entries, self.max_bytes
                )));
            }
        }
        self.remove_session(key);
        self.session_bytes += session.charge(key);
        self.sessions.insert(key.into(), session);
        self.shrink(now);
        Ok(())
    }

    fn token(tags: &HashMap<Box<[u8]>, Tag>, tag: &[u8], now: Instant) -> Option<u64> {
        tags.get(tag).filter(|state| state.expires_at > now).map(|state| state.token)
    }

    /// True while `entry` has not expired and every tag it records still has its token.
    fn is_valid(&self, entry: &Entry, now: Instant) -> bool {
        is_live(entry.expires_at, now) && entry.tags.iter().all(|(tag, token)| Self::token(&self.tags, tag, now) == Some(*token))
    }

    /// The live, valid entry for `key`; an expired or invalidated one is dropped first.
    fn live(&mut self, key: &[u8], now: Instant) -> Option<&mut Entry> {
        let entry = self.entries.peek(key)?;
        if !self.is_valid(entry, now) {
            self.remove(key);
            return None;
        }
        self.entries.get_mut(key)
    }

    /// Refuses an entry that could only be stored by evicting everything else and then itself.
    fn check_fits(&self, charge: usize) -> Result<()> {
        if charge > self.max_bytes {
            return Err(Error::too_large(format!(
                "entry of {charge} bytes exceeds the memory backend's bound of {} bytes",
                self.max_bytes
            )));
        }
        if charge > self.max_bytes - self.session_bytes || self.sessions.len() >= self.max_entries {
            return Err(Error::too_large("the memory backend's bounds are filled by sessions"));
        }
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        match self.entries.pop_entry(key) {
            Some((key, entry)) => {
                self.bytes -= entry.charge(&key);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: &[u8], entry: Entry, now: Instant) -> Result<()> {
        let charge = entry.charge(key);
        self.check_fits(charge)?;
        self.remove(key);
        self.bytes += charge;
        self.entries.put(key.into(), entry);
        self.shrink(now);
        Ok(())
    }

    /// Drops expired entries at the cold end, then evicts until within bounds.
    fn shrink(&mut self, now: Instant) {
        while let Some((key, entry)) = self.entries.peek_lru() {
            let over =
                self.entries.len() + self.sessions.len() > self.max_entries || self.bytes + self.session_bytes > self.max_bytes;
            if !over && is_live(entry.expires_at, now) {
                break;
            }
            let charge = entry.charge(key);
            self.entries.pop_lru();
            self.bytes -= charge;
        }
    }

    /// The token of `tag`, creating the tag if needed, living at least as long
    /// as an entry expiring at `until` (`None`: `UNTIMED_TAG_LIFETIME` from now).
    fn ensure_tag(&mut self, tag: &[u8], until: Option<Instant>, now: Instant) -> u64 {
        let covers = until.unwrap_or(now + UNTIMED_TAG_LIFETIME) + TAG_MARGIN;
        let state = self.tags.entry(tag.into()).or_insert(Tag { token: fresh_token(), expires_at: covers });
        if state.expires_at <= now {
            *state = Tag { token: fresh_token(), expires_at: covers };
        }
        state.expires_at = state.expires_at.max(covers);
        state.token
    }

    /// Once the map has doubled since the last sweep, forgets tags that have
    /// expired or that no entry records any more (a tag made again later gets
    /// a fresh token, which no old entry holds). Keeps the tag map within a
    /// constant factor of the tags the entries use.
    fn sweep_tags(&mut self, now: Instant) {
        if self.tags.len() <= 2 * self.tags_swept_at + 64 {
            return;
        }
        let recorded: std::collections::HashSet<&[u8]> =
            self.entries.iter().flat_map(|(_, entry)| entry.tags.iter().map(|(tag, _)| &**tag)).collect();
        self.tags.retain(|tag, state| state.expires_at > now && recorded.contains(&**tag));
        self.tags_swept_at = self.tags.len();
    }

    fn record_tags(&mut self, tags: &[Vec<u8>], until: Option<Instant>, now: Instant) -> Vec<(Box<[u8]>, u64)> {
        tags.iter().map(|tag| (tag.as_slice().into(), self.ensure_tag(tag, until, now))).collect()
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
                tags: HashMap::new(),
                tags_swept_at: 0,
                sessions: HashMap::new(),
                session_bytes: 0,
                sessions_swept_at: 0,
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

    /// Sessions currently held, expired ones not yet swept included.
    pub fn session_count(&self) -> usize {
        self.store.lock().sessions.len()
    }

    /// Tags currently remembered, expired ones not yet swept included.
    pub fn tag_count(&self) -> usize {
        self.store.lock().tags.len()
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

fn plain(value: &[u8], expires_at: Option<Instant>) -> Entry {
    Entry { data: Data::String(value.into()), expires_at, tags: Box::new([]) }
}

/// A hash record's fields as the map stores them; a repeated name keeps its last value, as with HSET.
fn field_map<'f>(fields: &[(&'f [u8], &'f [u8])]) -> BTreeMap<&'f [u8], &'f [u8]> {
    fields.iter().copied().collect()
}

impl Backend for MemoryBackend {
    // Values are copied in before the store's lock is taken and out after it
    // is released, so a large value never stalls the other threads.

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let now = Instant::now();
        let shared = self.store.lock().live(key, now).map(|entry| entry.shared()).transpose()?;
        Ok(shared.map(|value| value.to_vec()))
    }

    fn get_with_ttl(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Remaining)>> {
        let now = Instant::now();
        let found = {
            let mut store = self.store.lock();
            let Some(entry) = store.live(key, now) else { return Ok(None) };
            (entry.shared()?, entry.remaining(now))
        };
        Ok(Some((found.0.to_vec(), found.1)))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let now = Instant::now();
        let shared: Vec<Option<Arc<[u8]>>> = {
            let mut store = self.store.lock();
            keys.iter().map(|key| store.live(key, now).and_then(|entry| entry.shared().ok())).collect()
        };
        Ok(shared.into_iter().map(|value| value.map(|value| value.to_vec())).collect())
    }

    fn set(&self, key: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<()> {
        let now = Instant::now();
        let mut entry = plain(value, None);
        let mut store = self.store.lock();
        let current = match expiry {
            WriteExpiry::Keep => store.live(key, now).and_then(|entry| entry.expires_at),
            WriteExpiry::Set(_) => None,
        };
        entry.expires_at = write_deadline(expiry, current, now);
        store.insert(key, entry, now)
    }

    fn compare_and_set(&self, key: &[u8], expected: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<bool> {
        let now = Instant::now();
        let mut store = self.store.lock();
        let Some(entry) = store.live(key, now) else { return Ok(false) };
        if entry.string()? != expected {
            return Ok(false);
        }
        let expires_at = write_deadline(expiry, entry.expires_at, now);
        store.insert(key, plain(value, expires_at), now)?;
        Ok(true)
    }

    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()> {
        let now = Instant::now();
        let expires_at = deadline(expiry, now);
        let made: Vec<Entry> = entries.iter().map(|(_, value)| plain(value, expires_at)).collect();
        let mut store = self.store.lock();
        for ((key, _), entry) in entries.iter().zip(&made) {
            store.check_fits(entry.charge(key))?;
        }
        for ((key, _), entry) in entries.iter().zip(made) {
            store.insert(key, entry, now)?;
        }
        Ok(())
    }

    fn set_tagged(&self, key: &[u8], value: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()> {
        let now = Instant::now();
        let expires_at = deadline(expiry, now);
        let value: Arc<[u8]> = value.into();
        let mut store = self.store.lock();
        let recorded = store.record_tags(tags, expires_at, now);
        let entry = Entry { data: Data::String(value), expires_at, tags: recorded.into() };
        store.insert(key, entry, now)?;
        store.sweep_tags(now);
        Ok(())
    }

    fn add_tags(&self, key: &[u8], tags: &[Vec<u8>]) -> Result<bool> {
        let now = Instant::now();
        let mut store = self.store.lock();
        let Some(entry) = store.live(key, now) else { return Ok(false) };
        entry.string()?;
        let expires_at = entry.expires_at;
        let new: Vec<Vec<u8>> =
            tags.iter().filter(|tag| !entry.tags.iter().any(|(known, _)| **known == ***tag)).cloned().collect();
        if entry.tags.len() + new.len() > MAX_TAGS {
            return Err(too_many_tags(entry.tags.len() + new.len()));
        }
        let before = entry.charge(key);
        let added: usize = new.iter().map(|tag| tag.len() + 24).sum();
        store.check_fits(before + added)?;
        let mut recorded = store.record_tags(&new, expires_at, now);
        let entry = store.entries.get_mut(key).expect("the entry is live");
        recorded.splice(0..0, entry.tags.iter().cloned());
        entry.tags = recorded.into();
        store.bytes += added;
        store.shrink(now);
        store.sweep_tags(now);
        Ok(true)
    }

    fn invalidate_tags(&self, tags: &[Vec<u8>]) -> Result<()> {
        let mut store = self.store.lock();
        for tag in tags {
            if let Some(state) = store.tags.get_mut(tag.as_slice()) {
                state.token = fresh_token();
            }
        }
        Ok(())
    }

    fn clear(&self, pattern: &[u8]) -> Result<u64> {
        let mut store = self.store.lock();
        let doomed: Vec<Box<[u8]>> =
            store.entries.iter().map(|(key, _)| key).filter(|key| glob::matches(pattern, key)).cloned().collect();
        for key in &doomed {
            store.remove(key);
        }
        let tags_before = store.tags.len();
        store.tags.retain(|tag, _| !glob::matches(pattern, tag));
        Ok((doomed.len() + tags_before - store.tags.len()) as u64)
    }

    fn keys(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        let now = Instant::now();
        let store = self.store.lock();
        // Peeks without touching the LRU order: listing keys is not using them.
        Ok(store
            .entries
            .iter()
            .filter(|(key, entry)| glob::matches(pattern, key) && store.is_valid(entry, now))
            .map(|(key, _)| key.to_vec())
            .collect())
    }

    fn hash_get(&self, key: &[u8]) -> Result<Option<HashFields>> {
        let now = Instant::now();
        let mut store = self.store.lock();
        match store.live(key, now).map(|entry| &entry.data) {
            None => Ok(None),
            Some(Data::Hash(fields)) => Ok(Some(fields.iter().map(|(name, value)| (name.to_vec(), value.to_vec())).collect())),
            Some(Data::String(_)) => Err(wrong_type()),
        }
    }

    fn hash_set(&self, key: &[u8], fields: &[(&[u8], &[u8])], expiry: WriteExpiry, condition: WriteCondition) -> Result<bool> {
        let now = Instant::now();
        let mut store = self.store.lock();
        let fields = field_map(fields);
        let existing = store.live(key, now);
        let proceed = match condition {
            WriteCondition::Always => true,
            WriteCondition::IfExists => existing.is_some(),
            WriteCondition::IfAbsent => existing.is_none(),
        };
        if !proceed {
            return Ok(false);
        }
        let Some(entry) = existing else {
            let record = fields.into_iter().map(|(name, value)| (name.into(), value.into())).collect();
            let entry = Entry { data: Data::Hash(record), expires_at: write_deadline(expiry, None, now), tags: Box::new([]) };
            store.insert(key, entry, now)?;
            return Ok(true);
        };
        let Data::Hash(record) = &entry.data else { return Err(wrong_type()) };
        // Merged in place: the charge is worked out first, so a refused merge changes nothing.
        let before = entry.charge(key);
        let after = fields.iter().fold(before, |charge, (name, value)| match record.get(*name) {
            Some(old) => charge + value.len() - old.len(),
            None => charge + field_charge(name, value),
        });
        let expires_at = write_deadline(expiry, entry.expires_at, now);
        store.check_fits(after)?;
        let entry = store.entries.get_mut(key).expect("the entry is live");
        if let Data::Hash(record) = &mut entry.data {
            record.extend(fields.into_iter().map(|(name, value)| (Box::from(name), Box::from(value))));
        }
        entry.expires_at = expires_at;
        store.bytes = store.bytes - before + after;
        store.shrink(now);
        Ok(true)
    }

    fn server_info(&self) -> Result<Vec<u8>> {
        let store = self.store.lock();
        let expiring = store.entries.iter().filter(|(_, entry)| entry.expires_at.is_some()).count();
        // `keys` counts expired entries not yet dropped too, as Redis's keyspace line does.
        let sections: [(&str, &[(&str, String)]); 3] = [
            ("Server", &[("rcache_backend", "memory".into()), ("rcache_version", env!("CARGO_PKG_VERSION").into())]),
            (
                "Memory",
                &[("used_memory", (store.bytes + store.session_bytes).to_string()), ("maxmemory", store.max_bytes.to_string())],
            ),
            (
                "Keyspace",
                &[
                    ("keys", store.entries.len().to_string()),
                    ("expires", expiring.to_string()),
                    ("maxkeys", store.max_entries.to_string()),
                    ("tags", store.tags.len().to_string()),
                    ("sessions", store.sessions.len().to_string()),
                ],
            ),
        ];
        // As Redis writes INFO: CRLF lines, a blank line between sections.
        let text: Vec<String> = sections
            .iter()
            .map(|(section, lines)| {
                let body: String = lines.iter().map(|(name, value)| format!("{name}:{value}\r\n")).collect();
                format!("# {section}\r\n{body}")
            })
            .collect();
        Ok(text.join("\r\n").into_bytes())
    }

    fn get_for_refresh(&self, key: &[u8], meta_key: &[u8]) -> Result<Option<ForRefresh>> {
        let now = Instant::now();
        let mut store = self.store.lock();
        let Some(entry) = store.live(key, now) else { return Ok(None) };
        let (value, remaining) = (entry.shared()?, entry.remaining(now));
        let meta = store.live(meta_key, now).and_then(|entry| entry.string().ok().map(<[u8]>::to_vec));
        drop(store);
        Ok(Some((value.to_vec(), meta, remaining)))
    }

    fn session_create(&self, key: &[u8], secret: &[u8], fields: &[(&[u8], &[u8])], expiry: Expiry, now_ms: u64) -> Result<bool> {
        let now = Instant::now();
        let mut store = self.store.lock();
        if store.sessions.get(key).is_some_and(|session| is_live(session.expires_at, now)) {
            return Ok(false);
        }
        let session = Session {
            secret: secret.to_vec(),
            fields: fields.iter().map(|(name, value)| (name.to_vec(), value.to_vec())).collect(),
            version: 1,
            touched_ms: now_ms,
            expires_at: deadline(expiry, now),
        };
        store.put_session(key, session, now)?;
        Ok(true)
    }

    fn session_load(&self, key: &[u8], secret: &[u8], touch: Option<Expiry>, now_ms: u64) -> Result<Option<SessionRecord>> {
        let now = Instant::now();
        let mut store = self.store.lock();
        Ok(store.session(key, secret, now).map(|session| {
            if let Some(expiry) = touch {
                session.expires_at = deadline(expiry, now);
                session.touched_ms = now_ms;
            }
            session.record()
        }))
    }

    fn session_save(&self, save: SessionSave<'_>) -> Result<SaveOutcome> {
        let SessionSave { key, secret, expected, set, delete, expiry, now_ms } = save;
        let now = Instant::now();
        let mut store = self.store.lock();
        let Some(current) = store.session(key, secret, now) else { return Ok(SaveOutcome::Missing) };
        if expected.is_some_and(|expected| expected != current.version) {
            return Ok(SaveOutcome::Conflict(current.version));
        }
        let mut session = current.clone();
        for name in delete {
            session.fields.remove(*name);
        }
        for (name, value) in set {
            session.fields.insert(name.to_vec(), value.to_vec());
        }
        session.version += 1;
        session.touched_ms = now_ms;
        session.expires_at = deadline(expiry, now);
        let version = session.version;
        store.put_session(key, session, now)?;
        Ok(SaveOutcome::Saved(version))
    }

    fn session_touch(&self, key: &[u8], secret: &[u8], expiry: Expiry, now_ms: u64) -> Result<bool> {
        let now = Instant::now();
        let mut store = self.store.lock();
        Ok(store
            .session(key, secret, now)
            .map(|session| {
                session.expires_at = deadline(expiry, now);
                session.touched_ms = now_ms;
            })
            .is_some())
    }

    fn session_destroy(&self, key: &[u8], secret: &[u8]) -> Result<bool> {
        let now = Instant::now();
        let mut store = self.store.lock();
        let found = store.session(key, secret, now).is_some();
        if found {
            store.remove_session(key);
        }
        Ok(found)
    }

    fn session_list(&self, pattern: &[u8]) -> Result<Vec<(Vec<u8>, SessionRecord)>> {
        let now = Instant::now();
        let mut store = self.store.lock();
        store.retain_sessions(now, |_, _| true);
        Ok(store
            .sessions
            .iter()
            .filter(|(key, _)| glob::matches(pattern, key))
            .map(|(key, session)| (key.to_vec(), session.record()))
            .collect())
    }

    fn session_purge(&self, pattern: &[u8], idle_since_ms: u64) -> Result<u64> {
        let now = Instant::now();
        let mut store = self.store.lock();
        store.retain_sessions(now, |_, _| true);
        let purged =
            store.retain_sessions(now, |key, session| !(glob::matches(pattern, key) && session.touched_ms <= idle_since_ms));
        Ok(purged as u64)
    }

    fn lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut store = self.store.lock();
        if store.live(key, now).is_some() {
            return Ok(false);
        }
        store.insert(key, plain(owner, Some(now + lease)), now)?;
        Ok(true)
    }

    fn extend_lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let now = Instant::now();
        Ok(match self.store.lock().live(key, now) {
            Some(entry) if entry.held_by(owner) => {
                entry.expires_at = Some(now + lease);
                true
            }
            _ => false,
        })
    }

    fn unlock(&self, key: &[u8], owner: &[u8]) -> Result<bool> {
        let now = Instant::now();
        let mut store = self.store.lock();
        let held = store.live(key, now).is_some_and(|entry| entry.held_by(owner));
        if held {
            store.remove(key);
        }
        Ok(held)
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
        Ok(self.store.lock().live(key, now).map_or(Remaining::Missing, |entry| entry.remaining(now)))
    }

    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool> {
        let now = Instant::now();
        let until = deadline(expiry, now);
        let mut store = self.store.lock();
        let Some(entry) = store.live(key, now) else { return Ok(false) };
        entry.expires_at = until;
        // The entry's tags must live as long as it does.
        let tags: Vec<Box<[u8]>> = entry.tags.iter().map(|(tag, _)| tag.clone()).collect();
        for tag in tags {
            store.ensure_tag(&tag, until, now);
        }
        Ok(true)
    }

    fn increment(&self, key: &[u8], delta: i64, expiry_if_new: Expiry) -> Result<i64> {
        let now = Instant::now();
        let mut store = self.store.lock();
        let (current, expires_at) = match store.live(key, now) {
            // As on Redis, where a tagged entry's stored form is not an integer.
            Some(entry) if !entry.tags.is_empty() => {
                return Err(Error::new(ErrorKind::WrongType, "a tagged entry is not a counter"));
            }
            Some(entry) => (parse_counter(entry.string()?)?, entry.expires_at),
            None => (0, deadline(expiry_if_new, now)),
        };
        let next = current.checked_add(delta).ok_or_else(|| Error::invalid("increment or decrement would overflow"))?;
        store.insert(key, plain(next.to_string().as_bytes(), expires_at), now)?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_entries: usize, max_bytes: usize) -> MemoryBackend {
        MemoryBackend::new(MemoryLimits { max_entries, max_bytes })
    }

    fn session_key(index: usize) -> Vec<u8> {
        format!("sess:{index:032x}").into_bytes()
    }

    #[test]
    fn sessions_count_against_the_entry_bound() {
        let backend = store(10, 1 << 20);
        for index in 0..6 {
            backend.set(format!("k{index}").as_bytes(), b"v", WriteExpiry::Set(Expiry::Never)).unwrap();
        }
        for index in 0..8 {
            assert!(backend.session_create(&session_key(index), b"s", &[], Expiry::Never, 0).unwrap());
        }
        // Cache entries made room for the sessions.
        assert_eq!(backend.len() + backend.session_count(), 10);
        assert_eq!(backend.session_count(), 8);
        for index in 8..10 {
            assert!(backend.session_create(&session_key(index), b"s", &[], Expiry::Never, 0).unwrap());
        }
        let error = backend.session_create(&session_key(10), b"s", &[], Expiry::Never, 0).unwrap_err();
        assert_eq!(error.kind, ErrorKind::TooLarge);
        assert_eq!(backend.set(b"more", b"v", WriteExpiry::Set(Expiry::Never)).unwrap_err().kind, ErrorKind::TooLarge);
        assert!(backend.session_destroy(&session_key(0), b"s").unwrap());
        backend.set(b"more", b"v", WriteExpiry::Set(Expiry::Never)).unwrap();
    }

    #[test]
    fn sessions_count_against_the_byte_bound() {
        let backend = store(1000, 4096);
        let big = vec![b'x'; 1024];
        let fields: [(&[u8], &[u8]); 1] = [(b"f", &big)];
        let mut created = 0;
        while backend.session_create(&session_key(created), b"s", &fields, Expiry::Never, 0).is_ok() {
            created += 1;
            assert!(created < 10, "sessions grew past the byte bound");
        }
        assert!(backend.bytes_used() == 0 && created == 3, "{created} sessions of 1 KiB in 4 KiB");
        // A save that grows a session past the bound is refused and changes nothing.
        let bigger = vec![b'y'; 2048];
        let grow: [(&[u8], &[u8]); 1] = [(b"g", &bigger)];
        let error = backend
            .session_save(SessionSave {
                key: &session_key(0),
                secret: b"s",
                expected: None,
                set: &grow,
                delete: &[],
                expiry: Expiry::Never,
                now_ms: 0,
            })
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::TooLarge);
        assert_eq!(backend.session_load(&session_key(0), b"s", None, 0).unwrap().unwrap().fields.len(), 1);
    }

    #[test]
    fn expired_sessions_are_swept_without_being_touched() {
        let backend = store(100, 1 << 20);
        let short = Expiry::After(Duration::from_millis(1));
        for index in 0..5000 {
            if index % 50 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            backend.session_create(&session_key(index), b"s", &[], short, 0).unwrap();
        }
        assert!(backend.session_count() <= 100, "{} sessions held", backend.session_count());
    }

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
