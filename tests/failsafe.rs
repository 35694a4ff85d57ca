//! Fail-safe and auto-recovery under real faults: the server killed, paused
//! or restarted, the source failing, and several handles (as separate
//! processes would) sharing one server.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rcache::{Cache, ComputeError, ComputeOptions, Computed, ErrorKind, FailSafe, OnWaitTimeout, Options, Timeouts, Ttl};
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

#[test]
fn a_server_in_debug_sleep_serves_every_caller_of_every_handle_the_last_good_value() {
    let server = RedisServer::start();
    let handles: Vec<Cache> = (0..3).map(|_| Cache::connect(Some(&server.url()), options()).unwrap()).collect();
    // Each handle (as a process would) computes its own keys: its copies are of what it computed.
    let keys_of = |handle: usize| -> Vec<Vec<u8>> { (0..10).map(|index| format!("h{handle}:k{index}").into_bytes()).collect() };
    for (handle, cache) in handles.iter().enumerate() {
        for key in keys_of(handle) {
            cache.get_or_compute_with(&key, &compute_options(), || value(b"good")).unwrap();
        }
    }
    let computations = AtomicU32::new(0);
    std::thread::scope(|scope| {
        // The server itself stalls (its socket still accepts): longer than any call's deadline.
        scope.spawn(|| server.command(&["DEBUG", "SLEEP", "3"]));
        std::thread::sleep(Duration::from_millis(300));
        for (handle, cache) in handles.iter().enumerate() {
            for _ in 0..3 {
                let (computations, keys) = (&computations, keys_of(handle));
                scope.spawn(move || {
                    for key in keys {
                        let served = cache.get_or_compute_with(&key, &compute_options(), || {
                            computations.fetch_add(1, Ordering::SeqCst);
                            value(b"new")
                        });
                        assert_eq!(served.unwrap().value.as_deref(), Some(&b"good"[..]), "every caller gets the last good value");
                    }
                });
            }
        }
    });
    assert_eq!(computations.load(Ordering::SeqCst), 0, "no computation while entries are only unreachable");
    let stale_served: u64 = handles.iter().map(|cache| cache.stats().stale_served).sum();
    assert!(stale_served > 0, "the stall was served from the in-process copies");
}

/// Entries and a tagged entry stored before an outage, read by `reader`.
fn fill(cache: &Cache) {
    let minute = Ttl::After(Duration::from_secs(60));
    cache.set(b"deleted", b"old", minute).unwrap();
    cache.set_with_tags(b"tagged", b"old", minute, &[b"t"]).unwrap();
    cache.set(b"cleared:1", b"old", minute).unwrap();
    cache.set(b"kept", b"kept", minute).unwrap();
}

/// The first answer of the server to a read of `key` once it answers again.
fn first_answer(cache: &Cache, key: &[u8]) -> Option<Vec<u8>> {
    let mut answer = None;
    assert!(wait_until(Duration::from_secs(10), || cache.get(key).map(|found| answer = found).is_ok()));
    answer
}

/// Deletes, invalidates and clears while the server is paused; every call fails.
fn remove_while_paused(cache: &Cache, server: &RedisServer) {
    server.pause();
    assert!(cache.delete(b"deleted").unwrap_err().is_unreachable());
    assert!(cache.delete(b"deleted").is_err(), "a duplicate is queued once");
    assert!(cache.invalidate_tags(&[b"t"]).is_err());
    assert!(cache.clear(Some(b"cleared:*")).is_err());
}

#[test]
fn removals_issued_while_the_server_is_paused_are_replayed_before_any_read() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), options()).unwrap();
    fill(&cache);
    remove_while_paused(&cache, &server);
    // delete (entry and its companion), invalidate, clear (keys and companions).
    assert_eq!(cache.stats().recovery_queue, 5);
    server.resume();
    assert_eq!(first_answer(&cache, b"deleted"), None, "the first read after recovery already sees the delete");
    assert_eq!(cache.get(b"tagged").unwrap(), None);
    assert_eq!(cache.get(b"cleared:1").unwrap(), None);
    assert_eq!(cache.get(b"kept").unwrap().as_deref(), Some(&b"kept"[..]));
    let stats = cache.stats();
    assert_eq!((stats.recovery_queue, stats.recovery_replays, stats.recovery_overflows), (0, 5, 0));
}

