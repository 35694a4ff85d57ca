//! The near cache: a bounded in-process copy of values read from a server
//! that reports later changes to them (Redis server-assisted client-side
//! caching), so that repeated reads are answered without a round trip.
//!
//! Keys here are the caller's keys: the client's prefix is taken off the keys
//! the server reports. An entry may depend on other keys (its tags' keys, the
//! metadata key of get-or-compute); a change to any of them drops it.
//!
//! Three rules keep it correct:
//! - An entry is filled only from a read made under a `Ticket`, taken before
//!   the read was sent while the server's reports were flowing, and only if no
//!   report about the key or a key it depends on has arrived since. A report
//!   arriving after the fill removes the entry: either way a change that
//!   happened after the read executed is never hidden.
//! - A report removes the key and every entry depending on it.
//! - When the reports may have stopped (the connection carrying them broke or
//!   was replaced) everything is dropped at once, and nothing is filled until
//!   they flow again.
//!
//! Locks, always taken in this order: one shard, then `dependents`, then
//! `control`, then `watchers`. A thread holding `dependents`, `control` or
//! `watchers` never waits for another lock; a flush takes every shard in
//! index order.
//!
//! A thread may also wait for a report about some keys (`watch`): a
//! get-or-compute caller waiting for another process's value is woken by the
//! report of that value's write instead of its next poll.
//!
//! No lock here is held across I/O, a callback of the caller's or a wait for
//! anything but another of these locks: `read_held` answers from a thread
//! that must not block (a Python caller keeping its interpreter lock).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::backend::{InvalidationSink, Remaining};

/// Bounds and settings of a near cache; the least recently used entries are
/// evicted to stay within both size bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NearLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
    /// Longest a copy may be served once the server's reports stop without a
    /// sign (a connection gone silent); `None`: the heartbeat interval (500
    /// ms) plus the response timeout.
    pub max_staleness: Option<Duration>,
    /// Reports of every change under the key prefix (`BCAST`), rather than
    /// of the keys this client read.
    pub broadcast: bool,
}

impl NearLimits {
    /// Size bounds with the default settings.
    pub fn new(max_entries: usize, max_bytes: usize) -> NearLimits {
        NearLimits { max_entries, max_bytes, max_staleness: None, broadcast: false }
    }
}

/// `near_cache_bytes` when the URL does not give it: 64 MiB.
pub const NEAR_DEFAULT_BYTES: usize = 64 * 1024 * 1024;

/// Bytes charged per entry on top of its key, value and dependencies.
const NEAR_ENTRY_OVERHEAD: usize = 64;
/// Reports remembered for fills in flight; a fill that started before the
/// oldest one remembered is refused.
const REPORT_LOG: usize = 4096;
const MAX_SHARDS: usize = 16;
/// A shard holds at least this many entries, so small caches are not split.
const MIN_SHARD_ENTRIES: usize = 64;

/// Counters and gauges of a near cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NearStats {
    pub hits: u64,
    pub misses: u64,
    pub invalidations: u64,
    pub evictions: u64,
    pub flushes: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// Permission to fill entries from one read, taken before sending it.
pub(crate) struct Ticket {
    epoch: u64,
    seq: u64,
    /// When the read was sent: an entry lives at most its TTL from here, so
    /// never past the server's own expiry.
    at: Instant,
}

/// A value as the server returned it to a tracked read.
pub(crate) struct Fill<'a> {
    pub value: &'a [u8],
    /// `None`: no expiry.
    pub ttl: Option<Duration>,
    /// Keys (without the prefix) whose change also ends the entry.
    pub deps: Vec<Box<[u8]>>,
    /// get-or-compute's metadata as read with the value: `Some(None)` when
    /// there was none; `None` when it was not read.
    pub meta: Option<Option<&'a [u8]>>,
}

struct Entry {
    value: Box<[u8]>,
    expires_at: Option<Instant>,
    deps: Box<[Box<[u8]>]>,
    meta: Option<Option<Box<[u8]>>>,
    charge: usize,
}

impl Entry {
    /// `now` is read only for an entry that expires.
    fn live(&self, now: impl FnOnce() -> Instant) -> bool {
        self.expires_at.is_none_or(|at| now() < at)
    }

