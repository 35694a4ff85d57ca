//! Runs a command beside three private Redis deployments on free loopback
//! ports, started with the tests' harness (`tests/support`), and stops them
//! when it ends:
//! - a standalone server;
//! - Sentinel: a primary, a replica and three sentinels (quorum 2);
//! - Cluster: three primaries, no replicas.
//!
//! ```text
//! target/release/examples/bench_topologies COMMAND [ARG...]
//! ```
//!
//! The command sees their URLs in `RCACHE_BENCH_STANDALONE_URL`,
//! `RCACHE_BENCH_SENTINEL_URL` and `RCACHE_BENCH_CLUSTER_URL`, and the
//! address the sentinels name as primary in `RCACHE_BENCH_SENTINEL_PRIMARY`
//! (`host:port`, for clients without Sentinel support). Exits with the
//! command's status. The servers are killed when this program exits, even
//! when it is killed itself (a parent-death signal, see `support::keep`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;

use support::{RedisCluster, RedisServer, SentinelGroup};

/// The three deployments, started once and kept until the process exits.
struct Deployments {
    standalone: RedisServer,
    sentinel: SentinelGroup,
    cluster: RedisCluster,
}

fn start() -> Deployments {
    Deployments {
        standalone: RedisServer::start(),
        sentinel: SentinelGroup::start(),
        cluster: RedisCluster::start_with_replicas(0),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: bench_topologies COMMAND [ARG...]");
        std::process::exit(2);
    };
    let deployments = support::keep(start);
    let primary = deployments.sentinel.primary_port().expect("the sentinels name a primary");
    let status = Command::new(&program)
        .args(args)
        .env("RCACHE_BENCH_STANDALONE_URL", deployments.standalone.url())
        .env("RCACHE_BENCH_SENTINEL_URL", deployments.sentinel.url())
        .env("RCACHE_BENCH_SENTINEL_PRIMARY", format!("127.0.0.1:{primary}"))
        .env("RCACHE_BENCH_CLUSTER_URL", deployments.cluster.url())
        .status()
        .unwrap_or_else(|error| panic!("could not run {program}: {error}"));
    // exit() runs the atexit handler that kills and removes the kept servers.
    std::process::exit(status.code().unwrap_or(1));
}
