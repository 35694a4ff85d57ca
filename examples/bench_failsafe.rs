//! Benchmark of fail-safe (not a test: it prints figures). Starts its own
//! redis-server.
//!
//!   cargo run --release --example bench_failsafe
//!
//! Two handles on one server, fail-safe off and on (both fail open), serve
//! the same load at the same time: 8 threads each reading 50 keys through
//! get-or-compute with a 200 ms TTL, from a source that fails half the time
//! and takes 2 ms. Halfway through, the server is killed and restarted empty
//! after 500 ms. Reported per handle: requests served, errors returned to
//! callers, stale values among the served, source calls, worst latency.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rcache::{Cache, ComputeOptions, FailSafe, Options, Ttl};
use support::RedisServer;

const THREADS: usize = 8;
const KEYS: u32 = 50;
const RUN: Duration = Duration::from_secs(4);
const OUTAGE: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Tally {
    served: AtomicU64,
    /// Served while the server was down.
    served_in_outage: AtomicU64,
    stale: AtomicU64,
    errors: AtomicU64,
    source_calls: AtomicU64,
    worst_micros: AtomicU64,
}

/// A source that fails about half the time, from a cheap xorshift per thread.
fn source(state: &mut u64, tally: &Tally) -> Result<Option<Vec<u8>>, &'static str> {
    tally.source_calls.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(2));
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    if *state % 2 == 0 { Err("the source failed") } else { Ok(Some(b"value".to_vec())) }
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
    let down = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for (_, cache, tally) in &modes {
            for thread in 0..THREADS {
                let (stop, down, compute_options) = (&stop, &down, &compute_options);
                scope.spawn(move || {
                    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (thread as u64 + 1);
                    let mut index = thread as u32;
                    while !stop.load(Ordering::Relaxed) {
                        index = (index + 7) % KEYS;
                        let key = format!("k{index}");
                        let started = Instant::now();
                        let result = cache.get_or_compute_with(key.as_bytes(), compute_options, || source(&mut state, tally));
                        tally.worst_micros.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        match result {
                            Ok(computed) => {
                                tally.served.fetch_add(1, Ordering::Relaxed);
                                if down.load(Ordering::Relaxed) {
                                    tally.served_in_outage.fetch_add(1, Ordering::Relaxed);
                                }
                                if computed.stale {
                                    tally.stale.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(_) => {
                                tally.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        }
        std::thread::sleep(RUN / 2);
        down.store(true, Ordering::Relaxed);
        server.kill();
        std::thread::sleep(OUTAGE);
        server.restart();
        down.store(false, Ordering::Relaxed);
        std::thread::sleep(RUN / 2);
        stop.store(true, Ordering::Relaxed);
    });

    println!(
        "## Fail-safe under a source failing 50% of the time and a Redis restart ({} s run, {} ms outage, {THREADS} threads per handle, {KEYS} keys, 200 ms TTL)\n",
        RUN.as_secs(),
        OUTAGE.as_millis()
    );
    println!(
        "| handle | requests served | served during the outage | of which stale | errors returned | source calls | worst latency (ms) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    for (name, _, tally) in &modes {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.1} |",
            load(&tally.served),
            load(&tally.served_in_outage),
            load(&tally.stale),
            load(&tally.errors),
            load(&tally.source_calls),
            load(&tally.worst_micros) as f64 / 1000.0
        );
    }
    let (off, on) = (&modes[0].2, &modes[1].2);
    let share = |tally: &Tally| load(&tally.errors) as f64 / (load(&tally.errors) + load(&tally.served)).max(1) as f64;
    println!(
        "\nErrors per request: {:.1}% off, {:.1}% on; source calls per request: {:.2} off, {:.2} on.",
        100.0 * share(off),
        100.0 * share(on),
        load(&off.source_calls) as f64 / (load(&off.served) + load(&off.errors)).max(1) as f64,
        load(&on.source_calls) as f64 / (load(&on.served) + load(&on.errors)).max(1) as f64,
    );
    println!(
        "While the server is down, and after it until the circuit breaker closes again, fail-safe answers from process memory without a \
         round trip, so it serves far more requests then; fail-open without fail-safe calls the failing source instead."
    );
}