#[test]
fn an_idle_handle_replays_by_itself_so_other_processes_stop_reading_removed_entries() {
    let server = RedisServer::start();
    let (writer, other) =
        (Cache::connect(Some(&server.url()), options()).unwrap(), Cache::connect(Some(&server.url()), options()).unwrap());
    fill(&writer);
    remove_while_paused(&writer, &server);
    server.resume();
    // `writer` makes no call: its background replay reaches the server.
    let replayed = wait_until(Duration::from_secs(10), || {
        matches!((other.get(b"deleted"), other.get(b"tagged"), other.get(b"cleared:1")), (Ok(None), Ok(None), Ok(None)))
    });
    assert!(replayed, "another handle sees the removals without the writer calling again");
    assert_eq!(other.get(b"kept").unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(writer.stats().recovery_queue, 0);
}

#[test]
fn a_near_cache_is_emptied_when_the_queue_is_replayed() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&format!("{}?near_cache=100", server.url())), options()).unwrap();
    fill(&cache);
    assert_eq!(cache.get(b"kept").unwrap().as_deref(), Some(&b"kept"[..]));
    remove_while_paused(&cache, &server);
    server.resume();
    assert!(wait_until(Duration::from_secs(10), || cache.stats().recovery_queue == 0));
    for key in [&b"deleted"[..], b"tagged", b"cleared:1"] {
        assert_eq!(cache.get(key).unwrap(), None);
    }
}

#[test]
fn an_overflowing_queue_clears_the_whole_namespace_on_recovery() {
    let server = RedisServer::start();
    let small = Options { recovery_queue: 2, key_prefix: b"app:".to_vec(), ..options() };
    let cache = Cache::connect(Some(&server.url()), small).unwrap();
    let outside = Cache::connect(Some(&server.url()), Options { key_prefix: b"other:".to_vec(), ..options() }).unwrap();
    fill(&cache);
    outside.set(b"k", b"v", Ttl::Never).unwrap();
    remove_while_paused(&cache, &server);
    let stats = cache.stats();
    assert_eq!((stats.recovery_queue, stats.recovery_overflows), (1, 1));
    server.resume();
    assert_eq!(first_answer(&cache, b"kept"), None, "nothing written before the outage is served");
    assert_eq!(cache.keys(None).unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(outside.get(b"k").unwrap().as_deref(), Some(&b"v"[..]), "other namespaces are left alone");
}

#[test]
fn without_a_queue_nothing_is_replayed() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), Options { recovery_queue: 0, ..options() }).unwrap();
    fill(&cache);
    remove_while_paused(&cache, &server);
    server.resume();
    assert!(wait_until(Duration::from_secs(10), || cache.get(b"deleted").is_ok()));
    assert_eq!(cache.get(b"deleted").unwrap().as_deref(), Some(&b"old"[..]), "the outage lost the delete");
    assert_eq!(cache.stats().recovery_replays, 0);
}

/// A computation that blocks until the test releases it (drops the write
/// guard), counting its runs in the server at `runs`.
fn held_computation(
    counter: &Arc<Cache>,
    gate: &Arc<RwLock<()>>,
    produce: &'static [u8],
) -> impl FnOnce() -> Result<Option<Vec<u8>>, &'static str> + Send + 'static {
    let (counter, gate) = (Arc::clone(counter), Arc::clone(gate));
    move || {
        counter.increment(b"runs", 1, Ttl::Default).unwrap();
        drop(gate.read().unwrap());
        value(produce)
    }
}

fn never_runs() -> Result<Option<Vec<u8>>, &'static str> {
    panic!("another caller computes this key")
}

const SOFT: Timeouts = Timeouts { soft: Some(Duration::from_millis(100)), hard: Some(Duration::from_secs(60)) };