    /// How much longer the copy may be served.
    fn remaining(&self) -> Remaining {
        self.expires_at.map_or(Remaining::Forever, |at| Remaining::Left(at.saturating_duration_since(Instant::now())))
    }
}

struct Shard {
    entries: LruCache<Box<[u8]>, Entry>,
    bytes: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
}

/// Whether reports flow, and the recent ones, for fills in flight.
struct Control {
    /// Bumped by every flush: a ticket from an earlier epoch fills nothing.
    epoch: u64,
    connected: bool,
    /// Sequence number of the next report; report `s` is `log[s % REPORT_LOG]`.
    next: u64,
    log: Box<[u64]>,
}

impl Control {
    /// True when a report about one of `hashes` may have arrived since `seq`.
    fn reported_since(&self, seq: u64, hashes: &[u64]) -> bool {
        if self.next - seq > REPORT_LOG as u64 {
            return true;
        }
        (seq..self.next).any(|at| hashes.contains(&self.log[(at % REPORT_LOG as u64) as usize]))
    }
}

/// Dependency key -> the keys of the entries depending on it.
type Dependents = HashMap<Box<[u8]>, HashSet<Box<[u8]>>>;

/// The keys threads wait on, and a count of the reports that concern them.
#[derive(Default)]
struct Watchers {
    /// Key -> how many `Watch`es hold it.
    keys: HashMap<Box<[u8]>, usize>,
    /// Bumped by every report about a watched key and by every flush.
    changes: u64,
}

pub(crate) struct NearCache {
    prefix: Box<[u8]>,
    max_staleness: Option<Duration>,
    broadcast: bool,
    shards: Box<[Mutex<Shard>]>,
    shard_entries: usize,
    shard_bytes: usize,
    dependents: Mutex<Dependents>,
    control: Mutex<Control>,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    watchers: Mutex<Watchers>,
    /// Signalled when `Watchers::changes` grows.
    watched_changed: Condvar,
    /// How many keys are watched: reports skip `watchers` while none is.
    watching: AtomicUsize,
}

/// A wait for reports about some keys (without the prefix), from when it
/// was made; the keys are watched until it is dropped.
pub(crate) struct Watch<'n> {
    near: &'n NearCache,
    keys: Vec<Box<[u8]>>,
    seen: u64,
}

impl Watch<'_> {
    /// Waits until a report about a key being watched arrives (or everything
    /// is dropped) after the watch was made or after the last `wait` that
    /// returned true, or until `timeout` passes; true when one did. The key
    /// may be another watch's: the caller looks again, and waits again if
    /// nothing it waits for changed.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut watchers = self.near.watchers.lock();
        while watchers.changes == self.seen {
            if self.near.watched_changed.wait_until(&mut watchers, deadline).timed_out() {
                break;
            }
        }
        let reported = watchers.changes != self.seen;
        self.seen = watchers.changes;
        reported
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut watchers = self.near.watchers.lock();
        for key in &self.keys {
            if let Some(count) = watchers.keys.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    watchers.keys.remove(key);
                    self.near.watching.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
}

