//! Fail-safe under real faults: the server killed, paused or restarted, the
//! source failing, and several handles (as separate processes would) sharing
//! one server.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rcache::{Cache, ComputeError, ComputeOptions, Computed, FailSafe, OnWaitTimeout, Options, Ttl};
use support::{RedisServer, wait_until};

const FAIL_SAFE: FailSafe = FailSafe { max_stale: Duration::from_secs(60), throttle: Duration::from_secs(60) };

fn options() -> Options {
    Options {
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        fail_safe: FAIL_SAFE,
        ..Options::default()
    }
}

fn compute_options() -> ComputeOptions<'static> {
    ComputeOptions {
        ttl: Ttl::After(Duration::from_secs(60)),
        tags: &[b"t"],
        early_refresh_beta: 0.0,
        ..ComputeOptions::default()
    }
}

fn value(bytes: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    Ok(Some(bytes.to_vec()))
}

fn stale(bytes: &[u8]) -> Computed {
    Computed { value: Some(bytes.to_vec()), stale: true }
}

#[test]
fn a_killed_server_gets_the_last_good_value_marked_stale_without_computing() {
    let mut server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), options()).unwrap();
    let computed = cache.get_or_compute_with(b"k", &compute_options(), || value(b"good")).unwrap();
    assert!(!computed.stale);
    server.kill();
    let computations = AtomicU32::new(0);
    let counting = || {
        computations.fetch_add(1, Ordering::SeqCst);
        value(b"new")
    };
    assert_eq!(cache.get_or_compute_with(b"k", &compute_options(), counting).unwrap(), stale(b"good"));
    assert_eq!(computations.load(Ordering::SeqCst), 0, "the in-process copy answers while the server is down");
    assert!(cache.get(b"k").is_err(), "a plain read reports the outage, never the stale copy");
    // Without fail-safe (or without a copy) the outage is the caller's error.
    let plain = ComputeOptions { fail_safe: Some(FailSafe::OFF), ..compute_options() };
    assert!(matches!(cache.get_or_compute_with(b"k", &plain, counting), Err(ComputeError::Cache(_))));
    assert!(matches!(cache.get_or_compute_with(b"never-stored", &compute_options(), counting), Err(ComputeError::Cache(_))));
    assert_eq!(cache.stats().stale_served, 1);

    // An invalidation, though it fails, drops the copies it names in this process.
    assert!(cache.invalidate_tags(&[b"t"]).is_err());
    assert!(cache.get_or_compute_with(b"k", &compute_options(), counting).is_err());

    server.restart();
    let back = wait_until(Duration::from_secs(10), || cache.get_or_compute_with(b"k", &compute_options(), counting).is_ok());
    assert!(back, "computes again once the server is back");
}

#[test]
fn a_paused_server_gets_the_stale_value_after_its_timeout() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), options()).unwrap();
    cache.get_or_compute_with(b"k", &compute_options(), || value(b"good")).unwrap();
    server.pause();
    let served = cache.get_or_compute_with(b"k", &compute_options(), || value(b"new"));
    server.resume();
    assert_eq!(served.unwrap(), stale(b"good"));
}

#[test]
fn a_failure_throttles_the_key_for_every_handle_on_the_server() {
    let server = RedisServer::start();
    let (first, second) =
        (Cache::connect(Some(&server.url()), options()).unwrap(), Cache::connect(Some(&server.url()), options()).unwrap());
    let short = ComputeOptions { ttl: Ttl::After(Duration::from_millis(80)), ..compute_options() };
    first.get_or_compute_with(b"k", &short, || value(b"good")).unwrap();
    assert!(wait_until(Duration::from_secs(10), || first.get(b"k").unwrap().is_none()));
    let failed = first.get_or_compute_with(b"k", &short, || Err("source down"));
    assert_eq!(failed.unwrap(), stale(b"good"));
    // Another handle (another process) gets the shared stale copy without computing.
    let throttled = second.get_or_compute_with(b"k", &short, || -> Result<Option<Vec<u8>>, &str> { panic!("throttled") });
    assert_eq!(throttled.unwrap(), stale(b"good"));
    assert_eq!(second.stats().computations, 0);
    // An invalidation from any handle removes the shared copy.
    second.invalidate_tags(&[b"t"]).unwrap();
    let impatient = ComputeOptions { wait_timeout: Duration::from_millis(100), on_wait_timeout: OnWaitTimeout::Fail, ..short };
    assert!(first.get_or_compute_with(b"k", &impatient, || Err("source down")).is_err());
}

#[test]
fn many_threads_and_handles_under_a_failing_source_compute_once_per_throttle() {
    let server = RedisServer::start();
    let handles: Vec<Cache> = (0..3).map(|_| Cache::connect(Some(&server.url()), options()).unwrap()).collect();
    let short = ComputeOptions { ttl: Ttl::After(Duration::from_millis(80)), ..compute_options() };
    handles[0].get_or_compute_with(b"k", &short, || value(b"good")).unwrap();
    assert!(wait_until(Duration::from_secs(10), || handles[0].get(b"k").unwrap().is_none()));
    let attempts = AtomicU32::new(0);
    std::thread::scope(|scope| {
        for cache in &handles {
            for _ in 0..4 {
                let (attempts, short) = (&attempts, &short);
                scope.spawn(move || {
                    let served = cache.get_or_compute_with(b"k", short, || {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        Err("source down")
                    });
                    assert_eq!(served.unwrap(), stale(b"good"));
                });
            }
        }
    });
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "one computation, then the key is throttled for everyone");
}
