//! Figures for Redis Cluster and Sentinel, on private servers this program
//! starts on loopback ports (the tests' harness):
//! - throughput of 8 threads doing get/set on a 3-primary Cluster (a replica
//!   each) against the same on one standalone server, in the same run;
//! - failover: seconds from killing the primary to the first successful
//!   write, through Sentinel and on the Cluster.
//!
//! `cargo run --release --example bench_cluster [seconds per throughput run]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rcache::{Cache, Options, Ttl};
use support::{RedisCluster, RedisServer, SentinelGroup};

const THREADS: usize = 8;
const KEYS: usize = 10_000;
const VALUE: [u8; 100] = [b'x'; 100];
const TTL: Ttl = Ttl::After(Duration::from_secs(600));

/// Operations per second of `THREADS` threads alternating a get and a set
/// of 100-byte values over `KEYS` keys, for `seconds`.
fn throughput(url: &str, seconds: f64) -> f64 {
    let cache = Cache::connect(Some(url), Options { key_prefix: b"bench:".to_vec(), ..Options::default() }).unwrap();
    let keys: Vec<String> = (0..KEYS).map(|index| format!("key:{index}")).collect();
    for chunk in keys.chunks(100) {
        let entries: Vec<(&[u8], &[u8])> = chunk.iter().map(|key| (key.as_bytes(), &VALUE[..])).collect();
        cache.set_many(&entries, TTL).unwrap();
    }
    let (stop, done) = (AtomicBool::new(false), AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (cache, keys, stop, done) = (&cache, &keys, &stop, &done);
            scope.spawn(move || {
                // A cheap per-thread sequence (xorshift) to pick keys.
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (thread as u64 + 1);
                let mut count = 0;
                while !stop.load(Ordering::Relaxed) {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let key = keys[(state % KEYS as u64) as usize].as_bytes();
                    if count % 2 == 0 {
                        assert!(cache.get(key).unwrap().is_some());
                    } else {
                        cache.set(key, &VALUE, TTL).unwrap();
                    }
                    count += 1;
                }
                done.fetch_add(count, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Seconds from `kill` to the first successful write of `key`, trying again
/// 1 ms after each failed call (each call bounded by the 1 s timeouts).
fn seconds_to_first_write(cache: &Cache, key: &[u8], kill: impl FnOnce()) -> (f64, u64) {
    cache.set(key, b"before", TTL).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    kill();
    let mut failed = 0;
    while cache.set(key, b"after", TTL).is_err() {
        failed += 1;
        std::thread::sleep(Duration::from_millis(1));
        assert!(killed.elapsed() < Duration::from_secs(60), "no write within 60 s of the kill");
    }
    (killed.elapsed().as_secs_f64(), failed)
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|arg| arg.parse().ok()).unwrap_or(5.0);
    println!("== Redis Cluster and Sentinel (redis-server {}) ==", redis_version());

    let standalone = RedisServer::start();
    let cluster = RedisCluster::start();
    let bare = RedisCluster::start_with_replicas(0);
    let one = throughput(&standalone.url(), seconds);
    let sharded = throughput(&cluster.url(), seconds);
    let unreplicated = throughput(&bare.url(), seconds);
    println!(
        "{THREADS} threads, get/set alternating, {KEYS} keys, 100-byte values, {seconds} s each:\n  \
         standalone server                   {one:>9.0} ops/s\n  \
         3-primary cluster, a replica each   {sharded:>9.0} ops/s  ({:.2}x the standalone server)\n  \
         3-primary cluster, no replicas      {unreplicated:>9.0} ops/s  ({:.2}x)",
        sharded / one,
        unreplicated / one
    );
    drop((bare, cluster, standalone));

    let mut group = SentinelGroup::start();
    let cache = Cache::connect(Some(&group.url()), Options::default()).unwrap();
    let (sentinel_seconds, failed) = seconds_to_first_write(&cache, b"probe", || group.primary.kill());
    println!(
        "Sentinel failover (down-after-milliseconds 1000, 3 sentinels, quorum 2): first write {sentinel_seconds:.2} s after \
         killing the primary ({failed} failed calls before)"
    );
    drop(cache);
    drop(group);

    let mut cluster = RedisCluster::start();
    let cache = Cache::connect(Some(&cluster.url()), Options::default()).unwrap();
    let slot: u16 = support::query(cluster.nodes[0].port, redis::cmd("CLUSTER").arg("KEYSLOT").arg("probe")).unwrap();
    let victim = cluster.owner(slot, 0);
    let (cluster_seconds, failed) = seconds_to_first_write(&cache, b"probe", || cluster.nodes[victim].kill());
    println!(
        "Cluster failover (cluster-node-timeout 1000): first write {cluster_seconds:.2} s after killing the primary \
         ({failed} failed calls before)"
    );
}

fn redis_version() -> String {
    let output = std::process::Command::new("redis-server").arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().find_map(|word| word.strip_prefix("v=")).unwrap_or("?").to_string()
}
