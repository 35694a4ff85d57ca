//! The engine: a namespaced cache over any backend, with the argument checks
//! every caller gets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::backend::slots::companion_key;
use crate::backend::{
    Backend, ClusterBackend, ClusterSettings, Expiry, ForRefresh, MemoryBackend, RedisBackend, RedisSettings, Remaining,
    SentinelBackend, SentinelSettings, TrackedRead, TrackedReads, WriteExpiry, tls,
};
use crate::error::{Error, Result};
use crate::failsafe::StaleCopies;
use crate::glob;
use crate::near::{Fill, NearCache, NearLimits, Watch};
use crate::options::{DEFAULT_URL, MAX_TTL, Options, Servers, Target, check_jitter};
use crate::recovery::{Recovery, Removal};
use crate::stats::{Counters, Stats, bump};

/// Keys under the namespace that start with this belong to rcache itself
/// (tags, locks); callers' keys may not.
pub const RESERVED_SPACE: &[u8] = b"__rcache_";
/// Where tags live, inside the reserved space.
pub const TAG_SPACE: &[u8] = b"__rcache_tag:";
/// Where compute locks live, inside the reserved space.
pub const LOCK_SPACE: &[u8] = b"__rcache_lock:";
/// Where get-or-compute records how long a value took to compute.
pub const META_SPACE: &[u8] = b"__rcache_meta:";
/// Where get-or-compute keeps the last result it stored for a key: a stale
/// copy of the value for fail-safe, or the record that there is none.
pub const LAST_SPACE: &[u8] = b"__rcache_last:";
pub use crate::backend::MAX_TAGS;

/// How long an entry written by one call lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The client's default TTL (`Options::default_ttl`).
    Default,
    /// Kept until deleted or evicted.
    Never,
    /// Between 1 ms and `MAX_TTL`.
    After(Duration),
    /// Keeps the key's current expiry; a new key gets none (Redis's `KEEPTTL`).
    /// Only writes that replace a whole value take it: `set`,
    /// `compare_and_set`, `hash_set`; the others refuse it.
    Keep,
}

/// A cache client. Cheap to share: every method takes `&self` and may be
/// called from any number of threads at once.
pub struct Cache {
    pub(crate) backend: Arc<dyn Backend>,
    options: Options,
    pub(crate) counters: Counters,
    kind: BackendKind,
    /// The near cache, when the URL asks for one.
    near: Option<Arc<NearCache>>,
    /// Fail-safe's copies for when the server cannot be reached.
    pub(crate) stale_copies: StaleCopies,
    /// Removals waiting for the server to come back.
    recovery: Arc<Recovery>,
    /// `Options::ttl_jitter_percent`, changeable at any time.
    ttl_jitter: AtomicU8,
}

/// Which family of backend a client talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Memory,
    /// One Redis server (`redis://`, `rediss://`, `unix://`).
    Redis,
    /// The primary Sentinel names (`redis+sentinel://`), followed through failovers.
    Sentinel,
    /// A Redis Cluster (`redis+cluster://`).
    Cluster,
}

