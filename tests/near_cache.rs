//! The near cache against a private Redis: other handles and other processes
//! write, tag invalidations, a killed and restarted server, a killed tracking
//! connection, bounds, TTLs, and readers racing a writer.
//!
//! A change made elsewhere reaches a near cache after the writer's call has
//! returned plus delivery time: the tests poll for it with a bounded
//! deadline, never sleep blindly.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rcache::{Cache, ComputeOptions, ErrorKind, Options, Ttl};
use support::proxy::{Fault, FaultProxy, Trigger};
use support::{RedisServer, wait_until};

/// How long a change may take to reach another handle's near cache.
const DELIVERY: Duration = Duration::from_secs(2);
const MINUTE: Ttl = Ttl::After(Duration::from_secs(60));
/// The two ways of tracking: the keys read, and every key under the prefix.
const MODES: [&str; 2] = ["near_cache=1000", "near_cache=1000&near_cache_mode=bcast"];

fn options() -> Options {
    Options { key_prefix: b"near:".to_vec(), ..Options::default() }
}

fn near(server: &RedisServer, parameters: &str) -> Cache {
    Cache::connect(Some(&format!("{}?{parameters}", server.url())), options()).unwrap()
}

fn plain(server: &RedisServer) -> Cache {
    Cache::connect(Some(&server.url()), options()).unwrap()
}

fn value(cache: &Cache, key: &[u8]) -> Option<Vec<u8>> {
    cache.get(key).unwrap()
}

/// Reads `key` until the near cache answers (the first read normally fills
/// it; a fill is refused while a report about the key is in flight, as right
/// after a write), and returns the value, unchanged throughout.
fn cache_near(cache: &Cache, key: &[u8]) -> Option<Vec<u8>> {
    let first = value(cache, key);
    first.as_ref()?;
    assert!(wait_until(DELIVERY, || near_hit(cache, key)), "{key:?} never came from the near cache");
    assert_eq!(value(cache, key), first);
    first
}

/// Reads `key` once: true when the near cache answered.
fn near_hit(cache: &Cache, key: &[u8]) -> bool {
    let before = cache.stats().near_hits;
    cache.get(key).unwrap();
    cache.stats().near_hits > before
}

/// Runs the helper test below in a new process of this test binary.
fn in_another_process(server: &RedisServer, action: &str, key: &str, value: &str) {
    in_another_process_at(&server.url(), action, key, value);
}

