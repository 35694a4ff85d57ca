//! Stampede-safe get-or-compute: on a miss, one caller across all threads and
//! processes computes while the others wait for its value.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::cache::{Cache, LOCK_SPACE, Ttl};
use crate::error::{Error, ErrorKind, Result};

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
}

impl Default for ComputeOptions<'_> {
    fn default() -> Self {
        ComputeOptions {
            ttl: Ttl::Default,
            tags: &[],
            lock_lease: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(10),
            on_wait_timeout: OnWaitTimeout::Compute,
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
    pub fn get_or_compute<E>(
        &self,
        key: &[u8],
        options: &ComputeOptions<'_>,
        compute: impl FnOnce() -> std::result::Result<Vec<u8>, E>,
    ) -> std::result::Result<Vec<u8>, ComputeError<E>> {
        if options.lock_lease < Duration::from_millis(3) {
            return Err(Error::invalid("lock lease must be at least 3 ms").into());
        }
        if let Some(value) = self.get(key)? {
            return Ok(value);
        }
        let lock_key = [self.options().key_prefix.as_slice(), LOCK_SPACE, key].concat();
        let owner = owner_token();
        let deadline = Instant::now() + options.wait_timeout;
        loop {
            if self.backend.lock(&lock_key, &owner, options.lock_lease)? {
                return self.compute_holding_lock(key, &lock_key, &owner, options, compute);
            }
            match self.wait_for_value(key, &lock_key, deadline)? {
                Waited::Value(value) => return Ok(value),
                Waited::LockFreed => continue,
                Waited::TimedOut => {
                    return match options.on_wait_timeout {
                        OnWaitTimeout::Compute => {
                            let value = compute().map_err(ComputeError::Compute)?;
                            self.set_with_tags(key, &value, options.ttl, options.tags)?;
                            Ok(value)
                        }
                        OnWaitTimeout::Fail => Err(Error::new(
                            ErrorKind::Timeout,
                            format!("no value after waiting {} ms for another caller's computation", options.wait_timeout.as_millis()),
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
            let mut found = self.backend.get_many(&keys)?.into_iter();
            if let Some(value) = found.next().flatten() {
                return Ok(Waited::Value(value));
            }
            if found.next().flatten().is_none() {
                return Ok(Waited::LockFreed);
            }
        }
    }

    fn compute_holding_lock<E>(
        &self,
        key: &[u8],
        lock_key: &[u8],
        owner: &[u8],
        options: &ComputeOptions<'_>,
        compute: impl FnOnce() -> std::result::Result<Vec<u8>, E>,
    ) -> std::result::Result<Vec<u8>, ComputeError<E>> {
        let release = || self.backend.unlock(lock_key, owner);
        // The previous holder may have stored the value between our miss and our lock.
        match self.get(key) {
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
        let outcome = std::thread::scope(|scope| {
            let (stop, stopped) = mpsc::channel::<()>();
            scope.spawn(move || {
                // Renew the lease until the computation ends (the sender drops).
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(options.lock_lease / 3) {
                    if !matches!(self.backend.extend_lock(lock_key, owner, options.lock_lease), Ok(true)) {
                        break;
                    }
                }
            });
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compute));
            drop(stop);
            outcome
        });
        let stored = match &outcome {
            Ok(Ok(value)) => self.set_with_tags(key, value, options.ttl, options.tags),
            _ => Ok(()),
        };
        let released = release();
        match outcome {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(Err(error)) => Err(ComputeError::Compute(error)),
            Ok(Ok(value)) => {
                stored?;
                released?;
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
