//! Stampede-safe get-or-compute: on a miss, one caller across all threads and
//! processes computes while the others wait for its value.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::backend::slots::companion_key;
use crate::backend::{Remaining, WriteExpiry};
use crate::cache::{Cache, LOCK_SPACE, META_SPACE, Ttl};
use crate::error::{Error, ErrorKind, Result};
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

/// Pause between two looks of a waiter: short at first, then at most this.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const LONGEST_PAUSE: Duration = Duration::from_millis(20);

/// A uniform random number in (0, 1].
fn unit_random() -> f64 {
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
    /// is computed and returned without being cached.
    pub fn get_or_compute<E>(
        &self,
        key: &[u8],
        options: &ComputeOptions<'_>,
        compute: impl FnOnce() -> std::result::Result<Vec<u8>, E>,
    ) -> std::result::Result<Vec<u8>, ComputeError<E>> {
        let mut compute = Some(compute);
        let result = self.get_or_compute_once(key, options, || (compute.take().expect("computed at most once"))());
        match result {
            // The server failed before the computation ran: compute without caching.
            Err(ComputeError::Cache(error)) if self.is_fail_open(&error) => match compute.take() {
                Some(compute) => {
                    bump(&self.counters.computations);
                    let value = compute().map_err(ComputeError::Compute)?;
                    self.or_fail_open(Err(error), || ())?;
                    Ok(value)
                }
                None => Err(ComputeError::Cache(error)),
            },
            other => other,
        }
    }

    fn get_or_compute_once<E>(
        &self,
        key: &[u8],
        options: &ComputeOptions<'_>,
        compute: impl FnOnce() -> std::result::Result<Vec<u8>, E>,
    ) -> std::result::Result<Vec<u8>, ComputeError<E>> {
        if options.lock_lease < Duration::from_millis(3) {
            return Err(Error::invalid("lock lease must be at least 3 ms").into());
        }
        if !(options.early_refresh_beta >= 0.0 && options.early_refresh_beta.is_finite()) {
            return Err(Error::invalid("early_refresh_beta must be a finite number >= 0").into());
        }
        // Checked before anything is stored (Ttl::Keep is refused here).
        self.expiry(options.ttl)?;
        let prefix = self.options().key_prefix.as_slice();
        // In the entry's hash slot, so that on a Cluster one script reads the
        // entry with its hint, and the lock sits beside them.
        let lock_key = companion_key(prefix, LOCK_SPACE, key);
        let meta_key = companion_key(prefix, META_SPACE, key);
        let owner = std::cell::LazyCell::new(owner_token);
        if options.early_refresh_beta > 0.0 {
            if let Some(((value, meta, remaining), near_hit)) = self.get_for_refresh(key, &meta_key)? {
                let delta = meta.and_then(|meta| String::from_utf8(meta).ok()?.parse().ok()).map(Duration::from_millis);
                let due = delta.is_some_and(|delta| due_for_refresh(delta, remaining, options.early_refresh_beta));
                // Refresh early only if no one else is; meanwhile everyone gets the current value.
                if due && self.call(|backend| backend.lock(&lock_key, &owner, options.lock_lease))? {
                    bump(&self.counters.early_refreshes);
                    return self.compute_holding_lock(key, &lock_key, &meta_key, &owner, options, false, compute);
                }
                if !near_hit {
                    self.counters.record_lookup(true);
                }
                return Ok(value);
            }
            self.counters.record_lookup(false);
        } else if let Some(value) = self.get(key)? {
            return Ok(value);
        }
        let deadline = Instant::now() + options.wait_timeout;
        loop {
            if self.call(|backend| backend.lock(&lock_key, &owner, options.lock_lease))? {
                return self.compute_holding_lock(key, &lock_key, &meta_key, &owner, options, true, compute);
            }
            bump(&self.counters.lock_waits);
            match self.wait_for_value(key, &lock_key, deadline)? {
                Waited::Value(value) => return Ok(value),
                Waited::LockFreed => continue,
                Waited::TimedOut => {
                    return match options.on_wait_timeout {
                        OnWaitTimeout::Compute => {
                            bump(&self.counters.computations);
                            let value = compute().map_err(ComputeError::Compute)?;
                            self.set_with_tags(key, &value, options.ttl, options.tags)?;
                            Ok(value)
                        }
                        OnWaitTimeout::Fail => Err(Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "no value after waiting {} ms for another caller's computation",
                                options.wait_timeout.as_millis()
                            ),
                        )
                        .into()),
                    };
                }
            }
        }
    }

    /// Polls the value and the lock together (one round trip per look).
    fn wait_for_value(&self, key: &[u8], lock_key: &[u8], deadline: Instant) -> Result<Waited> {
        let full_key = self.full_key(key)?;
        let keys = [full_key, lock_key.to_vec()];
        let mut pause = FIRST_PAUSE;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Waited::TimedOut);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 3 / 2).min(LONGEST_PAUSE);
            let mut found = self.call(|backend| backend.get_many(&keys))?.into_iter();
            if let Some(value) = found.next().flatten() {
                self.counters.record_lookup(true);
                return Ok(Waited::Value(value));
            }
            if found.next().flatten().is_none() {
                return Ok(Waited::LockFreed);
            }
        }
    }

    /// Computes and stores the value while holding the lock. `recheck` first
    /// looks again: the previous holder may have stored the value between
    /// our miss and our lock (an early refresh skips it: the value is there).
    #[allow(clippy::too_many_arguments)]
    fn compute_holding_lock<E>(
        &self,
        key: &[u8],
        lock_key: &[u8],
        meta_key: &[u8],
        owner: &[u8],
        options: &ComputeOptions<'_>,
        recheck: bool,
        compute: impl FnOnce() -> std::result::Result<Vec<u8>, E>,
    ) -> std::result::Result<Vec<u8>, ComputeError<E>> {
        let release = || self.call(|backend| backend.unlock(lock_key, owner));
        match if recheck { self.get(key) } else { Ok(None) } {
            Ok(Some(value)) => {
                release()?;
                return Ok(value);
            }
            Ok(None) => {}
            Err(error) => {
                let _ = release();
                return Err(error.into());
            }
        }
        bump(&self.counters.computations);
        let started = Instant::now();
        let outcome = std::thread::scope(|scope| {
            let (stop, stopped) = mpsc::channel::<()>();
            scope.spawn(move || {
                // Renew the lease until the computation ends (the sender drops).
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(options.lock_lease / 3) {
                    if !matches!(self.call(|backend| backend.extend_lock(lock_key, owner, options.lock_lease)), Ok(true)) {
                        break;
                    }
                }
            });
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compute));
            drop(stop);
            outcome
        });
        let took = started.elapsed();
        let stored = match &outcome {
            Ok(Ok(value)) => self.set_with_tags(key, value, options.ttl, options.tags).and_then(|()| {
                // How long it took, for early refresh: a hint that lives as long as the value.
                let expiry = WriteExpiry::Set(self.expiry(options.ttl)?);
                let result = self.call(|backend| backend.set(meta_key, took.as_millis().max(1).to_string().as_bytes(), expiry));
                self.forget(&[meta_key]);
                result
            }),
            _ => Ok(()),
        };
        let released = release();
        match outcome {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(Err(error)) => Err(ComputeError::Compute(error)),
            Ok(Ok(value)) => {
                // Under fail-open a value the server could not take is still returned.
                self.or_fail_open(stored, || ())?;
                // The value is stored; a lock we could not release expires with its lease.
                if let Err(error) = released {
                    self.or_fail_open(Err(error), || false)?;
                }
                Ok(value)
            }
        }
    }
}

enum Waited {
    Value(Vec<u8>),
    LockFreed,
    TimedOut,
}