fn in_another_process_at(url: &str, action: &str, key: &str, value: &str) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_process", "--ignored", "--quiet", "--test-threads=1"])
        .env("RCACHE_NEAR_HELPER", format!("{action}\n{url}\n{key}\n{value}"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the helper process failed: {status}");
}

/// Not a test: the other process of `in_another_process`, which writes or
/// invalidates on a plain handle and exits. Does nothing when run by hand.
#[test]
#[ignore]
fn helper_process() {
    let Ok(request) = std::env::var("RCACHE_NEAR_HELPER") else { return };
    let parts: Vec<&str> = request.split('\n').collect();
    let [action, url, key, value] = parts[..] else { panic!("bad request {request:?}") };
    let cache = Cache::connect(Some(url), options()).unwrap();
    match action {
        "set" => cache.set(key.as_bytes(), value.as_bytes(), MINUTE).unwrap(),
        "invalidate" => cache.invalidate_tags(&[key.as_bytes()]).unwrap(),
        // Computes `value` slowly, saying so at `started:<key>` once it holds the lock.
        "compute" => {
            let options = ComputeOptions { ttl: MINUTE, ..ComputeOptions::default() };
            let computed = cache.get_or_compute(key.as_bytes(), &options, || {
                cache.set(format!("started:{key}").as_bytes(), b"1", MINUTE).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                Ok::<_, ()>(value.as_bytes().to_vec())
            });
            assert_eq!(computed.unwrap(), value.as_bytes());
        }
        _ => panic!("unknown action {action}"),
    }
}

#[test]
fn a_waiter_gets_another_processs_computation_without_computing() {
    for mode in MODES {
        a_waiter_gets_another_processs_computation_without_computing_in(mode);
    }
}

fn a_waiter_gets_another_processs_computation_without_computing_in(mode: &str) {
    let server = RedisServer::start();
    let (a, b) = (near(&server, mode), plain(&server));
    for (cache, key) in [(&a, "report"), (&b, "poll")] {
        let url = server.url();
        let other = std::thread::spawn(move || in_another_process_at(&url, "compute", key, "from the other process"));
        assert!(wait_until(DELIVERY, || b.get(format!("started:{key}").as_bytes()).unwrap().is_some()), "never started");
        let options = ComputeOptions { ttl: MINUTE, ..ComputeOptions::default() };
        let got = cache.get_or_compute(key.as_bytes(), &options, || Ok::<_, ()>(b"computed here".to_vec())).unwrap();
        assert_eq!(got, b"from the other process", "{key}");
        let stats = cache.stats();
        assert_eq!(stats.computations, 0, "{key}: {stats:?}");
        assert!(stats.lock_waits >= 1, "{key}: {stats:?}");
        other.join().unwrap();
    }
}

#[test]
fn a_write_by_another_handle_reaches_the_near_cache() {
    for mode in MODES {
        a_write_by_another_handle_reaches_the_near_cache_in(mode);
    }
}

fn a_write_by_another_handle_reaches_the_near_cache_in(mode: &str) {
    let server = RedisServer::start();
    let (a, b) = (near(&server, mode), plain(&server));
    b.set(b"k", b"one", MINUTE).unwrap();
    assert_eq!(cache_near(&a, b"k").as_deref(), Some(&b"one"[..]));
    b.set(b"k", b"two", MINUTE).unwrap();
    assert!(wait_until(DELIVERY, || value(&a, b"k").as_deref() == Some(b"two")), "A never saw B's write");
    assert_eq!(cache_near(&a, b"k").as_deref(), Some(&b"two"[..]), "the new value is cached in turn");
    b.delete(b"k").unwrap();
    assert!(wait_until(DELIVERY, || value(&a, b"k").is_none()), "A never saw B's delete");
    let stats = a.stats();
    assert!(stats.near_invalidations >= 2, "{stats:?}");
}

#[test]
fn a_write_by_another_process_reaches_the_near_cache() {
    let server = RedisServer::start();
    let a = near(&server, "near_cache=1000");
    a.set(b"k", b"one", MINUTE).unwrap();
    assert_eq!(cache_near(&a, b"k").as_deref(), Some(&b"one"[..]));
    in_another_process(&server, "set", "k", "two");
    assert!(wait_until(DELIVERY, || value(&a, b"k").as_deref() == Some(b"two")), "A never saw the other process's write");
}

#[test]
fn a_tag_invalidated_elsewhere_empties_the_tagged_entries() {
    for mode in MODES {
        a_tag_invalidated_elsewhere_empties_the_tagged_entries_in(mode);
    }
}

fn a_tag_invalidated_elsewhere_empties_the_tagged_entries_in(mode: &str) {
    let server = RedisServer::start();
    let (a, b) = (near(&server, mode), plain(&server));
    b.set_with_tags(b"profile:1", b"ada", MINUTE, &[b"user:1", b"profiles"]).unwrap();
    b.set_with_tags(b"profile:2", b"bob", MINUTE, &[b"user:2", b"profiles"]).unwrap();
    b.set_with_tags(b"avatar:1", b"png", MINUTE, &[b"user:1"]).unwrap();
    b.set(b"plain", b"stays", MINUTE).unwrap();
    for key in [&b"profile:1"[..], b"profile:2", b"avatar:1", b"plain"] {
        assert!(cache_near(&a, key).is_some());
    }
    b.invalidate_tags(&[b"user:1"]).unwrap();
    assert!(wait_until(DELIVERY, || value(&a, b"profile:1").is_none() && value(&a, b"avatar:1").is_none()));
    assert_eq!(cache_near(&a, b"profile:2").as_deref(), Some(&b"bob"[..]), "other tags are untouched");

    in_another_process(&server, "invalidate", "profiles", "");
    assert!(wait_until(DELIVERY, || value(&a, b"profile:2").is_none()), "A never saw the other process's invalidation");
    assert_eq!(cache_near(&a, b"plain").as_deref(), Some(&b"stays"[..]));
    assert!(a.get_many(&[b"profile:1", b"profile:2", b"avatar:1"]).unwrap().iter().all(Option::is_none));
}

/// Commands the server ran since its statistics were reset, by name, leaving
/// out the tracking connection's pings and the statistics' own commands.
fn commands_run(server: &RedisServer) -> Vec<(String, u64)> {
    let stats = server.command(&["INFO", "commandstats"]).unwrap();
    stats
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            let calls = rest.split(',').next()?.parse().ok()?;
            (!["ping", "info", "config"].contains(&name.split('|').next()?)).then(|| (name.to_string(), calls))
        })
        .collect()
}