#[test]
fn past_the_soft_timeout_callers_get_the_stale_value_and_the_computation_stores_its_own_later() {
    let server = RedisServer::start();
    let first = Arc::new(Cache::connect(Some(&server.url()), options()).unwrap());
    let second = Arc::new(Cache::connect(Some(&server.url()), options()).unwrap());
    let short = ComputeOptions { ttl: Ttl::After(Duration::from_millis(80)), ..compute_options() };
    first.get_or_compute_with(b"k", &short, || value(b"good")).unwrap();
    assert!(wait_until(Duration::from_secs(10), || first.get(b"k").unwrap().is_none()));

    let gate = Arc::new(RwLock::new(()));
    let held = gate.write().unwrap();
    let computation = held_computation(&first, &gate, b"new");
    assert_eq!(first.get_or_compute_timed(b"k", &compute_options(), SOFT, computation).unwrap(), stale(b"good"));
    // A waiter on another handle (another process) gets the stale value at its soft timeout too.
    assert_eq!(second.get_or_compute_timed(b"k", &compute_options(), SOFT, never_runs).unwrap(), stale(b"good"));
    assert_eq!(second.stats().computations, 0);
    assert_eq!(first.get(b"k").unwrap(), None, "still computing");

    drop(held);
    assert!(wait_until(Duration::from_secs(10), || first.get(b"k").unwrap().as_deref() == Some(&b"new"[..])));
    assert_eq!(first.get(b"runs").unwrap().as_deref(), Some(&b"1"[..]));
    let fresh = second.get_or_compute_timed(b"k", &compute_options(), SOFT, never_runs).unwrap();
    assert_eq!(fresh, Computed { value: Some(b"new".to_vec()), stale: false });
}

#[test]
fn past_the_hard_timeout_without_a_stale_value_callers_get_a_timeout_and_the_value_is_stored_later() {
    let server = RedisServer::start();
    let first = Arc::new(Cache::connect(Some(&server.url()), options()).unwrap());
    let second = Arc::new(Cache::connect(Some(&server.url()), options()).unwrap());
    let hard = Timeouts { soft: None, hard: Some(Duration::from_millis(100)) };
    let gate = Arc::new(RwLock::new(()));
    let held = gate.write().unwrap();
    let timed_out = |result: Result<Computed, ComputeError<&str>>| matches!(result, Err(ComputeError::Cache(error)) if error.kind == ErrorKind::Timeout);
    assert!(timed_out(first.get_or_compute_timed(b"k", &compute_options(), hard, held_computation(&first, &gate, b"late"))));
    assert!(timed_out(second.get_or_compute_timed(b"k", &compute_options(), hard, never_runs)), "a waiter times out too");
    drop(held);
    assert!(wait_until(Duration::from_secs(10), || first.get(b"k").unwrap().as_deref() == Some(&b"late"[..])));
    assert_eq!(first.get(b"runs").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn many_callers_past_the_soft_timeout_share_one_background_computation() {
    let server = RedisServer::start();
    let handles: Vec<Arc<Cache>> = (0..3).map(|_| Arc::new(Cache::connect(Some(&server.url()), options()).unwrap())).collect();
    let short = ComputeOptions { ttl: Ttl::After(Duration::from_millis(80)), ..compute_options() };
    handles[0].get_or_compute_with(b"k", &short, || value(b"good")).unwrap();
    assert!(wait_until(Duration::from_secs(10), || handles[0].get(b"k").unwrap().is_none()));
    let gate = Arc::new(RwLock::new(()));
    let held = gate.write().unwrap();
    std::thread::scope(|scope| {
        for cache in &handles {
            for _ in 0..4 {
                let computation = held_computation(cache, &gate, b"new");
                scope.spawn(move || {
                    let served = cache.get_or_compute_timed(b"k", &compute_options(), SOFT, computation);
                    assert_eq!(served.unwrap(), stale(b"good"));
                });
            }
        }
    });
    drop(held);
    assert!(wait_until(Duration::from_secs(10), || handles[1].get(b"k").unwrap().as_deref() == Some(&b"new"[..])));
    assert_eq!(handles[2].get(b"runs").unwrap().as_deref(), Some(&b"1"[..]), "one computation for twelve callers");
}

#[test]
fn timeouts_that_cannot_be_honoured_are_refused() {
    let cache = Arc::new(Cache::connect(None, options()).unwrap());
    let refused = |options: &ComputeOptions<'_>, timeouts: Timeouts| {
        let result = cache.get_or_compute_timed(b"k", options, timeouts, || value(b"v"));
        matches!(result, Err(ComputeError::Cache(error)) if error.kind == ErrorKind::InvalidArgument)
    };
    let without_fail_safe = ComputeOptions { fail_safe: Some(FailSafe::OFF), ..compute_options() };
    assert!(refused(&without_fail_safe, Timeouts { soft: Some(Duration::from_millis(10)), hard: None }));
    assert!(refused(&compute_options(), Timeouts { soft: Some(Duration::from_secs(2)), hard: Some(Duration::from_secs(1)) }));
    assert!(refused(&compute_options(), Timeouts { soft: None, hard: Some(Duration::ZERO) }));
    assert!(!refused(&without_fail_safe, Timeouts { soft: None, hard: Some(Duration::from_secs(5)) }));
}
