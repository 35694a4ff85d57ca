//! Stampede-safe get-or-compute: on a miss, one caller across all threads and
//! processes computes while the others wait for its value.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::backend::slots::companion_key;
use crate::backend::{Expiry, Remaining, WriteExpiry};
use crate::cache::{Cache, LAST_SPACE, LOCK_SPACE, META_SPACE, Ttl};
use crate::error::{Error, ErrorKind, Result};
use crate::options::{FailSafe, MAX_TTL};
use crate::stats::bump;

/// What a waiter does when the value has not appeared within `wait_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnWaitTimeout {
    /// Compute the value itself (and store it).
    Compute,
    /// Give up with an `ErrorKind::Timeout` error.
    Fail,
}

/// How `get_or_compute` stores the value and waits for other callers.
#[derive(Clone, Copy, Debug)]
pub struct ComputeOptions<'t> {
    pub ttl: Ttl,
    pub tags: &'t [&'t [u8]],
    /// How long the lock lives without renewal. The computing caller renews it
    /// every third of this while the computation runs, so a long computation
    /// keeps it; a crashed one frees it after at most this long.
    pub lock_lease: Duration,
    /// Longest a waiter waits for another caller's value.
    pub wait_timeout: Duration,
    pub on_wait_timeout: OnWaitTimeout,
    /// Early refresh (XFetch, Vattani et al., VLDB 2015): a reader recomputes
    /// a still-valid value with a probability that rises as its expiry nears,
    /// scaled by how long it took to compute; the other readers keep getting
    /// the current value meanwhile. 1.0 is the paper's default; 0 disables it.
    pub early_refresh_beta: f64,
    /// Fail-safe for this call; `None` takes the handle's (`Options::fail_safe`).
    /// Only `get_or_compute_with` serves stale values; `get_or_compute` never does.
    pub fail_safe: Option<FailSafe>,
    /// Negative caching for `get_or_compute_with`: a computation that finds
    /// no value (`Ok(None)`) is remembered for this long and read back as
    /// `Computed { value: None, .. }`; `None` remembers nothing (and ignores
    /// what other callers remembered).
    pub negative_ttl: Option<Duration>,
}

impl Default for ComputeOptions<'_> {
    fn default() -> Self {
        ComputeOptions {
            ttl: Ttl::Default,
            tags: &[],
            lock_lease: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(10),
            on_wait_timeout: OnWaitTimeout::Compute,
            early_refresh_beta: 1.0,
            fail_safe: None,
            negative_ttl: None,
        }
    }
}

/// Why `get_or_compute` failed: the cache, or the computation itself.
#[derive(Debug)]
pub enum ComputeError<E> {
    Cache(Error),
    Compute(E),
}

impl<E> From<Error> for ComputeError<E> {
    fn from(error: Error) -> Self {
        ComputeError::Cache(error)
    }
}

/// What `get_or_compute_with` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Computed {
    /// The value; `None` when the computation found none (negative caching).
    pub value: Option<Vec<u8>>,
    /// True when fail-safe served the last good value instead of an error:
    /// it may be past its expiry, or not confirmed by the server.
    pub stale: bool,
}

impl Computed {
    fn fresh(value: Vec<u8>) -> Computed {
        Computed { value: Some(value), stale: false }
    }

    fn stale(value: Vec<u8>) -> Computed {
        Computed { value: Some(value), stale: true }
    }

    const NO_VALUE: Computed = Computed { value: None, stale: false };
}

/// Soft and hard timeouts of `Cache::get_or_compute_timed`, both counted
/// from the start of the call. `None` turns one off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// After this, a caller (computing or waiting) that has a stale copy
    /// (fail-safe) returns it, marked stale, while the computation goes on
    /// in the background and stores its value when it ends. Needs fail-safe.
    pub soft: Option<Duration>,
    /// After this, the caller gets an `ErrorKind::Timeout` error, or the
    /// stale copy under fail-safe. The computation still goes on (a thread
    /// cannot be stopped) and stores its value when it ends.
    pub hard: Option<Duration>,
}