#[test]
fn tagged_near_hits_ask_the_server_nothing_and_follow_their_tags() {
    for mode in MODES {
        tagged_near_hits_ask_the_server_nothing_and_follow_their_tags_in(mode);
    }
}

fn tagged_near_hits_ask_the_server_nothing_and_follow_their_tags_in(mode: &str) {
    let server = RedisServer::start();
    let (a, b) = (near(&server, mode), plain(&server));
    b.set_with_tags(b"profile:1", b"ada", MINUTE, &[b"user:1", b"profiles"]).unwrap();
    b.set_with_tags(b"avatar:1", b"png", MINUTE, &[b"user:1"]).unwrap();
    b.set_with_tags(b"profile:2", b"bob", MINUTE, &[b"user:2", b"profiles"]).unwrap();
    for key in [&b"profile:1"[..], b"avatar:1", b"profile:2"] {
        assert!(cache_near(&a, key).is_some());
    }
    assert!(server.command(&["CONFIG", "RESETSTAT"]).unwrap().starts_with("+OK"));
    let before = a.stats().near_hits;
    for _ in 0..1000 {
        assert_eq!(value(&a, b"profile:1").as_deref(), Some(&b"ada"[..]));
        assert_eq!(a.get_many(&[b"avatar:1", b"profile:2"]).unwrap(), vec![Some(b"png".to_vec()), Some(b"bob".to_vec())]);
    }
    assert_eq!(a.stats().near_hits, before + 3000);
    assert_eq!(commands_run(&server), vec![], "tagged near hits sent the server nothing");

    in_another_process(&server, "invalidate", "user:1", "");
    assert!(
        wait_until(DELIVERY, || a.stats().near_entries == 1),
        "the other process's invalidation of user:1 never dropped both entries carrying it: {:?}",
        a.stats()
    );
    assert_eq!(a.get_many(&[b"profile:1", b"avatar:1"]).unwrap(), vec![None, None]);
    assert!(near_hit(&a, b"profile:2"), "an entry without the tag is still held");
}

#[test]
fn this_handle_reads_its_own_writes_at_once() {
    for mode in MODES {
        this_handle_reads_its_own_writes_at_once_in(mode);
    }
}

fn this_handle_reads_its_own_writes_at_once_in(mode: &str) {
    let server = RedisServer::start();
    let a = near(&server, mode);
    let cached = |key: &[u8], expected: &[u8]| {
        assert_eq!(cache_near(&a, key).as_deref(), Some(expected));
    };
    a.set(b"k", b"1", MINUTE).unwrap();
    cached(b"k", b"1");
    a.set(b"k", b"2", MINUTE).unwrap();
    assert_eq!(value(&a, b"k").as_deref(), Some(&b"2"[..]), "set");
    cached(b"k", b"2");
    a.increment(b"k", 5, MINUTE).unwrap();
    assert_eq!(value(&a, b"k").as_deref(), Some(&b"7"[..]), "increment");
    cached(b"k", b"7");
    a.set_many(&[(b"k", b"8")], MINUTE).unwrap();
    assert_eq!(a.get_many(&[b"k"]).unwrap(), vec![Some(b"8".to_vec())], "set_many");
    cached(b"k", b"8");
    a.set_with_tags(b"k", b"9", MINUTE, &[b"t"]).unwrap();
    assert_eq!(value(&a, b"k").as_deref(), Some(&b"9"[..]), "a tagged set");
    cached(b"k", b"9");
    a.invalidate_tags(&[b"t"]).unwrap();
    assert_eq!(value(&a, b"k"), None, "invalidate_tags");
    a.set(b"k", b"10", MINUTE).unwrap();
    cached(b"k", b"10");
    assert!(a.expire(b"k", Ttl::After(Duration::from_millis(1))).unwrap());
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(value(&a, b"k"), None, "expire");
    a.set(b"k", b"11", MINUTE).unwrap();
    cached(b"k", b"11");
    assert!(a.delete(b"k").unwrap());
    assert_eq!(value(&a, b"k"), None, "delete");
    a.set(b"k", b"12", MINUTE).unwrap();
    cached(b"k", b"12");
    a.clear(None).unwrap();
    assert_eq!(value(&a, b"k"), None, "clear");
}

