//! Per-handle counters and a latency histogram, updated without locks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// Latency buckets: bucket `i` holds calls of at most `2^(i/4)` µs, so
/// percentiles are exact to within 19%; the last bucket takes everything slower.
const BUCKETS: usize = 100;

fn bucket_of(latency: Duration) -> usize {
    let micros = latency.as_secs_f64() * 1e6;
    if micros <= 1.0 {
        return 0;
    }
    ((micros.log2() * 4.0).ceil() as usize).min(BUCKETS - 1)
}

fn bucket_bound(bucket: usize) -> Duration {
    Duration::from_secs_f64(2f64.powf(bucket as f64 / 4.0) / 1e6)
}

/// A snapshot of a client's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads that found a value (get, get_with_ttl, hash_get, get_many per
    /// key, get_or_compute), near-cache hits included.
    pub hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Computations run by get_or_compute (early refreshes included).
    pub computations: u64,
    /// get_or_compute calls that waited for another caller's computation.
    pub lock_waits: u64,
    /// Computations started early by XFetch while the value was still valid.
    pub early_refreshes: u64,
    /// Calls answered without the server under `Options::fail_open`.
    pub fail_opens: u64,
    /// Get-or-compute calls answered by fail-safe with a stale value.
    pub stale_served: u64,
    /// Failed computations after which a key's computation was throttled.
    pub throttles: u64,
    /// Get-or-compute calls answered "no value" by negative caching.
    pub negative_hits: u64,
    /// Deletes, tag invalidations and clears waiting to be replayed now
    /// (an overflow counts as one).
    pub recovery_queue: u64,
    /// Removals replayed once the server answered again.
    pub recovery_replays: u64,
    /// Times the queue overflowed and gave way to a clear of the namespace.
    pub recovery_overflows: u64,
    /// Times the circuit breaker opened.
    pub breaker_trips: u64,
    /// Calls the open breaker failed at once, without trying the server.
    pub breaker_skips: u64,
    /// Calls that failed, by kind.
    pub connection_errors: u64,
    pub timeout_errors: u64,
    pub server_errors: u64,
    pub other_errors: u64,
    /// Latency of calls to the backend (each within 19%), zero before the
    /// first call; near-cache hits make no call.
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
    /// Near cache (all zero without one): reads it answered (also in `hits`).
    pub near_hits: u64,
    /// Reads it could not answer, sent to the server.
    pub near_misses: u64,
    /// Changed keys the server reported (a flushed database counts once).
    pub near_invalidations: u64,
    /// Entries evicted to stay within its bounds.
    pub near_evictions: u64,
    /// Times it was emptied at once: its tracking connection broke or was
    /// replaced, the database was flushed, or `clear` ran.
    pub near_flushes: u64,
    /// Entries held now.
    pub near_entries: u64,
    /// Bytes held now (keys, values, bookkeeping), at most `near_cache_bytes`.
    pub near_bytes: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub computations: AtomicU64,
    pub lock_waits: AtomicU64,
    pub early_refreshes: AtomicU64,
    pub fail_opens: AtomicU64,
    pub stale_served: AtomicU64,
    pub throttles: AtomicU64,
    pub negative_hits: AtomicU64,
    connection_errors: AtomicU64,
    timeout_errors: AtomicU64,
    server_errors: AtomicU64,
    other_errors: AtomicU64,
    latencies: Latencies,
}

struct Latencies([AtomicU64; BUCKETS]);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn record_call(&self, latency: Duration) {
        bump(&self.latencies.0[bucket_of(latency)]);
    }

    pub fn record_error(&self, error: &Error) {
        bump(match error.kind {
            ErrorKind::Connection | ErrorKind::UnknownOutcome => &self.connection_errors,
            ErrorKind::Timeout => &self.timeout_errors,
            ErrorKind::Server => &self.server_errors,
            _ => &self.other_errors,
        });
    }

    pub fn record_lookup(&self, found: bool) {
        bump(if found { &self.hits } else { &self.misses });
    }

    pub fn snapshot(&self, breaker_trips: u64, breaker_skips: u64) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counts: Vec<u64> = self.latencies.0.iter().map(load).collect();
        let total: u64 = counts.iter().sum();
        let percentile = |fraction: f64| {
            if total == 0 {
                return Duration::ZERO;
            }
            let rank = ((total as f64 * fraction).ceil() as u64).max(1);
            let mut seen = 0;
            for (bucket, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return bucket_bound(bucket);
                }
            }
            bucket_bound(BUCKETS - 1)
        };
        Stats {
            hits: load(&self.hits),
            misses: load(&self.misses),
            computations: load(&self.computations),
            lock_waits: load(&self.lock_waits),
            early_refreshes: load(&self.early_refreshes),
            fail_opens: load(&self.fail_opens),
            stale_served: load(&self.stale_served),
            throttles: load(&self.throttles),
            negative_hits: load(&self.negative_hits),
            breaker_trips,
            breaker_skips,
            connection_errors: load(&self.connection_errors),
            timeout_errors: load(&self.timeout_errors),
            server_errors: load(&self.server_errors),
            other_errors: load(&self.other_errors),
            latency_p50: percentile(0.5),
            latency_p99: percentile(0.99),
            latency_max: percentile(1.0),
            ..Stats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram_within_its_resolution() {
        let counters = Counters::default();
        for micros in 1..=100u64 {
            counters.record_call(Duration::from_micros(micros));
        }
        let stats = counters.snapshot(0, 0);
        let within = |value: Duration, expected: f64| {
            let micros = value.as_secs_f64() * 1e6;
            micros >= expected && micros <= expected * 1.19 + 1e-9
        };
        assert!(within(stats.latency_p50, 50.0), "{:?}", stats.latency_p50);
        assert!(within(stats.latency_p99, 99.0), "{:?}", stats.latency_p99);
        assert!(within(stats.latency_max, 100.0), "{:?}", stats.latency_max);
        assert_eq!(Counters::default().snapshot(0, 0).latency_p50, Duration::ZERO);
    }
}
