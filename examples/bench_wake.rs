//! Benchmark of get-or-compute waiters (not a test: it prints figures).
//! Starts its own redis-server.
//!
//!   cargo run --release --example bench_wake
//!
//! Process A (a child of this program) takes the lock of a key and computes
//! it for 5 to 24 ms; process B, meanwhile, calls get-or-compute on the same
//! key and waits. Measured: from the moment A's computation returns (the
//! store starts) to B's call returning A's value, read from the system clock
//! in both processes. Two waiters take turns in the same run: one with a
//! near cache (woken by the report of the write) and one without (polling
//! each.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcache::{Cache, ComputeOptions, Options, Ttl};
use support::RedisServer;

const MINUTE: Ttl = Ttl::After(Duration::from_secs(60));
const CHILD: &str = "RCACHE_BENCH_WAKE_CHILD";

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

fn options() -> Options {
    Options { key_prefix: b"wake:".to_vec(), ..Options::default() }
}

/// Process A: for each line `<key> <milliseconds>` computes the key for that
/// long, says `locked` when it starts, and the time the computation returned.
fn computer(url: &str) {
    let cache = Cache::connect(Some(url), options()).unwrap();
    let compute_options = ComputeOptions { ttl: MINUTE, ..ComputeOptions::default() };
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let (key, millis) = line.split_once(' ').unwrap();
        let mut returned = Duration::ZERO;
        cache
            .get_or_compute(key.as_bytes(), &compute_options, || {
                writeln!(out, "locked").unwrap();
                out.flush().unwrap();
                std::thread::sleep(Duration::from_millis(millis.parse().unwrap()));
                returned = now();
                Ok::<_, ()>(b"from A".to_vec())
            })
            .unwrap();
        writeln!(out, "{}", returned.as_nanos()).unwrap();
        out.flush().unwrap();
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn main() {
    if let Ok(url) = std::env::var(CHILD) {
        return computer(&url);
    }
    let samples: usize = std::env::var("BENCH_WAKE_SAMPLES").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let server = RedisServer::start();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, server.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap()).lines();
    let waiters = [
        (
            "woken by the report (near cache)",
            Cache::connect(Some(&format!("{}?near_cache=10000", server.url())), options()).unwrap(),
        ),
        ("polling (no near cache)", Cache::connect(Some(&server.url()), options()).unwrap()),
    ];
    let compute_options = ComputeOptions { ttl: MINUTE, ..ComputeOptions::default() };
    let mut latencies = vec![Vec::with_capacity(samples); waiters.len()];
    for sample in 0..samples {
        // Spread the computation's length so that polling is caught at every phase.
        let millis = 5 + sample * 7 % 20;
        for (index, (_, waiter)) in waiters.iter().enumerate() {
            let key = format!("{index}:{sample}");
            writeln!(to_child, "{key} {millis}").unwrap();
            assert_eq!(from_child.next().unwrap().unwrap(), "locked");
            let value = waiter
                .get_or_compute(key.as_bytes(), &compute_options, || -> Result<Vec<u8>, ()> { panic!("B computed") })
                .unwrap();
            let returned = now();
            assert_eq!(value, b"from A");
            let stored: u128 = from_child.next().unwrap().unwrap().parse().unwrap();
            latencies[index].push(returned.saturating_sub(Duration::from_nanos(stored as u64)));
        }
    }
    drop(to_child);
    child.wait().unwrap();
    println!("## From a value stored by process A to a waiting get-or-compute in process B returning it\n");
    println!("{samples} keys per waiter, A computing 5 to 24 ms while B waits ({}):\n", server.url());
    let mut medians = Vec::new();
    for ((name, _), latencies) in waiters.iter().zip(&mut latencies) {
        latencies.sort();
        let (p50, p99) = (percentile(latencies, 0.5), percentile(latencies, 0.99));
        medians.push(p50);
        println!("- {name}: p50 {:.2} ms, p99 {:.2} ms", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
    }
    println!(
        "- the woken waiter's median is {:.1}× shorter than polling's",
        medians[1].as_secs_f64() / medians[0].as_secs_f64().max(1e-9)
    );
}
