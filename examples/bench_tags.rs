//! Benchmark of tags and clear on a Redis server (not a test: it prints figures).
//!
//!   tests/with-redis.sh cargo run --release --example bench_tags
//!
//! Uses RCACHE_TEST_REDIS_URL (or the first argument). Reports: the time to
//! invalidate a tag carried by 100k entries and the worst latency a concurrent
//! PING sees meanwhile; a tagged get against a plain get; a clear of 1M keys
//! next to 1M keys of another namespace, with the worst concurrent PING.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rcache::{Cache, Options, Ttl};

const HOUR: Ttl = Ttl::After(Duration::from_secs(3600));

/// PINGs the server over its own connection until stopped; returns the latencies.
fn ping_while(address: &str, stop: &AtomicBool) -> Vec<Duration> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut latencies = Vec::new();
    let mut reply = [0u8; 7];
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        stream.write_all(b"PING\r\n").unwrap();
        stream.read_exact(&mut reply).unwrap();
        latencies.push(started.elapsed());
        std::thread::sleep(Duration::from_micros(200));
    }
    latencies
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * fraction) as usize]
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

/// Runs `work` while another thread PINGs; returns its result and the PING latencies, sorted.
fn with_pings<T>(address: &str, work: impl FnOnce() -> T) -> (T, Vec<Duration>) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let pinger = scope.spawn(|| ping_while(address, &stop));
        std::thread::sleep(Duration::from_millis(20));
        let result = work();
        stop.store(true, Ordering::Relaxed);
        let mut latencies = pinger.join().unwrap();
        latencies.sort();
        (result, latencies)
    })
}

fn fill(cache: &Cache, count: usize, name: &str, tags: &[&[u8]]) {
    let value = [b'v'; 100];
    let keys: Vec<String> = (0..count).map(|index| format!("{name}:{index}")).collect();
    if tags.is_empty() {
        for chunk in keys.chunks(1000) {
            let entries: Vec<(&[u8], &[u8])> = chunk.iter().map(|key| (key.as_bytes(), &value[..])).collect();
            cache.set_many(&entries, HOUR).unwrap();
        }
        return;
    }
    std::thread::scope(|scope| {
        for part in keys.chunks(count.div_ceil(4)) {
            scope.spawn(move || {
                for key in part {
                    cache.set_with_tags(key.as_bytes(), &value, HOUR, tags).unwrap();
                }
            });
        }
    });
}

fn main() {
    let url = std::env::args().nth(1).or_else(|| std::env::var("RCACHE_TEST_REDIS_URL").ok()).expect("a Redis URL");
    let address = url.trim_start_matches("redis://").split('/').next().unwrap().to_string();
    let connect = |prefix: &str| {
        Cache::connect(Some(&url), Options { key_prefix: prefix.as_bytes().to_vec(), ..Options::default() }).unwrap()
    };

    println!("## Tags and clear ({url})\n");
    let tagged = connect("bench-tags:");
    fill(&tagged, 100_000, "entry", &[b"big", b"other"]);
    let (durations, pings) = with_pings(&address, || {
        (0..20)
            .map(|_| {
                let started = Instant::now();
                tagged.invalidate_tags(&[b"big"]).unwrap();
                started.elapsed()
            })
            .collect::<Vec<_>>()
    });
    let mut durations = durations;
    durations.sort();
    println!(
        "- invalidate a tag carried by 100,000 entries (20 times): median {}, worst {}; concurrent PING p99 {}, worst {} ({} PINGs); target: under 5 ms",
        micros(percentile(&durations, 0.5)),
        micros(*durations.last().unwrap()),
        micros(percentile(&pings, 0.99)),
        micros(*pings.last().unwrap()),
        pings.len()
    );

    let reads = 50_000;
    tagged.set_with_tags(b"tagged", &[b'v'; 100], HOUR, &[b"user:1", b"profiles"]).unwrap();
    tagged.set(b"plain", &[b'v'; 100], HOUR).unwrap();
    let time_reads = |key: &[u8]| {
        let started = Instant::now();
        for _ in 0..reads {
            assert!(tagged.get(key).unwrap().is_some());
        }
        started.elapsed()
    };
    // A bare GET over its own socket, for scale: rcache reads every key through one EVALSHA.
    let time_raw_gets = || {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream.set_nodelay(true).unwrap();
        let request = b"*2\r\n$3\r\nGET\r\n$16\r\nbench-tags:plain\r\n";
        let mut reply = [0u8; 108];
        let started = Instant::now();
        for _ in 0..reads {
            stream.write_all(request).unwrap();
            stream.read_exact(&mut reply).unwrap();
        }
        started.elapsed()
    };
    let (mut plain, mut with_tags, mut raw) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..3 {
        plain += time_reads(b"plain");
        with_tags += time_reads(b"tagged");
        raw += time_raw_gets();
    }
    println!(
        "- get of an entry with 2 tags vs a plain entry (3 × {reads} interleaved, 1 thread): {:.1} vs {:.1} µs per get, ratio {:.2}x (target <= 1.3x); one round trip each",
        with_tags.as_secs_f64() * 1e6 / (3 * reads) as f64,
        plain.as_secs_f64() * 1e6 / (3 * reads) as f64,
        with_tags.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "- for scale, a bare GET of the plain entry over a raw socket: {:.1} µs per get",
        raw.as_secs_f64() * 1e6 / (3 * reads) as f64
    );

    let (doomed, kept) = (connect("bench-clear-a:"), connect("bench-clear-b:"));
    fill(&doomed, 1_000_000, "k", &[]);
    fill(&kept, 1_000_000, "k", &[]);
    let started = Instant::now();
    let (deleted, pings) = with_pings(&address, || doomed.clear(None).unwrap());
    let elapsed = started.elapsed();
    assert_eq!(deleted, 1_000_000);
    assert!(kept.exists(b"k:999999").unwrap());
    println!(
        "- clear 1,000,000 keys next to 1,000,000 of another namespace: {:.2} s; concurrent PING p99 {}, worst {} ({} PINGs); target: no PING over 10 ms",
        elapsed.as_secs_f64(),
        micros(percentile(&pings, 0.99)),
        micros(*pings.last().unwrap()),
        pings.len()
    );
    kept.clear(None).unwrap();
    tagged.clear(None).unwrap();
}