impl Timeouts {
    fn validate(&self, fail_safe: FailSafe) -> Result<()> {
        let at_least_1_ms = |timeout: Option<Duration>| timeout.is_none_or(|timeout| timeout >= Duration::from_millis(1));
        if !at_least_1_ms(self.soft) || !at_least_1_ms(self.hard) {
            return Err(Error::invalid("soft and hard timeouts must be at least 1 ms"));
        }
        if self.soft.is_some() && !fail_safe.is_on() {
            return Err(Error::invalid(
                "a soft timeout needs fail-safe (max_stale above 0): without a stale copy there is nothing to return early",
            ));
        }
        if let (Some(soft), Some(hard)) = (self.soft, self.hard) {
            if soft >= hard {
                return Err(Error::invalid("the soft timeout must be shorter than the hard timeout"));
            }
        }
        Ok(())
    }

    fn starting_now(&self) -> Deadlines {
        let now = Instant::now();
        let at = |timeout: Option<Duration>| timeout.and_then(|timeout| now.checked_add(timeout));
        Deadlines { soft: at(self.soft), hard: at(self.hard), timeouts: *self }
    }
}

/// A call's timeouts as instants.
#[derive(Clone, Copy)]
struct Deadlines {
    soft: Option<Instant>,
    hard: Option<Instant>,
    timeouts: Timeouts,
}

impl Deadlines {
    fn past_hard(&self) -> bool {
        self.hard.is_some_and(|hard| Instant::now() >= hard)
    }

    fn hard_timeout_error(&self) -> Error {
        let millis = self.timeouts.hard.unwrap_or_default().as_millis();
        Error::new(ErrorKind::Timeout, format!("no value within the hard timeout of {millis} ms; the computation goes on"))
    }
}

/// What a call computes once it has decided to.
enum Work {
    /// Holding the key's lock as `owner`; `current` is the still-valid value
    /// of an early refresh.
    Locked { owner: Vec<u8>, current: Option<Vec<u8>> },
    /// Without the lock (a waiter that gave up waiting), then stored.
    Unlocked,
    /// The server cannot be reached and fail-open is on: returned, not stored.
    Uncached,
}

/// What a background computation sends back: its result, or its panic.
type Outcome<E> = std::thread::Result<std::result::Result<Computed, ComputeError<E>>>;

/// The first byte of what the last-result key holds: a value follows, or there is none.
const LAST_VALUE: u8 = b'v';
const LAST_NONE: &[u8] = b"n";
/// What the lock of a throttled key holds instead of an owner token (tokens are hex).
const THROTTLED: &[u8] = b"throttled";

/// The keys beside an entry, all in its hash slot: on a Cluster one script
/// reads the entry with its hint, and the lock sits beside them.
struct Companions {
    lock: Vec<u8>,
    meta: Vec<u8>,
    last: Vec<u8>,
}

impl Companions {
    fn of(prefix: &[u8], key: &[u8]) -> Companions {
        Companions {
            lock: companion_key(prefix, LOCK_SPACE, key),
            meta: companion_key(prefix, META_SPACE, key),
            last: companion_key(prefix, LAST_SPACE, key),
        }
    }
}

/// Pause between two looks of a waiter: short at first, then at most this.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const LONGEST_PAUSE: Duration = Duration::from_millis(20);