/// FNV-1a, then MurmurHash3's finaliser so that keys differing in their last
/// bytes spread over the shards. Picks a shard and identifies keys in the
/// report log (a collision only refuses a fill).
fn hash(bytes: &[u8]) -> u64 {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    let hash = (hash ^ (hash >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let hash = (hash ^ (hash >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

impl NearCache {
    /// An empty near cache for a client whose keys carry `prefix`; it fills
    /// nothing until `connected`.
    pub fn new(limits: NearLimits, prefix: &[u8]) -> NearCache {
        // The largest power of two that leaves each shard MIN_SHARD_ENTRIES.
        let count = 1 << (limits.max_entries / MIN_SHARD_ENTRIES).clamp(1, MAX_SHARDS).ilog2();
        let shards = (0..count)
            .map(|_| Mutex::new(Shard { entries: LruCache::unbounded(), bytes: 0, hits: 0, misses: 0, evictions: 0 }))
            .collect();
        NearCache {
            prefix: prefix.into(),
            max_staleness: limits.max_staleness,
            broadcast: limits.broadcast,
            shards,
            shard_entries: (limits.max_entries / count).max(1),
            shard_bytes: limits.max_bytes / count,
            dependents: Mutex::new(HashMap::new()),
            control: Mutex::new(Control { epoch: 0, connected: false, next: 0, log: vec![0; REPORT_LOG].into() }),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            watchers: Mutex::new(Watchers::default()),
            watched_changed: Condvar::new(),
            watching: AtomicUsize::new(0),
        }
    }

    /// Starts watching `keys` (without the prefix): make the watch before
    /// the read after which reports are awaited, so none is missed.
    pub fn watch(&self, keys: &[&[u8]]) -> Watch<'_> {
        let mut watchers = self.watchers.lock();
        for key in keys {
            let count = watchers.keys.entry((*key).into()).or_insert(0);
            if *count == 0 {
                self.watching.fetch_add(1, Ordering::SeqCst);
            }
            *count += 1;
        }
        let seen = watchers.changes;
        Watch { near: self, keys: keys.iter().map(|key| (*key).into()).collect(), seen }
    }

    /// Wakes the watchers of `key`, if any.
    fn wake_watchers(&self, key: &[u8]) {
        if self.watching.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut watchers = self.watchers.lock();
        if watchers.keys.contains_key(key) {
            watchers.changes += 1;
            self.watched_changed.notify_all();
        }
    }

    fn wake_all_watchers(&self) {
        let mut watchers = self.watchers.lock();
        watchers.changes += 1;
        self.watched_changed.notify_all();
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        self.shards[hash(key) as usize & (self.shards.len() - 1)].lock()
    }

    /// The value of `key` if a live copy is held, counting a near hit or miss.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lookup(key, |entry| Some(entry.value.to_vec()))
    }

    /// Like `get`, with the copy's remaining lifetime.
    pub fn get_with_ttl(&self, key: &[u8]) -> Option<(Vec<u8>, Remaining)> {
        self.lookup(key, |entry| Some((entry.value.to_vec(), entry.remaining())))
    }

    /// Like `get`, for get-or-compute: the value, its metadata and remaining
    /// lifetime; a miss unless the copy was read together with its metadata.
    pub fn get_for_refresh(&self, key: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>, Remaining)> {
        self.lookup(key, |entry| {
            let meta = entry.meta.as_ref()?;
            Some((entry.value.to_vec(), meta.as_deref().map(<[u8]>::to_vec), entry.remaining()))
        })
    }

    /// What `read` makes of the live copy of `key`, counted as a hit when
    /// `Some`; `None` when no live copy is held, uncounted (the read sent
    /// next counts it). Holds one shard lock while `read` runs and waits for
    /// nothing else: it never waits for I/O.
    pub fn read_held<T>(&self, key: &[u8], read: impl FnOnce(&[u8]) -> Option<T>) -> Option<T> {
        let mut shard = self.shard(key);
        let entry = shard.entries.get(key).filter(|entry| entry.live(Instant::now))?;
        let found = read(&entry.value)?;
        shard.hits += 1;
        Some(found)
    }

    /// What `answer` makes of the live copy of `key`, counting a near hit or
    /// miss; an expired copy is dropped.
    fn lookup<T>(&self, key: &[u8], answer: impl FnOnce(&Entry) -> Option<T>) -> Option<T> {
        let mut shard = self.shard(key);
        let found = match shard.entries.get(key) {
            Some(entry) if entry.live(Instant::now) => answer(entry),
            Some(_) => {
                self.remove(&mut shard, key);
                None
            }
            None => None,
        };
        match found {
            Some(_) => shard.hits += 1,
            None => shard.misses += 1,
        }
        found
    }

    /// Permission to fill from a read sent after this call; `None` while
    /// reports do not flow (read without filling).
    pub fn ticket(&self) -> Option<Ticket> {
        let control = self.control.lock();
        control.connected.then(|| Ticket { epoch: control.epoch, seq: control.next, at: Instant::now() })
    }

    /// Stores what a read under `ticket` returned for `key`, unless a report
    /// since the ticket may make it stale, or it is too large to hold.
    pub fn fill(&self, ticket: &Ticket, key: &[u8], fill: Fill<'_>) {
        let charge = NEAR_ENTRY_OVERHEAD
            + key.len()
            + fill.value.len()
            + fill.meta.flatten().map_or(0, <[u8]>::len)
            // Each dependency is held twice: in the entry and in the reverse index.
            + 2 * fill.deps.iter().map(|dep| dep.len() + NEAR_ENTRY_OVERHEAD / 2).sum::<usize>();
        let expires_at = match fill.ttl {
            None => None,
            Some(ttl) => match ticket.at.checked_add(ttl) {
                Some(at) => Some(at),
                None => return,
            },
        };
        if charge > self.shard_bytes || expires_at.is_some_and(|at| at <= Instant::now()) {
            return;
        }
        let hashes: Vec<u64> = std::iter::once(hash(key)).chain(fill.deps.iter().map(|dep| hash(dep))).collect();
        let mut shard = self.shard(key);
        // Linked before the check: a report of a dependency arriving after
        // the check finds this key (see the module documentation).
        self.link(key, &fill.deps);
        let fresh = {
            let control = self.control.lock();
            control.connected && control.epoch == ticket.epoch && !control.reported_since(ticket.seq, &hashes)
        };
        if !fresh {
            let kept = shard.entries.peek(key).map(|entry| entry.deps.clone());
            self.unlink(key, &fill.deps, kept.as_deref());
            return;
        }
        if let Some(old) = shard.entries.pop(key) {
            shard.bytes -= old.charge;
            self.unlink(key, &old.deps, Some(&fill.deps));
        }
        let entry = Entry {
            value: fill.value.into(),
            expires_at,
            deps: fill.deps.into_boxed_slice(),
            meta: fill.meta.map(|meta| meta.map(Into::into)),
            charge,
        };
        shard.bytes += charge;
        shard.entries.put(key.into(), entry);
        while shard.entries.len() > self.shard_entries || shard.bytes > self.shard_bytes {
            let Some((key, entry)) = shard.entries.pop_lru() else { break };
            shard.bytes -= entry.charge;
            shard.evictions += 1;
            self.unlink(&key, &entry.deps, None);
        }
    }

    /// Drops `keys` (without the prefix) and every entry depending on them;
    /// fills in flight from before this call are refused.
    pub fn invalidate<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        for key in keys {
            {
                let mut control = self.control.lock();
                let at = (control.next % REPORT_LOG as u64) as usize;
                control.log[at] = hash(key);
                control.next += 1;
            }
            self.remove(&mut self.shard(key), key);
            let dependents = self.dependents.lock().remove(key);
            for dependent in dependents.into_iter().flatten() {
                self.remove(&mut self.shard(&dependent), &dependent);
            }
            self.wake_watchers(key);
        }
    }

    /// Drops everything; fills in flight are refused. `connected` says
    /// whether reports flow from now on (`None`: unchanged).
    pub fn flush(&self, connected: Option<bool>) {
        let mut shards: Vec<_> = self.shards.iter().map(|shard| shard.lock()).collect();
        {
            let mut control = self.control.lock();
            control.epoch += 1;
            if let Some(connected) = connected {
                control.connected = connected;
            }
        }
        for shard in &mut shards {
            shard.entries.clear();
            shard.bytes = 0;
        }
        self.dependents.lock().clear();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        drop(shards);
        self.wake_all_watchers();
    }

    pub fn stats(&self) -> NearStats {
        let mut stats = NearStats {
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            ..NearStats::default()
        };
        for shard in self.shards.iter() {
            let shard = shard.lock();
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.evictions += shard.evictions;
            stats.entries += shard.entries.len() as u64;
            stats.bytes += shard.bytes as u64;
        }
        stats
    }

    /// The key without this client's prefix; `None` for a key that is not the client's.
    pub fn strip<'k>(&self, full_key: &'k [u8]) -> Option<&'k [u8]> {
        full_key.strip_prefix(&*self.prefix)
    }

    fn remove(&self, shard: &mut Shard, key: &[u8]) {
        if let Some(entry) = shard.entries.pop(key) {
            shard.bytes -= entry.charge;
            self.unlink(key, &entry.deps, None);
        }
    }

    fn link(&self, key: &[u8], deps: &[Box<[u8]>]) {
        if deps.is_empty() {
            return;
        }
        let mut dependents = self.dependents.lock();
        for dep in deps {
            dependents.entry(dep.clone()).or_default().insert(key.into());
        }
    }

    /// Takes `key` off the dependents of `deps`, except those in `kept`.
    fn unlink(&self, key: &[u8], deps: &[Box<[u8]>], kept: Option<&[Box<[u8]>]>) {
        if deps.is_empty() {
            return;
        }
        let mut dependents = self.dependents.lock();
        for dep in deps {
            if kept.is_some_and(|kept| kept.contains(dep)) {
                continue;
            }
            if let Some(keys) = dependents.get_mut(dep) {
                keys.remove(key);
                if keys.is_empty() {
                    dependents.remove(dep);
                }
            }
        }
    }
}

