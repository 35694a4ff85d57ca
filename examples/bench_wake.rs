//! Benchmark of get-or-compute waiters (not a test: it prints figures).
//! Starts its own servers: a standalone redis-server, a Sentinel group (a
//! primary, a replica, three sentinels) and a 3-primary Cluster, with the
//! tests' harness.
//!
//!   cargo run --release --example bench_wake
//!
//! Process A (a child of this program) takes the lock of a key and computes
//! it for 5 to 24 ms; process B, meanwhile, calls get-or-compute on the same
//! key and waits. Measured: from the moment A's computation returns (the
//! store starts) to B's call returning A's value, read from the system clock
//! in both processes. Two waiters take turns in the same run: one with a
//! near cache (woken by the report of the write) and one without (polling
//! each. The three deployments take turns too, key by key, each with its
//! own process A; before each key, B times one plain get (a miss) and one
//! set on that deployment: a woken waiter's time is A's store, the report's
//! travel and B's read.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcache::{Cache, ComputeOptions, Options, Ttl};
use support::{RedisCluster, RedisServer, SentinelGroup};

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

/// Process A on `url`: the pipe to it and its lines.
struct Computer {
    child: std::process::Child,
    /// Closed by `finish`, which ends process A.
    to: Option<std::process::ChildStdin>,
    from: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Computer {
    fn start(url: &str) -> Computer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let to = child.stdin.take();
        let from = BufReader::new(child.stdout.take().unwrap()).lines();
        Computer { child, to, from }
    }

    /// Line `<key> <milliseconds>` to process A.
    fn send(&mut self, key: &str, millis: usize) {
        writeln!(self.to.as_mut().expect("process A running"), "{key} {millis}").unwrap();
    }

    /// Ends process A and waits for it.
    fn finish(&mut self) {
        self.to = None;
        self.child.wait().unwrap();
    }
}

/// One deployment: its name, URL, process A, and the two waiters (near cache, polling).
struct Topology {
    name: &'static str,
    url: String,
    computer: Computer,
    waiters: [(&'static str, Cache); 2],
}

impl Topology {
    fn new(name: &'static str, url: String) -> Topology {
        let waiters = [
            ("woken by the report (near cache)", Cache::connect(Some(&format!("{url}?near_cache=10000")), options()).unwrap()),
            ("polling (no near cache)", Cache::connect(Some(&url), options()).unwrap()),
        ];
        Topology { name, computer: Computer::start(&url), url, waiters }
    }
}

fn main() {
    if let Ok(url) = std::env::var(CHILD) {
        return computer(&url);
    }
    let samples: usize = std::env::var("BENCH_WAKE_SAMPLES").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let server = RedisServer::start();
    let sentinel = SentinelGroup::start();
    let cluster = RedisCluster::start_with_replicas(0);
    let mut topologies = [
        Topology::new("standalone", server.url()),
        Topology::new("Sentinel", sentinel.url()),
        Topology::new("Cluster", cluster.url()),
    ];
    let compute_options = ComputeOptions { ttl: MINUTE, ..ComputeOptions::default() };
    // [topology][waiter]: the samples.
    let mut latencies: Vec<[Vec<Duration>; 2]> = topologies.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    // [topology]: a plain get's and a plain set's round trips, what a woken waiter pays besides the wake-up.
    let mut round_trips: Vec<[Vec<Duration>; 2]> = topologies.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for sample in 0..samples {
        // Spread the computation's length so that polling is caught at every phase.
        let millis = 5 + sample * 7 % 20;
        for ((topology, latencies), round_trips) in topologies.iter_mut().zip(&mut latencies).zip(&mut round_trips) {
            let plain = &topology.waiters[1].1;
            let asked = Instant::now();
            assert!(plain.get(format!("1:{sample}").as_bytes()).unwrap().is_none());
            round_trips[0].push(asked.elapsed());
            let asked = Instant::now();
            plain.set(format!("round-trip:{sample}").as_bytes(), b"x", MINUTE).unwrap();
            round_trips[1].push(asked.elapsed());
            for (index, (_, waiter)) in topology.waiters.iter().enumerate() {
                let key = format!("{index}:{sample}");
                topology.computer.send(&key, millis);
                assert_eq!(topology.computer.from.next().unwrap().unwrap(), "locked");
                let value = waiter
                    .get_or_compute(key.as_bytes(), &compute_options, || -> Result<Vec<u8>, ()> { panic!("B computed") })
                    .unwrap();
                let returned = now();
                assert_eq!(value, b"from A");
                let stored: u128 = topology.computer.from.next().unwrap().unwrap().parse().unwrap();
                latencies[index].push(returned.saturating_sub(Duration::from_nanos(stored as u64)));
            }
        }
    }
    for topology in &mut topologies {
        topology.computer.finish();
    }
    println!("## From a value stored by process A to a waiting get-or-compute in process B returning it\n");
    println!(
        "{samples} keys per waiter and deployment, A computing 5 to 24 ms while B waits; the deployments take \
         turns key by key (load average {}):\n",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?")
    );
    let mut standalone_p50 = [Duration::ZERO; 4];
    for ((topology, latencies), round_trips) in topologies.iter_mut().zip(&mut latencies).zip(&mut round_trips) {
        println!("{} ({}):", topology.name, topology.url);
        for (index, (call, round_trips)) in ["get", "set"].iter().zip(round_trips.iter_mut()).enumerate() {
            round_trips.sort();
            let round_trip = percentile(round_trips, 0.5);
            let against = if topology.name == "standalone" {
                standalone_p50[2 + index] = round_trip;
                String::new()
            } else {
                let more = round_trip.as_secs_f64() - standalone_p50[2 + index].as_secs_f64();
                format!(" ({:+.0} µs against standalone's)", more * 1e6)
            };
            println!("- a plain {call}'s round trip (no near cache): p50 {:.0} µs{against}", round_trip.as_secs_f64() * 1e6);
        }
        let mut medians = [Duration::ZERO; 2];
        for (index, ((name, _), latencies)) in topology.waiters.iter().zip(latencies.iter_mut()).enumerate() {
            latencies.sort();
            let (p50, p99) = (percentile(latencies, 0.5), percentile(latencies, 0.99));
            medians[index] = p50;
            let against = if topology.name == "standalone" {
                standalone_p50[index] = p50;
                String::new()
            } else {
                format!(
                    " (p50 {:.2}× standalone's, {:+.0} µs)",
                    p50.as_secs_f64() / standalone_p50[index].as_secs_f64().max(1e-9),
                    (p50.as_secs_f64() - standalone_p50[index].as_secs_f64()) * 1e6
                )
            };
            println!("- {name}: p50 {:.2} ms, p99 {:.2} ms{against}", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
        }
        println!(
            "- the woken waiter's median is {:.1}× shorter than polling's\n",
            medians[1].as_secs_f64() / medians[0].as_secs_f64().max(1e-9)
        );
    }
}