impl Cache {
    /// Opens the backend named by `url` (`memory://` when `None` or empty).
    /// For Redis this waits for the first connection, at most the connect timeout.
    ///
    /// A Redis URL may ask for a near cache with `near_cache=<entries>` and
    /// `near_cache_bytes=<bytes>` (default 64 MiB) among its query parameters:
    /// reads are then answered from process memory while the server confirms
    /// nothing changed (see docs/near-cache.md).
    pub fn connect(url: Option<&str>, options: Options) -> Result<Cache> {
        options.validate()?;
        let url = url.filter(|url| !url.trim().is_empty()).unwrap_or(DEFAULT_URL);
        let (backend, kind, near): (Box<dyn Backend>, _, _) = match Target::parse(url)? {
            Target::Memory => (Box::new(MemoryBackend::new(options.memory_limits)), BackendKind::Memory, None),
            Target::Redis { url, tls_files, near } => {
                let settings = redis_settings(&options, url);
                let backend = match tls_files.is_empty() {
                    true => RedisBackend::connect(&settings)?,
                    false => RedisBackend::with_client(tls::client(&settings.url, &tls_files)?, &settings)?,
                };
                let near = track(&backend, near, &options)?;
                (Box::new(backend), BackendKind::Redis, near)
            }
            Target::Sentinel { servers, service, db, sentinel_username, sentinel_password, near } => {
                let tls = servers.tls.then_some(match servers.insecure {
                    true => redis::TlsMode::Insecure,
                    false => redis::TlsMode::Secure,
                });
                let settings = SentinelSettings {
                    certificates: tls::certificates(&servers.tls_files)?,
                    sentinels: servers.hosts,
                    service,
                    db,
                    username: servers.username,
                    password: servers.password,
                    sentinel_username,
                    sentinel_password,
                    tls,
                    redis: redis_settings(&options, String::new()),
                };
                let backend = SentinelBackend::connect(settings)?;
                let near = track(&backend, near, &options)?;
                (Box::new(backend), BackendKind::Sentinel, near)
            }
            Target::Cluster { servers, near } => {
                let settings = ClusterSettings {
                    nodes: node_urls(&servers),
                    certificates: tls::certificates(&servers.tls_files)?,
                    username: servers.username,
                    password: servers.password,
                    connect_timeout: options.connect_timeout,
                    response_timeout: options.response_timeout,
                    breaker_threshold: options.breaker_threshold,
                    breaker_cooldown: options.breaker_cooldown,
                    tag_space: [&options.key_prefix, TAG_SPACE].concat(),
                };
                let backend = ClusterBackend::connect(settings)?;
                let near = track(&backend, near, &options)?;
                (Box::new(backend), BackendKind::Cluster, near)
            }
        };
        let stale_copies = StaleCopies::new(options.stale_copies);
        let recovery = Arc::new(Recovery::new(options.recovery_queue));
        let backend = Arc::from(backend);
        let ttl_jitter = AtomicU8::new(options.ttl_jitter_percent);
        Ok(Cache { backend, options, kind, counters: Counters::default(), near, stale_copies, recovery, ttl_jitter })
    }