impl InvalidationSink for NearCache {
    fn connected(&self) {
        self.control.lock().connected = true;
    }

    fn disconnected(&self) {
        self.flush(Some(false));
    }

    fn invalidate(&self, full_keys: &[&[u8]]) {
        self.invalidations.fetch_add(full_keys.len() as u64, Ordering::Relaxed);
        // Keys of other clients cannot be held here.
        NearCache::invalidate(self, full_keys.iter().filter_map(|key| self.strip(key)));
    }

    fn invalidate_all(&self) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        self.flush(None);
    }

    fn max_staleness(&self) -> Option<Duration> {
        self.max_staleness
    }

    fn broadcast_prefix(&self) -> Option<&[u8]> {
        self.broadcast.then_some(&*self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(max_entries: usize, max_bytes: usize) -> NearCache {
        let near = NearCache::new(NearLimits::new(max_entries, max_bytes), b"p:");
        near.connected();
        near
    }

    fn plain(value: &[u8]) -> Fill<'_> {
        Fill { value, ttl: None, deps: Vec::new(), meta: None }
    }

    #[test]
    fn a_filled_value_is_served_until_its_key_is_reported() {
        let near = near(100, 1 << 20);
        let ticket = near.ticket().unwrap();
        near.fill(&ticket, b"k", plain(b"v"));
        assert_eq!(near.get(b"k"), Some(b"v".to_vec()));
        InvalidationSink::invalidate(&near, &[b"other:k", b"p:k"]);
        assert_eq!(near.get(b"k"), None);
        let stats = near.stats();
        assert_eq!((stats.hits, stats.misses, stats.invalidations, stats.entries), (1, 1, 2, 0));
    }

    #[test]
    fn a_report_during_the_read_refuses_the_fill() {
        let near = near(100, 1 << 20);
        let ticket = near.ticket().unwrap();
        NearCache::invalidate(&near, [&b"k"[..]]);
        near.fill(&ticket, b"k", plain(b"stale"));
        assert_eq!(near.get(b"k"), None);
        let ticket = near.ticket().unwrap();
        NearCache::invalidate(&near, [&b"tag"[..]]);
        near.fill(&ticket, b"k", Fill { deps: vec![b"tag".as_slice().into()], ..plain(b"stale") });
        assert_eq!(near.get(b"k"), None, "a report of a dependency refuses the fill too");
    }

    #[test]
    fn dependents_go_with_their_dependency() {
        let near = near(100, 1 << 20);
        let ticket = near.ticket().unwrap();
        let tagged = |tags: &[&[u8]]| tags.iter().map(|tag| Box::<[u8]>::from(*tag)).collect::<Vec<_>>();
        near.fill(&ticket, b"a", Fill { deps: tagged(&[b"t1", b"t2"]), ..plain(b"1") });
        near.fill(&ticket, b"b", Fill { deps: tagged(&[b"t2"]), ..plain(b"2") });
        near.fill(&ticket, b"c", plain(b"3"));
        NearCache::invalidate(&near, [&b"t1"[..]]);
        assert_eq!((near.get(b"a"), near.get(b"b")), (None, Some(b"2".to_vec())));
        NearCache::invalidate(&near, [&b"t2"[..]]);
        assert_eq!((near.get(b"b"), near.get(b"c")), (None, Some(b"3".to_vec())));
        assert!(near.dependents.lock().is_empty(), "no dependency outlives its entries");
    }

    #[test]
    fn a_disconnection_drops_everything_and_stops_fills() {
        let near = near(100, 1 << 20);
        let before = near.ticket().unwrap();
        near.fill(&before, b"k", plain(b"v"));
        near.disconnected();
        assert_eq!(near.get(b"k"), None);
        assert!(near.ticket().is_none());
        near.fill(&before, b"k", plain(b"v"));
        assert_eq!(near.get(b"k"), None, "a ticket from before the flush fills nothing");
        near.connected();
        near.fill(&before, b"k", plain(b"v"));
        assert_eq!(near.get(b"k"), None, "not even after reconnecting");
        assert_eq!(near.stats().flushes, 1);
    }

    #[test]
    fn entries_expire_with_their_ttl() {
        let near = near(100, 1 << 20);
        let ticket = near.ticket().unwrap();
        near.fill(&ticket, b"k", Fill { ttl: Some(Duration::from_millis(30)), ..plain(b"v") });
        assert!(near.get(b"k").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(near.get(b"k"), None);
    }

    #[test]
    fn bounds_hold_and_evictions_are_counted() {
        let near = near(100, 20_000);
        for index in 0..1000u32 {
            let ticket = near.ticket().unwrap();
            near.fill(&ticket, format!("key{index}").as_bytes(), plain(&[0u8; 100]));
        }
        let stats = near.stats();
        assert!(stats.entries <= 100 && stats.bytes <= 20_000, "{stats:?}");
        assert!(stats.evictions >= 900 - 100, "{stats:?}");
        assert!(near.get(b"key999").is_some(), "the newest entry stays");
        let ticket = near.ticket().unwrap();
        near.fill(&ticket, b"huge", plain(&[0u8; 30_000]));
        assert_eq!(near.get(b"huge"), None, "a value over the bound is not held");
    }

    #[test]
    fn an_overflowing_report_log_refuses_old_tickets() {
        let near = near(100, 1 << 20);
        let ticket = near.ticket().unwrap();
        for index in 0..REPORT_LOG + 1 {
            NearCache::invalidate(&near, [format!("other{index}").as_bytes()]);
        }
        near.fill(&ticket, b"k", plain(b"v"));
        assert_eq!(near.get(b"k"), None);
    }

    #[test]
    fn a_report_wakes_the_watchers_of_its_key_only() {
        let near = near(100, 1 << 20);
        let mut watch = near.watch(&[b"value", b"lock"]);
        NearCache::invalidate(&near, [&b"other"[..]]);
        assert!(!watch.wait(Duration::from_millis(1)), "a report about another key wakes nothing");
        std::thread::scope(|scope| {
            let woken = scope.spawn(move || watch.wait(Duration::from_secs(600)));
            InvalidationSink::invalidate(&near, &[b"p:lock"]);
            assert!(woken.join().unwrap(), "the report woke the waiting thread");
        });
        assert_eq!(near.watching.load(Ordering::SeqCst), 0, "a dropped watch watches nothing");
        assert!(near.watchers.lock().keys.is_empty());
    }

    #[test]
    fn a_report_before_the_wait_is_not_missed() {
        let near = near(100, 1 << 20);
        let mut first = near.watch(&[b"k"]);
        let mut second = near.watch(&[b"k"]);
        NearCache::invalidate(&near, [&b"k"[..]]);
        assert!(first.wait(Duration::from_secs(600)) && second.wait(Duration::from_secs(600)));
        assert!(!first.wait(Duration::from_millis(1)), "each report is seen once");
        near.disconnected();
        assert!(first.wait(Duration::from_secs(600)), "losing the reports wakes every watcher");
        drop((first, second));
        assert!(near.watchers.lock().keys.is_empty());
    }

    #[test]
    fn similar_keys_spread_over_the_shards() {
        let near = near(1 << 20, 1 << 30);
        let mut used = vec![0usize; near.shards.len()];
        for index in 0..1600 {
            used[hash(format!("key:{index:07}").as_bytes()) as usize & (near.shards.len() - 1)] += 1;
        }
        assert!(used.iter().all(|&count| (50..=150).contains(&count)), "{used:?}");
    }

    #[test]
    fn shard_counts_keep_small_caches_whole() {
        assert_eq!(NearCache::new(NearLimits::new(10, 1000), b"").shards.len(), 1);
        assert_eq!(NearCache::new(NearLimits::new(200, 1000), b"").shards.len(), 2);
        assert_eq!(NearCache::new(NearLimits::new(1 << 20, 1 << 30), b"").shards.len(), MAX_SHARDS);
    }
}