/// A uniform random number in (0, 1].
pub(crate) fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    ((u64::from_le_bytes(bytes) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// XFetch's test: refresh when `remaining <= delta * beta * -ln(rand)`.
fn due_for_refresh(delta: Duration, remaining: Remaining, beta: f64) -> bool {
    match remaining {
        Remaining::Left(left) => left.as_secs_f64() <= delta.as_secs_f64() * beta * -unit_random().ln(),
        Remaining::Forever | Remaining::Missing => false,
    }
}

fn owner_token() -> Vec<u8> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>().into_bytes()
}

impl Cache {
    /// The value at `key`; on a miss, `compute` produces it and it is stored
    /// with `options.ttl` and `options.tags`. Concurrent callers that miss the
    /// same key, in any thread or process, wait while one of them computes,
    /// then get its value. If `compute` fails or panics, nothing is stored,
    /// the lock is released, and one of the waiters takes over.
    ///
    /// Under `Options::fail_open`, when the server cannot be reached the value
    /// is computed and returned without being cached. Fail-safe and negative
    /// caching are `get_or_compute_with`'s; this call never serves a stale value.
    pub fn get_or_compute<E>(
        &self,
        key: &[u8],
        options: &ComputeOptions<'_>,
        compute: impl FnOnce() -> std::result::Result<Vec<u8>, E>,
    ) -> std::result::Result<Vec<u8>, ComputeError<E>> {
        let options = ComputeOptions { fail_safe: Some(FailSafe::OFF), negative_ttl: None, ..*options };
        let computed = self.get_or_compute_with(key, &options, || compute().map(Some))?;
        Ok(computed.value.expect("without negative caching every result holds a value"))
    }

    /// `get_or_compute` with fail-safe and negative caching.
    ///
    /// Fail-safe (`options.fail_safe`, else the handle's): each value stored
    /// is also kept as a stale copy for `max_stale` past its expiry, on the
    /// server (tagged as the value, so tag invalidations, deletes and clears
    /// remove it) and in process memory. When the computation fails, the
    /// wait for another caller's computation times out, or the server cannot
    /// be reached, the stale copy is returned with `stale: true` instead of
    /// the error, and for `throttle` every caller of that key (in any
    /// process) gets it without computing. A panicking computation is never
    /// covered. `compute` returning `Ok(None)` means "no value": with
    /// `options.negative_ttl` that is remembered and read back as
    /// `value: None`, and it replaces any stale copy.
    pub fn get_or_compute_with<E>(
        &self,
        key: &[u8],
        options: &ComputeOptions<'_>,
        compute: impl FnOnce() -> std::result::Result<Option<Vec<u8>>, E>,
    ) -> std::result::Result<Computed, ComputeError<E>> {
        let mut compute = Some(compute);
        self.get_or_compute_via(key, options, Timeouts::default().starting_now(), |keys, fail_safe, work| {
            let compute = compute.take().expect("computed at most once");
            self.compute_here(key, keys, options, fail_safe, work, compute)
        })
    }

    /// `get_or_compute_with` with soft and hard timeouts of the computation.
    ///
    /// The computation runs on a thread of its own (hence `Send + 'static`),
    /// holding the key's lock, while the caller waits for it. Past
    /// `timeouts.soft` a caller with a stale copy gets it (`stale: true`);
    /// past `timeouts.hard` it gets an `ErrorKind::Timeout` error, or the
    /// stale copy under fail-safe. Callers waiting for another caller's
    /// computation, in any thread or process, do the same. The computation
    /// is never abandoned: when it ends it stores its value (as any
    /// computation does: over whatever a plain write stored meanwhile) and
    /// releases the lock, so one computation per key runs at a time however
    /// many callers gave up on it. An early refresh returns the current
    /// value at either timeout.
    pub fn get_or_compute_timed<E, F>(
        self: &Arc<Self>,
        key: &[u8],
        options: &ComputeOptions<'_>,
        timeouts: Timeouts,
        compute: F,
    ) -> std::result::Result<Computed, ComputeError<E>>
    where
        E: Send + 'static,
        F: FnOnce() -> std::result::Result<Option<Vec<u8>>, E> + Send + 'static,
    {
        let deadlines = timeouts.starting_now();
        let mut compute = Some(compute);
        self.get_or_compute_via(key, options, deadlines, |keys, fail_safe, work| {
            let compute = compute.take().expect("computed at most once");
            let current = match &work {
                Work::Locked { current, .. } => current.clone(),
                Work::Unlocked | Work::Uncached => None,
            };
            let outcome = self.compute_in_background(key, options, fail_safe, work, compute)?;
            self.await_computation(key, keys, fail_safe, current, deadlines, outcome)
        })
    }

    /// Both calls above: `run` computes, here or in the background, when the
    /// call decides to.
    fn get_or_compute_via<E>(
        &self,
        key: &[u8],
        options: &ComputeOptions<'_>,
        deadlines: Deadlines,
        mut run: impl FnMut(&Companions, FailSafe, Work) -> std::result::Result<Computed, ComputeError<E>>,
    ) -> std::result::Result<Computed, ComputeError<E>> {
        let fail_safe = options.fail_safe.unwrap_or(self.options().fail_safe);
        fail_safe.validate()?;
        if options.negative_ttl.is_some_and(|ttl| ttl.is_zero() || ttl > MAX_TTL) {
            return Err(Error::invalid("negative TTL must be between 1 ms and 100 years").into());
        }
        deadlines.timeouts.validate(fail_safe)?;
        let keys = Companions::of(&self.options().key_prefix, key);
        let mut ran = false;
        let result = self.get_or_compute_once(key, &keys, options, fail_safe, deadlines, |work| {
            ran = true;
            run(&keys, fail_safe, work)
        });
        match result {
            // Past the hard timeout the server answered: the error is the timeout's.
            Err(ComputeError::Cache(error)) if error.is_unreachable() && !deadlines.past_hard() => {
                if fail_safe.is_on() {
                    if let Some(value) = self.stale_copies.get(key) {
                        bump(&self.counters.stale_served);
                        return Ok(Computed::stale(value));
                    }
                }
                // The server failed before the computation ran: compute without caching.
                if ran || !self.is_fail_open(&error) {
                    return Err(ComputeError::Cache(error));
                }
                let computed = run(&keys, fail_safe, Work::Uncached)?;
                self.or_fail_open(Err(error), || ())?;
                Ok(computed)
            }
            other => other,
        }
    }

    fn get_or_compute_once<E>(
        &self,
        key: &[u8],
        keys: &Companions,
        options: &ComputeOptions<'_>,
        fail_safe: FailSafe,
        deadlines: Deadlines,
        run: impl FnOnce(Work) -> std::result::Result<Computed, ComputeError<E>>,
    ) -> std::result::Result<Computed, ComputeError<E>> {
        if options.lock_lease < Duration::from_millis(3) {
            return Err(Error::invalid("lock lease must be at least 3 ms").into());
        }
        if !(options.early_refresh_beta >= 0.0 && options.early_refresh_beta.is_finite()) {
            return Err(Error::invalid("early_refresh_beta must be a finite number >= 0").into());
        }
        // Checked before anything is stored (Ttl::Keep is refused here).
        self.expiry(options.ttl)?;
        let owner = std::cell::LazyCell::new(owner_token);
        if options.early_refresh_beta > 0.0 {
            if let Some(((value, meta, remaining), near_hit)) = self.get_for_refresh(key, &keys.meta)? {
                let delta = meta.and_then(|meta| String::from_utf8(meta).ok()?.parse().ok()).map(Duration::from_millis);
                let due = delta.is_some_and(|delta| due_for_refresh(delta, remaining, options.early_refresh_beta));
                // Refresh early only if no one else is; meanwhile everyone gets the current value.
                if due && self.call(|backend| backend.lock(&keys.lock, &owner, options.lock_lease))? {
                    bump(&self.counters.early_refreshes);
                    return run(Work::Locked { owner: owner.to_vec(), current: Some(value) });
                }
                if !near_hit {
                    self.counters.record_lookup(true);
                }
                return Ok(Computed::fresh(value));
            }
            self.counters.record_lookup(false);
        } else if let Some(value) = self.get(key)? {
            return Ok(Computed::fresh(value));
        }
        if options.negative_ttl.is_some() && self.call(|backend| backend.get(&keys.last))?.as_deref() == Some(LAST_NONE) {
            bump(&self.counters.negative_hits);
            return Ok(Computed::NO_VALUE);
        }
        let waited = Instant::now() + options.wait_timeout;
        let deadline = deadlines.hard.map_or(waited, |hard| hard.min(waited));
        loop {
            if self.call(|backend| backend.lock(&keys.lock, &owner, options.lock_lease))? {
                return run(Work::Locked { owner: owner.to_vec(), current: None });
            }
            bump(&self.counters.lock_waits);
            match self.wait_for_value(key, keys, options, fail_safe, deadlines.soft, deadline)? {
                Waited::Value(value) => return Ok(Computed::fresh(value)),
                Waited::NoValue => {
                    bump(&self.counters.negative_hits);
                    return Ok(Computed::NO_VALUE);
                }
                Waited::Stale(value) => {
                    bump(&self.counters.stale_served);
                    return Ok(Computed::stale(value));
                }
                Waited::LockFreed => continue,
                Waited::TimedOut if deadlines.past_hard() => {
                    return self.fall_back(key, keys, fail_safe, deadlines.hard_timeout_error().into());
                }
                Waited::TimedOut => {
                    return match options.on_wait_timeout {
                        OnWaitTimeout::Compute => run(Work::Unlocked),
                        OnWaitTimeout::Fail => {
                            let error = Error::new(
                                ErrorKind::Timeout,
                                format!(
                                    "no value after waiting {} ms for another caller's computation",
                                    options.wait_timeout.as_millis()
                                ),
                            );
                            self.fall_back(key, keys, fail_safe, error.into())
                        }
                    };
                }
            }
        }
    }

    /// Runs `compute` on this thread as `work` says, and stores its value.
    fn compute_here<E>(
        &self,
        key: &[u8],
        keys: &Companions,
        options: &ComputeOptions<'_>,
        fail_safe: FailSafe,
        work: Work,
        compute: impl FnOnce() -> std::result::Result<Option<Vec<u8>>, E>,
    ) -> std::result::Result<Computed, ComputeError<E>> {
        match work {
            Work::Locked { owner, current } => self.compute_holding_lock(key, keys, &owner, options, fail_safe, current, compute),
            Work::Unlocked => {
                bump(&self.counters.computations);
                match compute() {
                    Ok(value) => {
                        let stored = self.store(key, keys, options, fail_safe, value.as_deref(), None);
                        self.or_fail_open(stored, || ())?;
                        Ok(Computed { value, stale: false })
                    }
                    Err(error) => self.fall_back(key, keys, fail_safe, ComputeError::Compute(error)),
                }
            }
            Work::Uncached => {
                bump(&self.counters.computations);
                let value = compute().map_err(ComputeError::Compute)?;
                if let (Some(value), true) = (&value, fail_safe.is_on()) {
                    let tags = self.tag_keys(options.tags)?;
                    self.stale_copies.keep(key, value, &tags, stale_until(self.expiry(options.ttl)?, fail_safe));
                }
                Ok(Computed { value, stale: false })
            }
        }
    }

    /// Runs `compute_here` on a new thread, which owns what it needs and
    /// finishes (stores, releases the lock) whether or not anyone still waits.
    fn compute_in_background<E, F>(
        self: &Arc<Self>,
        key: &[u8],
        options: &ComputeOptions<'_>,
        fail_safe: FailSafe,
        work: Work,
        compute: F,
    ) -> Result<Receiver<Outcome<E>>>
    where
        E: Send + 'static,
        F: FnOnce() -> std::result::Result<Option<Vec<u8>>, E> + Send + 'static,
    {
        let cache = Arc::clone(self);
        let key = key.to_vec();
        let tags: Vec<Vec<u8>> = options.tags.iter().map(|tag| tag.to_vec()).collect();
        let options = ComputeOptions { tags: &[], ..*options };
        let (sender, outcome) = mpsc::channel();
        std::thread::Builder::new()
            .name("rcache-compute".into())
            .spawn(move || {
                let tags: Vec<&[u8]> = tags.iter().map(Vec::as_slice).collect();
                let options = ComputeOptions { tags: &tags, ..options };
                let keys = Companions::of(&cache.options().key_prefix, &key);
                let computed =
                    catch_unwind(AssertUnwindSafe(|| cache.compute_here(&key, &keys, &options, fail_safe, work, compute)));
                // The caller may have returned already: then no one reads this.
                let _ = sender.send(computed);
            })
            .map_err(|error| Error::new(ErrorKind::Connection, format!("no thread could run the computation: {error}")))?;
        Ok(outcome)
    }

    /// Waits for a background computation: until the soft deadline, then
    /// (unless a stale copy or the `current` value answers) the hard one.
    fn await_computation<E>(
        &self,
        key: &[u8],
        keys: &Companions,
        fail_safe: FailSafe,
        current: Option<Vec<u8>>,
        deadlines: Deadlines,
        outcome: Receiver<Outcome<E>>,
    ) -> std::result::Result<Computed, ComputeError<E>> {
        let received = |outcome: Outcome<E>| outcome.unwrap_or_else(|panic| resume_unwind(panic));
        let lost = || Error::new(ErrorKind::Connection, "the computation's thread ended without an answer");
        let wait_until = |deadline: Instant| outcome.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        if let Some(soft) = deadlines.soft {
            match wait_until(soft) {
                Ok(computed) => return received(computed),
                Err(RecvTimeoutError::Disconnected) => return Err(lost().into()),
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(value) = current.clone() {
                        return Ok(Computed::fresh(value));
                    }
                    if let Some(value) = fail_safe.is_on().then(|| self.stale_copy(key, keys)).flatten() {
                        bump(&self.counters.stale_served);
                        return Ok(Computed::stale(value));
                    }
                }
            }
        }
        let Some(hard) = deadlines.hard else {
            return outcome.recv().map_or_else(|_| Err(lost().into()), received);
        };
        match wait_until(hard) {
            Ok(computed) => received(computed),
            Err(RecvTimeoutError::Disconnected) => Err(lost().into()),
            Err(RecvTimeoutError::Timeout) => match current {
                Some(value) => Ok(Computed::fresh(value)),
                None => self.fall_back(key, keys, fail_safe, deadlines.hard_timeout_error().into()),
            },
        }
    }

    /// Under fail-safe, the stale copy of `key` instead of `error` when one exists.
    fn fall_back<E>(
        &self,
        key: &[u8],
        keys: &Companions,
        fail_safe: FailSafe,
        error: ComputeError<E>,
    ) -> std::result::Result<Computed, ComputeError<E>> {
        match fail_safe.is_on().then(|| self.stale_copy(key, keys)).flatten() {
            Some(value) => {
                bump(&self.counters.stale_served);
                Ok(Computed::stale(value))
            }
            None => Err(error),
        }
    }

    /// The stale copy of `key`: the server's, or this process's while the
    /// server cannot be reached.
    fn stale_copy(&self, key: &[u8], keys: &Companions) -> Option<Vec<u8>> {
        match self.call(|backend| backend.get(&keys.last)) {
            Ok(Some(last)) if last.first() == Some(&LAST_VALUE) => Some(last[1..].to_vec()),
            Ok(_) => {
                // Expired, invalidated, replaced by "no value", or deleted by another process.
                self.stale_copies.forget(key);
                None
            }
            Err(error) if error.is_unreachable() => self.stale_copies.get(key),
            Err(_) => None,
        }
    }

    /// Stores what a computation produced: the value with its stale copy (the
    /// copy first, so that if the value's write fails the copy is still the
    /// newest), and how long it took; or the record that there is no value.
    fn store(
        &self,
        key: &[u8],
        keys: &Companions,
        options: &ComputeOptions<'_>,
        fail_safe: FailSafe,
        value: Option<&[u8]>,
        took: Option<Duration>,
    ) -> Result<()> {
        let tags = self.tag_keys(options.tags)?;
        let Some(value) = value else {
            self.stale_copies.forget(key);
            let Some(negative_ttl) = options.negative_ttl else { return Ok(()) };
            return self.store_last(keys, LAST_NONE, Expiry::After(negative_ttl), &tags);
        };
        let expiry = self.expiry(options.ttl)?;
        if fail_safe.is_on() {
            self.stale_copies.keep(key, value, &tags, stale_until(expiry, fail_safe));
            let copy_expiry = match expiry {
                Expiry::After(ttl) => Expiry::After((ttl + fail_safe.max_stale).min(MAX_TTL)),
                Expiry::Never => Expiry::Never,
            };
            self.store_last(keys, &[&[LAST_VALUE][..], value].concat(), copy_expiry, &tags)?;
        }
        self.set_with_tags(key, value, options.ttl, options.tags)?;
        let Some(took) = took else { return Ok(()) };
        // How long it took, for early refresh: a hint that lives as long as the value.
        let result = self
            .call(|backend| backend.set(&keys.meta, took.as_millis().max(1).to_string().as_bytes(), WriteExpiry::Set(expiry)));
        self.forget(&[&keys.meta]);
        result
    }

    fn store_last(&self, keys: &Companions, last: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()> {
        let result = self.call(|backend| match tags.is_empty() {
            true => backend.set(&keys.last, last, WriteExpiry::Set(expiry)),
            false => backend.set_tagged(&keys.last, last, expiry, tags),
        });
        self.forget(&[&keys.last]);
        result
    }

    /// Looks at the value, the lock and the last result together (one round
    /// trip per look), after a pause that a report of a change to any of
    /// them ends early when a near cache receives reports: then the waiter
    /// returns once the value's write is reported, and polling remains only
    /// the fallback.
    fn wait_for_value(
        &self,
        key: &[u8],
        keys: &Companions,
        options: &ComputeOptions<'_>,
        fail_safe: FailSafe,
        soft: Option<Instant>,
        deadline: Instant,
    ) -> Result<Waited> {
        let full_key = self.full_key(key)?;
        let keys = [full_key, keys.lock.clone(), keys.last.clone()];
        let mut watch = self.watch(&keys);
        let mut pause = FIRST_PAUSE;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Waited::TimedOut);
            }
            match &mut watch {
                Some(watch) => {
                    watch.wait(pause.min(deadline - now));
                }
                None => std::thread::sleep(pause.min(deadline - now)),
            }
            pause = (pause * 3 / 2).min(LONGEST_PAUSE);
            let mut found = self.look(&keys)?.into_iter();
            let (value, lock, last) = (found.next().flatten(), found.next().flatten(), found.next().flatten());
            if let Some(value) = value {
                self.counters.record_lookup(true);
                return Ok(Waited::Value(value));
            }
            match (&lock, last) {
                (_, Some(last)) if last == LAST_NONE && options.negative_ttl.is_some() => return Ok(Waited::NoValue),
                (None, _) => return Ok(Waited::LockFreed),
                (Some(lock), Some(last)) if fail_safe.is_on() && last.first() == Some(&LAST_VALUE) => {
                    let past_soft = soft.is_some_and(|soft| Instant::now() >= soft);
                    if lock == THROTTLED || past_soft {
                        return Ok(Waited::Stale(last[1..].to_vec()));
                    }
                }
                _ => {}
            }
        }
    }

    /// Computes and stores the value while holding the lock. Without
    /// `current` this first looks again: the previous holder may have stored
    /// the value between our miss and our lock. With it (an early refresh
    /// of that still-valid value), a failure under fail-safe returns it.
    #[allow(clippy::too_many_arguments)]
    fn compute_holding_lock<E>(
        &self,
        key: &[u8],
        keys: &Companions,
        owner: &[u8],
        options: &ComputeOptions<'_>,
        fail_safe: FailSafe,
        current: Option<Vec<u8>>,
        compute: impl FnOnce() -> std::result::Result<Option<Vec<u8>>, E>,
    ) -> std::result::Result<Computed, ComputeError<E>> {
        let release = || self.call(|backend| backend.unlock(&keys.lock, owner));
        if current.is_none() {
            match self.get(key) {
                Ok(Some(value)) => {
                    release()?;
                    return Ok(Computed::fresh(value));
                }
                Ok(None) => {}
                Err(error) => {
                    let _ = release();
                    return Err(error.into());
                }
            }
        }
        bump(&self.counters.computations);
        let started = Instant::now();
        let outcome = std::thread::scope(|scope| {
            let (stop, stopped) = mpsc::channel::<()>();
            scope.spawn(move || {
                // Renew the lease until the computation ends (the sender drops).
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(options.lock_lease / 3) {
                    if !matches!(self.call(|backend| backend.extend_lock(&keys.lock, owner, options.lock_lease)), Ok(true)) {
                        break;
                    }
                }
            });
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compute));
            drop(stop);
            outcome
        });
        let took = started.elapsed();
        let value = match outcome {
            Err(panic) => {
                let _ = release();
                std::panic::resume_unwind(panic)
            }
            Ok(Err(error)) => {
                let fallen_back = match current {
                    Some(value) if fail_safe.is_on() => Ok(Computed::fresh(value)),
                    _ => self.fall_back(key, keys, fail_safe, ComputeError::Compute(error)),
                };
                // Throttled: hold the key for `throttle` so no caller computes again meanwhile.
                let throttled = fallen_back.is_ok() && !fail_safe.throttle.is_zero() && {
                    let expiry = WriteExpiry::Set(Expiry::After(fail_safe.throttle));
                    matches!(self.call(|backend| backend.compare_and_set(&keys.lock, owner, THROTTLED, expiry)), Ok(true))
                };
                if throttled {
                    bump(&self.counters.throttles);
                } else {
                    let _ = release();
                }
                return fallen_back;
            }
            Ok(Ok(value)) => value,
        };
        let stored = self.store(key, keys, options, fail_safe, value.as_deref(), Some(took));
        let released = release();
        // Under fail-open or fail-safe a value the server could not take is still returned.
        match stored {
            Err(error) if fail_safe.is_on() && error.is_unreachable() => {}
            stored => self.or_fail_open(stored, || ())?,
        }
        // The value is stored; a lock we could not release expires with its lease.
        if let Err(error) = released {
            if !(fail_safe.is_on() && error.is_unreachable()) {
                self.or_fail_open(Err(error), || false)?;
            }
        }
        Ok(Computed { value, stale: false })
    }
}

/// Until when the in-process copy of a value stored with `expiry` may be served.
fn stale_until(expiry: Expiry, fail_safe: FailSafe) -> Instant {
    let now = Instant::now();
    let window = match expiry {
        Expiry::After(ttl) => ttl + fail_safe.max_stale,
        Expiry::Never => MAX_TTL,
    };
    now.checked_add(window).unwrap_or(now + fail_safe.max_stale)
}

enum Waited {
    Value(Vec<u8>),
    /// Another caller found no value, and negative caching is asked for.
    NoValue,
    /// The key's stale copy: its computation is throttled after a failure,
    /// or still running past the soft timeout.
    Stale(Vec<u8>),
    LockFreed,
    TimedOut,
}