    pub fn backend_kind(&self) -> BackendKind {
        self.kind
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The client's counters so far.
    pub fn stats(&self) -> Stats {
        let (breaker_trips, breaker_skips) = self.backend.breaker_counts();
        let mut stats = self.counters.snapshot(breaker_trips, breaker_skips);
        stats.recovery_queue = self.recovery.len() as u64;
        stats.recovery_replays = self.recovery.replayed.load(Ordering::Relaxed);
        stats.recovery_overflows = self.recovery.overflows.load(Ordering::Relaxed);
        if let Some(near) = &self.near {
            let near = near.stats();
            stats.hits += near.hits;
            stats.near_hits = near.hits;
            stats.near_misses = near.misses;
            stats.near_invalidations = near.invalidations;
            stats.near_evictions = near.evictions;
            stats.near_flushes = near.flushes;
            stats.near_entries = near.entries;
            stats.near_bytes = near.bytes;
        }
        stats
    }

    /// Runs one backend operation, recording its latency and any error.
    /// Removals queued during an outage are replayed first; while they
    /// cannot be, the operation is not sent and gets the replay's error.
    pub(crate) fn call<T>(&self, operation: impl FnOnce(&dyn Backend) -> Result<T>) -> Result<T> {
        if self.recovery.is_pending() {
            self.recover()?;
        }
        let started = Instant::now();
        let result = operation(&*self.backend);
        self.counters.record_call(started.elapsed());
        if let Err(error) = &result {
            self.counters.record_error(error);
        }
        result
    }

    /// Replays the queued removals; the near cache is emptied once they are.
    fn recover(&self) -> Result<()> {
        match self.recovery.replay(&*self.backend) {
            Ok(replayed) => {
                if let (true, Some(near)) = (replayed, &self.near) {
                    near.flush(None);
                }
                Ok(())
            }
            Err(error) => {
                self.counters.record_error(&error);
                Err(error)
            }
        }
    }

    /// Queues removals that failed because the server could not be reached,
    /// for replay when it answers again.
    fn queue_if_unreachable<T>(&self, result: &Result<T>, removals: impl FnOnce() -> Vec<Removal>) {
        if !result.as_ref().is_err_and(Error::is_unreachable) {
            return;
        }
        for removal in removals() {
            self.recovery.push(removal, || self.namespace_pattern(None));
        }
        let interval = self.options.breaker_cooldown.min(Duration::from_millis(100));
        Recovery::replay_in_background(&self.recovery, &self.backend, self.near.as_ref(), interval);
    }

    /// Under `fail_open`, answers a call the server could not with `fallback`, counting it.
    pub(crate) fn or_fail_open<T>(&self, result: Result<T>, fallback: impl FnOnce() -> T) -> Result<T> {
        match result {
            Err(error) if self.is_fail_open(&error) => {
                bump(&self.counters.fail_opens);
                Ok(fallback())
            }
            other => other,
        }
    }

    pub(crate) fn is_fail_open(&self, error: &Error) -> bool {
        self.options.fail_open && error.is_unreachable()
    }

    /// The stored value, or `None` on a miss.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(near) = &self.near {
            self.check_key(key)?;
            if let Some(value) = near.get(key) {
                return Ok(Some(value));
            }
        }
        let full_key = self.full_key(key)?;
        let read =
            |backend: &dyn Backend| match self.near_read(backend, &[key], std::slice::from_ref(&full_key), TrackedRead::One)? {
                Some(reads) => Ok(reads.values.into_iter().next().flatten().map(|found| found.value)),
                None => backend.get(&full_key),
            };
        let value = self.or_fail_open(self.call(read), || None)?;
        self.counters.record_lookup(value.is_some());
        Ok(value)
    }

    /// What `read` makes of the value of `key` when the near cache holds a
    /// live copy, counted as a near hit when `Some`. Never sends anything and
    /// never waits for I/O. `None` without a near cache or without a copy,
    /// uncounted: `get` then reads the key and counts the miss.
    pub fn get_held<T>(&self, key: &[u8], read: impl FnOnce(&[u8]) -> Option<T>) -> Result<Option<T>> {
        self.check_key(key)?;
        Ok(self.near.as_ref().and_then(|near| near.read_held(key, read)))
    }

    /// The stored value and how much longer it lives, in one round trip;
    /// `None` on a miss. Counted as a hit or a miss like `get`.
    pub fn get_with_ttl(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Remaining)>> {
        if let Some(near) = &self.near {
            self.check_key(key)?;
            if let Some(found) = near.get_with_ttl(key) {
                return Ok(Some(found));
            }
        }
        let full_key = self.full_key(key)?;
        let read =
            |backend: &dyn Backend| match self.near_read(backend, &[key], std::slice::from_ref(&full_key), TrackedRead::One)? {
                Some(reads) => Ok(reads
                    .values
                    .into_iter()
                    .next()
                    .flatten()
                    .map(|found| (found.value, found.ttl.map_or(Remaining::Forever, Remaining::Left)))),
                None => backend.get_with_ttl(&full_key),
            };
        let found = self.or_fail_open(self.call(read), || None)?;
        self.counters.record_lookup(found.is_some());
        Ok(found)
    }

    /// Values in the order of `keys`, fetched in one round trip.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut full_keys = keys.iter().map(|key| self.full_key(key)).collect::<Result<Vec<_>>>()?;
        let mut values = vec![None; keys.len()];
        // Positions the near cache could not answer.
        let mut missing: Vec<usize> = (0..keys.len()).collect();
        if let Some(near) = &self.near {
            missing.retain(|&index| {
                values[index] = near.get(keys[index]);
                values[index].is_none()
            });
            if missing.is_empty() {
                return Ok(values);
            }
        }
        let missing_keys: Vec<&[u8]> = missing.iter().map(|&index| keys[index]).collect();
        let missing_full: Vec<Vec<u8>> = missing.iter().map(|&index| std::mem::take(&mut full_keys[index])).collect();
        let read = |backend: &dyn Backend| match self.near_read(backend, &missing_keys, &missing_full, TrackedRead::Many)? {
            Some(reads) => Ok(reads.values.into_iter().map(|found| found.map(|found| found.value)).collect()),
            None => backend.get_many(&missing_full),
        };
        let fetched = self.or_fail_open(self.call(read), || vec![None; missing.len()])?;
        for (index, value) in missing.into_iter().zip(fetched) {
            self.counters.record_lookup(value.is_some());
            values[index] = value;
        }
        Ok(values)
    }

    /// For get-or-compute: the value at `key`, the metadata at `meta_key` (a
    /// full key) and the value's remaining lifetime, in one round trip or from
    /// the near cache; true when the near cache answered (its hit is counted).
    pub(crate) fn get_for_refresh(&self, key: &[u8], meta_key: &[u8]) -> Result<Option<(ForRefresh, bool)>> {
        if let Some(near) = &self.near {
            self.check_key(key)?;
            if let Some(found) = near.get_for_refresh(key) {
                return Ok(Some((found, true)));
            }
        }
        let full_key = self.full_key(key)?;
        let read = TrackedRead::Refresh(meta_key);
        let found = self.call(|backend| match self.near_read(backend, &[key], std::slice::from_ref(&full_key), read)? {
            Some(TrackedReads { values, meta }) => Ok(values
                .into_iter()
                .next()
                .flatten()
                .map(|found| (found.value, meta, found.ttl.map_or(Remaining::Forever, Remaining::Left)))),
            None => backend.get_for_refresh(&full_key, meta_key),
        })?;
        Ok(found.map(|found| (found, false)))
    }

    /// A tracked read of `full_keys` (the full keys of `keys`) that fills the
    /// near cache; `None` without a near cache or while the server's reports
    /// of changes do not flow: then read untracked.
    fn near_read(
        &self,
        backend: &dyn Backend,
        keys: &[&[u8]],
        full_keys: &[Vec<u8>],
        read: TrackedRead<'_>,
    ) -> Result<Option<TrackedReads>> {
        let Some(near) = &self.near else { return Ok(None) };
        let Some(ticket) = near.ticket() else { return Ok(None) };
        let Some(reads) = backend.read_tracked(full_keys, read)? else { return Ok(None) };
        let meta_key = match read {
            TrackedRead::Refresh(meta_key) => Some(meta_key),
            TrackedRead::One | TrackedRead::Many => None,
        };
        for (key, found) in keys.iter().zip(&reads.values) {
            let Some(found) = found.as_ref().filter(|found| found.tracked) else { continue };
            // Every dependency is under the prefix; one that is not could not be followed.
            let deps = found.tags.iter().map(Vec::as_slice).chain(meta_key).map(|dep| near.strip(dep).map(Into::into));
            let Some(deps) = deps.collect::<Option<Vec<_>>>() else { continue };
            let meta = meta_key.map(|_| reads.meta.as_deref());
            near.fill(&ticket, key, Fill { value: &found.value, ttl: found.ttl, deps, meta });
        }
        Ok(Some(reads))
    }

    /// `full_keys` read in one round trip as `get_many` reads them, for a
    /// get-or-compute waiter: on the near cache's tracking connection when it
    /// is up, so that the server reports the next change of each of them to
    /// `watch`. Fills nothing.
    pub(crate) fn look(&self, full_keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.call(|backend| {
            let tracked = match self.near {
                Some(_) => backend.read_tracked(full_keys, TrackedRead::Many)?,
                None => None,
            };
            match tracked {
                Some(reads) => Ok(reads.values.into_iter().map(|found| found.map(|found| found.value)).collect()),
                None => backend.get_many(full_keys),
            }
        })
    }

    /// A wait for the server's reports about `full_keys` (made before the
    /// `look` it follows), when a near cache receives them.
    pub(crate) fn watch(&self, full_keys: &[Vec<u8>]) -> Option<Watch<'_>> {
        let near = self.near.as_ref()?;
        let keys: Vec<&[u8]> = full_keys.iter().filter_map(|key| near.strip(key)).collect();
        Some(near.watch(&keys))
    }

    /// Drops the near cache's copies of `full_keys` once a write to them has
    /// been sent, whatever its outcome, so this handle reads its own writes.
    pub(crate) fn forget<K: AsRef<[u8]>>(&self, full_keys: &[K]) {
        if let Some(near) = &self.near {
            near.invalidate(full_keys.iter().filter_map(|key| near.strip(key.as_ref())));
        }
    }

    /// `forget` for the caller's keys (without the prefix).
    fn forget_keys(&self, keys: &[&[u8]]) {
        if let Some(near) = &self.near {
            near.invalidate(keys.iter().copied());
        }
    }

    /// Stores `value`, replacing whatever `key` held. `Ttl::Keep` keeps the
    /// key's expiry.
    pub fn set(&self, key: &[u8], value: &[u8], ttl: Ttl) -> Result<()> {
        let key = self.full_key(key)?;
        self.check_value(value)?;
        let expiry = self.write_expiry(ttl)?;
        let result = self.call(|backend| backend.set(&key, value, expiry));
        self.forget(&[&key]);
        self.or_fail_open(result, || ())
    }

    /// Stores `value` only if `key` holds exactly `expected` (a valid value,
    /// plain or tagged; a tagged one is replaced by a plain one), atomically;
    /// true when stored, false when the key is missing or holds another
    /// value. A hash record is `WrongType`. `Ttl::Keep` keeps the key's expiry.
    /// Never fails open: the caller acts on the answer.
    pub fn compare_and_set(&self, key: &[u8], expected: &[u8], value: &[u8], ttl: Ttl) -> Result<bool> {
        let key = self.full_key(key)?;
        self.check_value(expected)?;
        self.check_value(value)?;
        let expiry = self.write_expiry(ttl)?;
        let result = self.call(|backend| backend.compare_and_set(&key, expected, value, expiry));
        self.forget(&[&key]);
        result
    }

    /// Stores every entry with the same TTL, all or nothing, in one round trip.
    pub fn set_many(&self, entries: &[(&[u8], &[u8])], ttl: Ttl) -> Result<()> {
        let expiry = self.entry_expiry(ttl)?;
        let entries =
            entries.iter().map(|(key, value)| Ok((self.full_key(key)?, self.check_value(value)?))).collect::<Result<Vec<_>>>()?;
        let result = self.call(|backend| backend.set_many(&entries, expiry));
        self.forget(&entries.iter().map(|(key, _)| key).collect::<Vec<_>>());
        self.or_fail_open(result, || ())
    }

    /// Stores `value` valid until it expires or any of `tags` is invalidated.
    /// With no tags this is `set`.
    pub fn set_with_tags(&self, key: &[u8], value: &[u8], ttl: Ttl, tags: &[&[u8]]) -> Result<()> {
        if tags.is_empty() {
            return self.set(key, value, ttl);
        }
        let key = self.full_key(key)?;
        let tags = self.tag_keys(tags)?;
        self.check_value(value)?;
        let expiry = self.entry_expiry(ttl)?;
        let result = self.call(|backend| backend.set_tagged(&key, value, expiry, &tags));
        self.forget(&[&key]);
        self.or_fail_open(result, || ())
    }

    /// Adds tags to an existing entry, keeping its value and TTL; false when
    /// the key is missing (or already invalidated).
    pub fn add_tags(&self, key: &[u8], tags: &[&[u8]]) -> Result<bool> {
        let key = self.full_key(key)?;
        let tags = self.tag_keys(tags)?;
        let result = self.call(|backend| backend.add_tags(&key, &tags));
        self.forget(&[&key]);
        self.or_fail_open(result, || false)
    }

    /// Makes every entry carrying any of `tags` unreadable, from every client,
    /// before returning. Costs O(number of tags), whatever the number of entries.
    pub fn invalidate_tags(&self, tags: &[&[u8]]) -> Result<()> {
        let tags = self.tag_keys(tags)?;
        let result = self.call(|backend| backend.invalidate_tags(&tags));
        self.forget(&tags);
        self.stale_copies.forget_tagged(&tags);
        self.queue_if_unreachable(&result, || vec![Removal::InvalidateTags(tags.clone())]);
        result
    }

    /// Deletes the namespace's keys matching the Redis glob `pattern` (matched
    /// against keys without the prefix), or every key of the namespace, tags
    /// included, when `None`. Incremental on Redis (SCAN and UNLINK in
    /// batches); never touches keys outside the namespace. Returns how many
    /// keys were deleted.
    pub fn clear(&self, pattern: Option<&[u8]>) -> Result<u64> {
        self.stale_copies.forget_matching(pattern);
        let mut patterns = vec![self.namespace_pattern(pattern)];
        if let Some(pattern) = pattern {
            // Get-or-compute's last results of the keys cleared: `<space>{<slot tag>}<key>`.
            patterns.push(self.namespace_pattern(Some(&[LAST_SPACE, b"{*}", pattern].concat())));
        }
        let mut result = Ok(0);
        for pattern in &patterns {
            result = result.and_then(|cleared| self.call(|backend| backend.clear(pattern)).map(|more| cleared + more));
        }
        self.queue_if_unreachable(&result, || patterns.into_iter().map(Removal::Clear).collect());
        // Cheaper than matching every held key, and rare.
        if let Some(near) = &self.near {
            near.flush(None);
        }
        result
    }

    /// The namespace's keys, of any type, matching the Redis glob `pattern`
    /// (matched against keys without the prefix, as in `clear`; every key
    /// when `None`), without the prefix, in byte order. Keys of rcache's own
    /// (`__rcache_…`) are left out, and so are entries whose tags were
    /// invalidated. SCAN on Redis, never KEYS. On `memory://` sessions are
    /// kept apart and are not listed.
    pub fn keys(&self, pattern: Option<&[u8]>) -> Result<Vec<Vec<u8>>> {
        let prefix = &self.options.key_prefix;
        let found = self.call(|backend| backend.keys(&self.namespace_pattern(pattern)))?;
        let mut keys: Vec<Vec<u8>> = found
            .iter()
            .filter_map(|key| key.strip_prefix(prefix.as_slice()))
            .filter(|key| !key.starts_with(RESERVED_SPACE))
            .map(<[u8]>::to_vec)
            .collect();
        // SCAN may return a key twice.
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// The glob matching the namespace's keys that match `pattern` (all when `None`).
    fn namespace_pattern(&self, pattern: Option<&[u8]>) -> Vec<u8> {
        let mut full = glob::escape(&self.options.key_prefix);
        full.extend_from_slice(pattern.unwrap_or(b"*"));
        full
    }

    /// The server's `INFO` text (all default sections); on `memory://` the
    /// same format with `rcache_backend:memory`, `used_memory`, `keys` and a few more.
    pub fn server_info(&self) -> Result<Vec<u8>> {
        self.call(|backend| backend.server_info())
    }

    /// True when the key existed. Also deletes what get-or-compute kept
    /// beside it (its stale copy, or the record that it has no value).
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        let full_key = self.full_key(key)?;
        self.stale_copies.forget(key);
        let last = companion_key(&self.options.key_prefix, LAST_SPACE, key);
        let result = self.call(|backend| backend.delete(&full_key));
        self.forget_keys(&[key]);
        let result = result.and_then(|existed| self.call(|backend| backend.delete(&last)).map(|_| existed));
        self.forget(&[&last]);
        self.queue_if_unreachable(&result, || vec![Removal::Delete(full_key), Removal::Delete(last)]);
        result
    }

    pub fn exists(&self, key: &[u8]) -> Result<bool> {
        let key = self.full_key(key)?;
        self.or_fail_open(self.call(|backend| backend.exists(&key)), || false)
    }

    /// How much longer the entry lives.
    pub fn remaining(&self, key: &[u8]) -> Result<Remaining> {
        let key = self.full_key(key)?;
        self.or_fail_open(self.call(|backend| backend.remaining(&key)), || Remaining::Missing)
    }

    /// Gives an existing entry a new TTL; false when the key is missing.
    pub fn expire(&self, key: &[u8], ttl: Ttl) -> Result<bool> {
        let result = self.call(|backend| backend.expire(&self.full_key(key)?, self.expiry(ttl)?));
        self.forget_keys(&[key]);
        result
    }

    /// Adds `delta` to an integer counter and returns the new value. A missing
    /// counter starts at 0 and gets `ttl` in the same atomic step; an existing
    /// one keeps its TTL.
    pub fn increment(&self, key: &[u8], delta: i64, ttl: Ttl) -> Result<i64> {
        let result = self.call(|backend| backend.increment(&self.full_key(key)?, delta, self.expiry(ttl)?));
        self.forget_keys(&[key]);
        result
    }

    /// Takes the lock `key` (in the namespace, as any key) for `owner`, a
    /// token unique to the holder, for `lease`; false when the key exists
    /// (someone holds it). On Redis this is the classic `SET key owner NX PX
    /// lease`, so other clients using that protocol interoperate.
    pub fn lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let (key, owner) = self.lock_key(key, owner)?;
        let lease = check_lease(lease)?;
        let result = self.call(|backend| backend.lock(&key, owner, lease));
        self.forget(&[&key]);
        result
    }

    /// Renews the lease of a lock `owner` holds; false when it is not theirs.
    pub fn extend_lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let (key, owner) = self.lock_key(key, owner)?;
        let lease = check_lease(lease)?;
        let result = self.call(|backend| backend.extend_lock(&key, owner, lease));
        self.forget(&[&key]);
        result
    }

    /// Releases a lock `owner` holds (compare and delete); false when it is not theirs.
    pub fn unlock(&self, key: &[u8], owner: &[u8]) -> Result<bool> {
        let (key, owner) = self.lock_key(key, owner)?;
        let result = self.call(|backend| backend.unlock(&key, owner));
        self.forget(&[&key]);
        result
    }

    /// The full key of a caller's lock, and its owner token checked.
    fn lock_key<'o>(&self, key: &[u8], owner: &'o [u8]) -> Result<(Vec<u8>, &'o [u8])> {
        let key = self.full_key(key)?;
        if owner.is_empty() {
            return Err(Error::invalid("lock owner must not be empty"));
        }
        if crate::backend::looks_tagged(owner) {
            return Err(Error::invalid("lock owner must not start with the bytes that mark a tagged entry (\\0rcache-tags\\0)"));
        }
        Ok((key, self.check_value(owner)?))
    }

    pub(crate) fn full_key(&self, key: &[u8]) -> Result<Vec<u8>> {
        self.check_key(key)?;
        Ok([&self.options.key_prefix, key].concat())
    }

    /// Refuses a key no call may use, without building its full key.
    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::invalid("key must not be empty"));
        }
        if key.starts_with(RESERVED_SPACE) {
            return Err(Error::invalid("keys starting with \"__rcache_\" are reserved for rcache's own use"));
        }
        if key.len() > self.options.max_key_bytes {
            return Err(Error::too_large(format!(
                "key of {} bytes exceeds the limit of {} bytes",
                key.len(),
                self.options.max_key_bytes
            )));
        }
        Ok(())
    }

    /// The full keys of `tags`, without duplicates.
    pub(crate) fn tag_keys(&self, tags: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
        if tags.len() > MAX_TAGS {
            return Err(Error::invalid(format!("at most {MAX_TAGS} tags per call (and per entry), got {}", tags.len())));
        }
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(tags.len());
        for tag in tags {
            if tag.is_empty() {
                return Err(Error::invalid("tag must not be empty"));
            }
            if tag.len() > self.options.max_key_bytes {
                return Err(Error::too_large(format!(
                    "tag of {} bytes exceeds the key limit of {} bytes",
                    tag.len(),
                    self.options.max_key_bytes
                )));
            }
            let key = [&self.options.key_prefix, TAG_SPACE, tag].concat();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    pub(crate) fn check_value<'v>(&self, value: &'v [u8]) -> Result<&'v [u8]> {
        if value.len() > self.options.max_value_bytes {
            return Err(Error::too_large(format!(
                "value of {} bytes exceeds the limit of {} bytes",
                value.len(),
                self.options.max_value_bytes
            )));
        }
        Ok(value)
    }

    pub(crate) fn expiry(&self, ttl: Ttl) -> Result<Expiry> {
        match ttl {
            Ttl::Default => Ok(self.options.default_ttl.map_or(Expiry::Never, Expiry::After)),
            Ttl::Never => Ok(Expiry::Never),
            Ttl::After(ttl) if ttl.is_zero() => Err(Error::invalid("TTL must be at least 1 ms")),
            Ttl::After(ttl) if ttl > MAX_TTL => Err(Error::invalid("TTL must be at most 100 years")),
            Ttl::After(ttl) => Ok(Expiry::After(ttl)),
            Ttl::Keep => Err(Error::invalid("this call cannot keep the current TTL: only set, compare-and-set and hash-set can")),
        }
    }

    /// `entry_expiry`, or keeping the current one, for writes that replace a whole value.
    pub(crate) fn write_expiry(&self, ttl: Ttl) -> Result<WriteExpiry> {
        match ttl {
            Ttl::Keep => Ok(WriteExpiry::Keep),
            ttl => self.entry_expiry(ttl).map(WriteExpiry::Set),
        }
    }

    /// `expiry` of a cache entry, shortened by the TTL jitter.
    pub(crate) fn entry_expiry(&self, ttl: Ttl) -> Result<Expiry> {
        let expiry = self.expiry(ttl)?;
        let percent = self.ttl_jitter.load(Ordering::Relaxed);
        Ok(match expiry {
            Expiry::After(ttl) if percent > 0 => {
                let cut = ttl.mul_f64(f64::from(percent) / 100.0 * crate::compute::unit_random());
                Expiry::After(ttl.saturating_sub(cut).max(Duration::from_millis(1)))
            }
            expiry => expiry,
        })
    }

    /// Changes the TTL jitter (`Options::ttl_jitter_percent`) for later writes.
    pub fn set_ttl_jitter(&self, percent: u8) -> Result<()> {
        check_jitter(percent)?;
        self.ttl_jitter.store(percent, Ordering::Relaxed);
        Ok(())
    }
}