#[test]
fn a_near_copy_never_outlives_the_server_ttl() {
    let server = RedisServer::start();
    let a = near(&server, "near_cache=1000");
    let ttl = Duration::from_millis(1000);
    a.set(b"short", b"v", Ttl::After(ttl)).unwrap();
    let stored = Instant::now();
    assert!(cache_near(&a, b"short").is_some());
    std::thread::sleep(ttl.saturating_sub(stored.elapsed()) + Duration::from_millis(1));
    assert_eq!(value(&a, b"short"), None, "the copy expires with the server's entry, not after");
}

#[test]
fn nothing_written_before_a_server_restart_is_served_after_it() {
    let mut server = RedisServer::start();
    let a = near(&server, "near_cache=1000");
    a.set(b"k", b"before", MINUTE).unwrap();
    a.set_with_tags(b"tagged", b"before", MINUTE, &[b"t"]).unwrap();
    assert!(cache_near(&a, b"k").is_some() && cache_near(&a, b"tagged").is_some());
    let flushes = a.stats().near_flushes;

    server.kill();
    server.restart();
    // A change A could not hear about: written by another client before A's tracking is back.
    let b = plain(&server);
    b.set(b"k", b"after", MINUTE).unwrap();
    let deadline = Instant::now() + DELIVERY;
    let mut last = None;
    while Instant::now() < deadline {
        match a.get(b"k") {
            Ok(found) => {
                assert_ne!(found.as_deref(), Some(&b"before"[..]), "a value from before the restart was served");
                last = found;
                if last.is_some() && a.get(b"tagged").unwrap().is_none() {
                    break;
                }
            }
            Err(error) => assert!(matches!(error.kind, ErrorKind::Connection | ErrorKind::Timeout), "{error}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(last.as_deref(), Some(&b"after"[..]));
    assert_eq!(a.get(b"tagged").unwrap(), None);
    assert!(a.stats().near_flushes > flushes, "the restart emptied the near cache");
    assert!(wait_until(DELIVERY, || near_hit(&a, b"k")), "the near cache works again once tracking is back");
}

#[test]
fn losing_the_tracking_connection_empties_the_near_cache() {
    for mode in MODES {
        losing_the_tracking_connection_empties_the_near_cache_in(mode);
    }
}

fn losing_the_tracking_connection_empties_the_near_cache_in(mode: &str) {
    let server = RedisServer::start();
    let (a, b) = (near(&server, mode), plain(&server));
    b.set(b"k", b"one", MINUTE).unwrap();
    assert!(cache_near(&a, b"k").is_some());
    let flushes = a.stats().near_flushes;
    let list = server.command(&["CLIENT", "LIST"]).unwrap();
    let id = list
        .lines()
        .find(|line| line.contains("name=rcache-near"))
        .and_then(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")))
        .expect("the tracking connection is named rcache-near")
        .to_string();
    assert!(server.command(&["CLIENT", "KILL", "ID", &id]).unwrap().starts_with(":1"));
    assert!(wait_until(DELIVERY, || a.stats().near_flushes > flushes), "the lost connection was not noticed");
    b.set(b"k", b"two", MINUTE).unwrap();
    assert_eq!(value(&a, b"k").as_deref(), Some(&b"two"[..]));
    assert!(wait_until(DELIVERY, || near_hit(&a, b"k")), "the near cache works again once tracking is back");
    assert_eq!(value(&a, b"k").as_deref(), Some(&b"two"[..]));
}

#[test]
fn a_silent_tracking_connection_stops_near_hits_once_the_staleness_bound_passes() {
    for mode in MODES {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.port);
        // A response timeout far longer than the test: only the staleness bound can end the stale copy.
        let patient = Options { response_timeout: Duration::from_secs(300), ..options() };
        let url = format!("{}?{mode}&near_cache_staleness_ms=300", proxy.url());
        let (a, b) = (Cache::connect(Some(&url), patient).unwrap(), plain(&server));
        b.set(b"k", b"before", MINUTE).unwrap();
        assert_eq!(cache_near(&a, b"k").as_deref(), Some(&b"before"[..]));
        let flushes = a.stats().near_flushes;
        // Holds the reply to the tracking connection's next ping, and every report after it.
        proxy.arm(Fault::DelayReply(Duration::from_secs(120)), Trigger::command("PING"));
        assert!(proxy.wait_fired(DELIVERY).is_some(), "the tracking connection never pinged");
        b.set(b"k", b"after", MINUTE).unwrap();
        assert!(
            wait_until(Duration::from_secs(20), || value(&a, b"k").as_deref() == Some(b"after")),
            "{mode}: the copy from before the silence was still served: {:?}",
            a.stats()
        );
        assert!(a.stats().near_flushes > flushes, "{mode}: the silence emptied the near cache");
        assert!(wait_until(DELIVERY, || near_hit(&a, b"k")), "{mode}: the near cache works again on a new connection");
        assert_eq!(value(&a, b"k").as_deref(), Some(&b"after"[..]));
    }
}

#[test]
fn broadcast_mode_reports_changes_of_keys_never_read() {
    let server = RedisServer::start();
    let (a, b) = (near(&server, "near_cache=1000&near_cache_mode=bcast"), plain(&server));
    let other_namespace =
        Cache::connect(Some(&server.url()), Options { key_prefix: b"elsewhere:".to_vec(), ..Options::default() }).unwrap();
    let before = a.stats().near_invalidations;
    b.set(b"never-read", b"v", MINUTE).unwrap();
    assert!(wait_until(DELIVERY, || a.stats().near_invalidations > before), "no report of a key under the prefix");
    let reported = a.stats().near_invalidations;
    for index in 0..100 {
        other_namespace.set(format!("k{index}").as_bytes(), b"v", MINUTE).unwrap();
    }
    b.set(b"marker", b"v", MINUTE).unwrap();
    assert!(wait_until(DELIVERY, || a.stats().near_invalidations > reported));
    assert_eq!(a.stats().near_invalidations, reported + 1, "keys outside the prefix are not reported");

    // A tagged near miss runs the read script twice (it stops to name the tag
    // keys, then reads with them declared), then the tag is held and reported.
    b.set_with_tags(b"tagged", b"v", MINUTE, &[b"t"]).unwrap();
    assert_eq!(value(&a, b"never-read").as_deref(), Some(&b"v"[..]), "the read script is loaded");
    assert!(server.command(&["CONFIG", "RESETSTAT"]).unwrap().starts_with("+OK"));
    assert_eq!(value(&a, b"tagged").as_deref(), Some(&b"v"[..]));
    let scripts_run = commands_run(&server).into_iter().find(|(name, _)| name == "evalsha");
    assert_eq!(scripts_run, Some(("evalsha".to_string(), 2)), "the tagged entry is read with its tag keys declared");
    assert!(near_hit(&a, b"tagged"));
    b.invalidate_tags(&[b"t"]).unwrap();
    assert!(wait_until(DELIVERY, || value(&a, b"tagged").is_none()), "the invalidated tag never reached A");
}

#[test]
fn the_near_cache_stays_within_its_bounds() {
    let server = RedisServer::start();
    let (a, b) = (near(&server, "near_cache=100&near_cache_bytes=20000"), plain(&server));
    for index in 0..500u32 {
        b.set(format!("key{index}").as_bytes(), &[7u8; 100], MINUTE).unwrap();
    }
    for index in 0..500u32 {
        assert!(value(&a, format!("key{index}").as_bytes()).is_some());
        let stats = a.stats();
        assert!(stats.near_entries <= 100 && stats.near_bytes <= 20_000, "{stats:?}");
    }
    let stats = a.stats();
    assert!(stats.near_evictions >= 350, "{stats:?}");
    assert!(stats.near_bytes > 10_000, "the bound is used, not just kept: {stats:?}");
    assert!(cache_near(&a, b"key499").is_some(), "the most recent entry is held");
    b.set(b"huge", &vec![0u8; 50_000], MINUTE).unwrap();
    assert_eq!(value(&a, b"huge").map(|value| value.len()), Some(50_000), "too large to hold, still read");
    let before = a.stats();
    assert_eq!(value(&a, b"huge").map(|value| value.len()), Some(50_000));
    assert_eq!(a.stats().near_hits, before.near_hits, "a value over the bound is not held");
}

#[test]
fn get_many_and_get_or_compute_are_served_near() {
    for mode in MODES {
        get_many_and_get_or_compute_are_served_near_in(mode);
    }
}

fn get_many_and_get_or_compute_are_served_near_in(mode: &str) {
    let server = RedisServer::start();
    let (a, b) = (near(&server, mode), plain(&server));
    b.set_many(&[(b"x", b"1"), (b"y", b"2")], MINUTE).unwrap();
    assert_eq!(a.get_many(&[b"x", b"y", b"z"]).unwrap(), vec![Some(b"1".to_vec()), Some(b"2".to_vec()), None]);
    assert!(wait_until(DELIVERY, || {
        let before = a.stats().near_hits;
        assert_eq!(a.get_many(&[b"y", b"x"]).unwrap(), vec![Some(b"2".to_vec()), Some(b"1".to_vec())]);
        a.stats().near_hits == before + 2
    }));

    let options = ComputeOptions { ttl: MINUTE, tags: &[b"t"], ..ComputeOptions::default() };
    let computed = a.get_or_compute(b"c", &options, || Ok::<_, ()>(b"computed".to_vec())).unwrap();
    assert_eq!(computed, b"computed");
    // Filled by a hit read from the server once no report of the write is in flight.
    let answered_near = || {
        let before = a.stats().near_hits;
        let hit = a.get_or_compute(b"c", &options, || -> Result<Vec<u8>, ()> { panic!("a hit") }).unwrap();
        assert_eq!(hit, b"computed");
        a.stats().near_hits == before + 1
    };
    assert!(wait_until(DELIVERY, answered_near), "the get-or-compute fast path is a near hit");
    b.invalidate_tags(&[b"t"]).unwrap();
    assert!(wait_until(DELIVERY, || {
        a.get_or_compute(b"c", &options, || Ok::<_, ()>(b"again".to_vec())).unwrap() == b"again"
    }));
}

#[test]
fn readers_racing_a_writer_converge_on_the_last_write() {
    for mode in MODES {
        readers_racing_a_writer_converge_on_the_last_write_in(mode);
    }
}

fn readers_racing_a_writer_converge_on_the_last_write_in(mode: &str) {
    let server = RedisServer::start();
    let (a, writer) = (near(&server, mode), plain(&server));
    writer.set(b"hot", b"0", MINUTE).unwrap();
    const READERS: usize = 4;
    let last = 3000u64;
    let stop = AtomicBool::new(false);
    let final_value = last.to_string().into_bytes();
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                scope.spawn(|| {
                    // Each reader sees the writes in order: the single tracking
                    // connection delivers a change before any later read.
                    let mut seen = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let value: u64 = String::from_utf8(value(&a, b"hot").unwrap()).unwrap().parse().unwrap();
                        assert!(value >= seen, "read {value} after {seen}");
                        seen = value;
                    }
                    let deadline = Instant::now() + DELIVERY;
                    loop {
                        let current = value(&a, b"hot").unwrap();
                        if current == final_value {
                            return;
                        }
                        assert!(Instant::now() < deadline, "stuck at {:?}", String::from_utf8_lossy(&current));
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        for sequence in 1..=last {
            writer.set(b"hot", sequence.to_string().as_bytes(), MINUTE).unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        for reader in readers {
            reader.join().unwrap();
        }
    });
    // Under a writer that never pauses, broadcast mode may refuse every fill
    // (each miss waits one more round trip, in which the next write is reported).
    assert!(a.stats().near_invalidations > 0);
    assert!(wait_until(DELIVERY, || near_hit(&a, b"hot")), "once the writes stop, the key is served near");
}

#[test]
fn memory_urls_take_no_near_cache() {
    let refused = Cache::connect(Some("memory://?near_cache=10"), Options::default()).err().unwrap();
    assert_eq!(refused.kind, ErrorKind::InvalidArgument);
    assert!(refused.message.contains("near"), "{}", refused.message);
    let bad = Cache::connect(Some("redis://127.0.0.1:1/0?near_cache=lots"), Options::default()).err().unwrap();
    assert_eq!(bad.kind, ErrorKind::InvalidArgument);
}
