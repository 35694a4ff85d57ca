//! The circuit breaker every Redis topology puts in front of its server.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// A circuit breaker: after `threshold` consecutive connection failures or
/// timeouts, calls fail at once for `cooldown`; then calls go through again,
/// and one more failure opens it anew.
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    /// Milliseconds after `epoch` until which calls are turned away.
    open_until: AtomicU64,
    epoch: Instant,
    pub(crate) trips: AtomicU64,
    pub(crate) skipped: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold,
            cooldown,
            failures: Default::default(),
            open_until: Default::default(),
            epoch: Instant::now(),
            trips: Default::default(),
            skipped: Default::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn admit(&self, target: &str) -> Result<()> {
        let open_until = self.open_until.load(Ordering::Relaxed);
        // 0 until the breaker first opens: no clock read on the usual path.
        if open_until != 0 && open_until > self.now_ms() {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "{target}: not tried: {} consecutive failures opened the circuit breaker for {} ms",
                    self.failures.load(Ordering::Relaxed),
                    self.cooldown.as_millis()
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn record<T>(&self, result: &Result<T>) {
        match result {
            Err(error) if matches!(error.kind, ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::UnknownOutcome) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= self.threshold {
                    self.open_until.store(self.now_ms() + self.cooldown.as_millis() as u64, Ordering::Relaxed);
                    self.trips.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => self.failures.store(0, Ordering::Relaxed),
        }
    }
}