/// A near cache with these bounds, reported to by `backend`, when the URL asks for one.
fn track(backend: &dyn Backend, limits: Option<NearLimits>, options: &Options) -> Result<Option<Arc<NearCache>>> {
    let Some(limits) = limits else { return Ok(None) };
    let near = Arc::new(NearCache::new(limits, &options.key_prefix));
    backend.track(near.clone())?;
    Ok(Some(near))
}

fn redis_settings(options: &Options, url: String) -> RedisSettings {
    RedisSettings {
        url,
        connect_timeout: options.connect_timeout,
        response_timeout: options.response_timeout,
        breaker_threshold: options.breaker_threshold,
        breaker_cooldown: options.breaker_cooldown,
        tag_space: [&options.key_prefix, TAG_SPACE].concat(),
    }
}

/// `redis://host:port` (or `rediss://…[#insecure]`) of each node a Cluster URL lists.
fn node_urls(servers: &Servers) -> Vec<String> {
    let scheme = if servers.tls { "rediss" } else { "redis" };
    let fragment = if servers.insecure { "#insecure" } else { "" };
    servers
        .hosts
        .iter()
        .map(|(host, port)| match host.contains(':') {
            true => format!("{scheme}://[{host}]:{port}{fragment}"),
            false => format!("{scheme}://{host}:{port}{fragment}"),
        })
        .collect()
}

fn check_lease(lease: Duration) -> Result<Duration> {
    if lease.is_zero() || lease > MAX_TTL {
        return Err(Error::invalid("lock lease must be between 1 ms and 100 years"));
    }
    Ok(lease)
}
