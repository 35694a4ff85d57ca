//! Benchmark of fail-safe (not a test: it prints figures). Starts its own
//! redis-server.
//!
//!   cargo run --release --example bench_failsafe
//!
//! Two handles on one server, fail-safe off and on (both fail open), serve
//! the same load at the same time: 8 threads each making one call every
//! 2 ms (fewer when calls take longer), reading 50 keys through
//! get-or-compute with a 200 ms TTL, from a source that fails half the time
//! and takes 2 ms. The pace keeps the offered load the same for both handles:
//! a handle that answers from memory does not take the CPU from the other.
//! Halfway through, the server is killed and restarted empty after 500 ms.
//! Reported per handle: calls made, served, errors returned to callers (all,
//! and from the kill until 1 s after the restart), stale values among the
//! served, source calls and how many failed, worst caller latency.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rcache::{Cache, ComputeOptions, FailSafe, Options, Ttl};
use support::RedisServer;

const THREADS: usize = 8;
const KEYS: u32 = 50;
const RUN: Duration = Duration::from_secs(4);
const OUTAGE: Duration = Duration::from_millis(500);
/// Each thread's interval between the starts of two calls.
const PACE: Duration = Duration::from_millis(2);
/// How long after the restart a call still counts as "around the outage".
const AFTERMATH: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    served: AtomicU64,
    stale: AtomicU64,
    errors: AtomicU64,
    /// Calls started from the kill until `AFTERMATH` after the restart.
    calls_around_outage: AtomicU64,
    errors_around_outage: AtomicU64,
    source_calls: AtomicU64,
    source_failures: AtomicU64,
    worst_micros: AtomicU64,
    /// Every call's latency, gathered when its thread ends.
    latencies_micros: Mutex<Vec<u64>>,
}

impl Tally {
    /// The latency `share` of the calls stayed within, in ms.
    fn percentile_ms(&self, share: f64) -> f64 {
        let mut latencies = self.latencies_micros.lock().unwrap();
        latencies.sort_unstable();
        let rank = ((latencies.len() as f64 * share).ceil() as usize).clamp(1, latencies.len().max(1));
        latencies.get(rank - 1).map_or(0.0, |&micros| micros as f64 / 1000.0)
    }
}

/// A source that fails about half the time, from a cheap xorshift per thread.
fn source(state: &mut u64, tally: &Tally) -> Result<Option<Vec<u8>>, &'static str> {
    tally.source_calls.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(2));
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    if *state % 2 == 0 {
        tally.source_failures.fetch_add(1, Ordering::Relaxed);
        Err("the source failed")
    } else {
        Ok(Some(b"value".to_vec()))
    }
}

fn main() {
    let mut server = RedisServer::start();
    let handle = |prefix: &str, fail_safe: FailSafe| {
        let options = Options {
            key_prefix: prefix.as_bytes().to_vec(),
            fail_open: true,
            fail_safe,
            connect_timeout: Duration::from_millis(200),
            response_timeout: Duration::from_millis(200),
            ..Options::default()
        };
        Cache::connect(Some(&server.url()), options).unwrap()
    };
    let on = FailSafe { max_stale: Duration::from_secs(60), throttle: Duration::from_millis(500) };
    let modes = [
        ("fail-safe off", handle("off:", FailSafe::OFF), Tally::default()),
        ("fail-safe on", handle("on:", on), Tally::default()),
    ];
    let compute_options = ComputeOptions {
        ttl: Ttl::After(Duration::from_millis(200)),
        wait_timeout: Duration::from_millis(200),
        ..ComputeOptions::default()
    };
    let stop = AtomicBool::new(false);
    let around_outage = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for (_, cache, tally) in &modes {
            for thread in 0..THREADS {
                let (stop, around_outage, compute_options) = (&stop, &around_outage, &compute_options);
                scope.spawn(move || {
                    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (thread as u64 + 1);
                    let mut index = thread as u32;
                    let mut next = Instant::now();
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                        index = (index + 7) % KEYS;
                        let key = format!("k{index}");
                        let in_outage = around_outage.load(Ordering::Relaxed);
                        let started = Instant::now();
                        let result = cache.get_or_compute_with(key.as_bytes(), compute_options, || source(&mut state, tally));
                        let micros = started.elapsed().as_micros() as u64;
                        tally.worst_micros.fetch_max(micros, Ordering::Relaxed);
                        latencies.push(micros);
                        // A late call is not made up for with a burst.
                        next = (started + PACE).max(Instant::now());
                        tally.calls.fetch_add(1, Ordering::Relaxed);
                        if in_outage {
                            tally.calls_around_outage.fetch_add(1, Ordering::Relaxed);
                        }
                        match result {
                            Ok(computed) => {
                                tally.served.fetch_add(1, Ordering::Relaxed);
                                if computed.stale {
                                    tally.stale.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(_) => {
                                tally.errors.fetch_add(1, Ordering::Relaxed);
                                if in_outage {
                                    tally.errors_around_outage.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    tally.latencies_micros.lock().unwrap().extend(latencies);
                });
            }
        }
        std::thread::sleep(RUN / 2);
        around_outage.store(true, Ordering::Relaxed);
        server.kill();
        std::thread::sleep(OUTAGE);
        server.restart();
        std::thread::sleep(AFTERMATH);
        around_outage.store(false, Ordering::Relaxed);
        std::thread::sleep((RUN / 2).saturating_sub(AFTERMATH));
        stop.store(true, Ordering::Relaxed);
    });

    println!(
        "## Fail-safe under a source failing 50% of the time and a Redis restart ({} s run, {} ms outage, {THREADS} threads per handle \
         each calling every {} ms, {KEYS} keys, 200 ms TTL)\n",
        RUN.as_secs(),
        OUTAGE.as_millis(),
        PACE.as_millis()
    );
    println!(
        "| handle | calls | served | of which stale | errors returned | calls / errors from the kill to 1 s after the restart | \
         source calls (failed) | p99 latency (ms) | worst latency (ms) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    for (name, _, tally) in &modes {
        println!(
            "| {name} | {} | {} | {} | {} | {} / {} | {} ({}) | {:.1} | {:.1} |",
            load(&tally.calls),
            load(&tally.served),
            load(&tally.stale),
            load(&tally.errors),
            load(&tally.calls_around_outage),
            load(&tally.errors_around_outage),
            load(&tally.source_calls),
            load(&tally.source_failures),
            tally.percentile_ms(0.99),
            load(&tally.worst_micros) as f64 / 1000.0
        );
    }
    let (off, on) = (&modes[0].2, &modes[1].2);
    let per_call = |counter: &AtomicU64, tally: &Tally| load(counter) as f64 / load(&tally.calls).max(1) as f64;
    let failing = |tally: &Tally| 100.0 * load(&tally.source_failures) as f64 / load(&tally.source_calls).max(1) as f64;
    println!(
        "\nErrors per call: {:.2}% off, {:.2}% on; source calls per call: {:.3} off, {:.3} on; the source failed {:.0}% (off) and {:.0}% \
         (on) of its calls.",
        100.0 * per_call(&off.errors, off),
        100.0 * per_call(&on.errors, on),
        per_call(&off.source_calls, off),
        per_call(&on.source_calls, on),
        failing(off),
        failing(on),
    );
}
