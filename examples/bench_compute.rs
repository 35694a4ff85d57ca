//! Benchmark of get-or-compute and of behaviour while Redis is down (not a
//! test: it prints figures). Starts and kills its own redis-server.
//!
//!   cargo run --release --example bench_compute
//!
//! Reports: computations per key under a 64-thread stampede; the cost of a
//! get-or-compute call on top of its computation with Redis down and the
//! circuit open (fail-open); the time the client takes to recover after the
//! server returns.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rcache::{Cache, ComputeOptions, Options, Ttl};
use support::{RedisServer, wait_until};

fn main() {
    let mut server = RedisServer::start();
    let options = Options {
        fail_open: true,
        connect_timeout: Duration::from_millis(200),
        response_timeout: Duration::from_millis(200),
        ..Options::default()
    };
    let cache = Cache::connect(Some(&server.url()), options).unwrap();
    println!("## Get-or-compute and a server that goes away ({})\n", server.url());

    let computations = AtomicU32::new(0);
    let compute_options = ComputeOptions { ttl: Ttl::After(Duration::from_secs(60)), ..ComputeOptions::default() };
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..64 {
            scope.spawn(|| {
                let value = cache
                    .get_or_compute(b"stampede", &compute_options, || {
                        computations.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Ok::<_, ()>(b"value".to_vec())
                    })
                    .unwrap();
                assert_eq!(value, b"value");
            });
        }
    });
    println!(
        "- 64 threads miss one key whose computation takes 200 ms: {} computation(s), all callers served in {} ms (target: 1 computation)",
        computations.load(Ordering::SeqCst),
        started.elapsed().as_millis()
    );

    server.kill();
    while cache.stats().breaker_trips == 0 {
        let _ = cache.get(b"k");
    }
    let calls = 100_000u32;
    let started = Instant::now();
    for index in 0..calls {
        let key = format!("down:{}", index % 100);
        cache.get_or_compute(key.as_bytes(), &compute_options, || Ok::<_, ()>(b"computed".to_vec())).unwrap();
    }
    let per_call = started.elapsed() / calls;
    let stats = cache.stats();
    println!(
        "- Redis down, circuit open, fail-open: {:.2} µs per get-or-compute on top of its (empty) computation, {} calls (target: under 20 µs); breaker opened {} time(s), skipped {} calls",
        per_call.as_secs_f64() * 1e6,
        calls,
        stats.breaker_trips,
        stats.breaker_skips
    );

    let mut recoveries = Vec::new();
    for _ in 0..5 {
        server.kill();
        for _ in 0..20 {
            let _ = cache.get(b"k");
        }
        server.restart();
        let back = Instant::now();
        assert!(wait_until(Duration::from_secs(10), || {
            let before = cache.stats().fail_opens;
            cache.set(b"k", b"v", Ttl::After(Duration::from_secs(60))).is_ok() && cache.stats().fail_opens == before
        }));
        recoveries.push(back.elapsed());
    }
    recoveries.sort();
    println!(
        "- recovery after the server returns (5 kill/restart cycles, breaker open each time): median {} ms, worst {} ms (target: within 1 s)",
        recoveries[2].as_millis(),
        recoveries[4].as_millis()
    );
}
