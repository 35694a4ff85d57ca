//! Real faults under a Redis client: the server killed, restarted, paused,
//! unreachable, or holding data of another type.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rcache::{Cache, ErrorKind, Options, Ttl};
use support::proxy::FaultProxy;
use support::{RedisServer, wait_until};

fn quick_timeouts() -> Options {
    Options { connect_timeout: Duration::from_millis(300), response_timeout: Duration::from_millis(300), ..Options::default() }
}

const MINUTE: Ttl = Ttl::After(Duration::from_secs(60));

#[test]
fn an_unreachable_server_fails_within_the_connect_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let error = Cache::connect(Some(&format!("redis://127.0.0.1:{port}")), quick_timeouts()).err().unwrap();
    assert_eq!(error.kind, ErrorKind::Connection, "{error}");
    assert!(error.message.contains(&port.to_string()), "the message names the server: {error}");
}

#[test]
fn a_server_that_accepts_but_never_answers_times_out_on_connect() {
    let server = RedisServer::start();
    server.pause();
    let error = Cache::connect(Some(&server.url()), quick_timeouts()).err().unwrap();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    server.resume();
}

#[test]
fn a_paused_server_gives_timeouts_and_the_client_recovers_when_it_resumes() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), quick_timeouts()).unwrap();
    cache.set(b"k", b"before", MINUTE).unwrap();
    server.pause();
    // A paused server never answers: only the configured timeout ends the call.
    let error = cache.get(b"k").unwrap_err();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    server.resume();
    assert!(wait_until(Duration::from_secs(10), || cache.get(b"k").ok().flatten().is_some()));
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"before"[..]));
}

#[test]
fn a_killed_server_gives_errors_quickly_and_a_restarted_one_is_used_again() {
    let mut server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), quick_timeouts()).unwrap();
    cache.set(b"k", b"v", MINUTE).unwrap();
    server.kill();
    for _ in 0..3 {
        let error = cache.get(b"k").unwrap_err();
        assert!(matches!(error.kind, ErrorKind::Connection | ErrorKind::Timeout), "{error}");
    }
    server.restart();
    assert!(wait_until(Duration::from_secs(10), || cache.set(b"k", b"again", MINUTE).is_ok()));
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"again"[..]));
}

#[test]
fn a_restart_under_load_never_mixes_up_replies() {
    let mut server = RedisServer::start();
    let options = Options { response_timeout: Duration::from_millis(500), ..quick_timeouts() };
    let cache = Cache::connect(Some(&server.url()), options).unwrap();
    let stop = AtomicBool::new(false);
    let successes = AtomicU64::new(0);
    let failures = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let (cache, stop, successes, failures) = (&cache, &stop, &successes, &failures);
            scope.spawn(move || {
                let key = format!("thread{thread}");
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let value = format!("{thread}:{round}");
                    let stored = cache.set(key.as_bytes(), value.as_bytes(), MINUTE).is_ok();
                    match cache.get(key.as_bytes()) {
                        // After a restart the entry may be gone, never someone else's.
                        Ok(Some(seen)) => {
                            let seen = String::from_utf8(seen).unwrap();
                            assert!(seen.starts_with(&format!("{thread}:")), "thread {thread} read {seen}");
                            if stored {
                                assert_eq!(seen, value);
                            }
                            successes.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => {}
                        Err(error) => {
                            assert!(matches!(error.kind, ErrorKind::Connection | ErrorKind::Timeout), "{error}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        server.restart();
        let before = successes.load(Ordering::Relaxed);
        assert!(
            wait_until(Duration::from_secs(10), || successes.load(Ordering::Relaxed) > before + 100),
            "the client recovers by itself after the restart"
        );
        stop.store(true, Ordering::Relaxed);
    });
    assert!(successes.load(Ordering::Relaxed) > 0);
}

#[test]
fn data_of_another_type_is_reported_and_left_alone() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), Options::default()).unwrap();
    assert_eq!(server.command(&["HSET", "hash", "field", "value"]).as_deref(), Some(":1\r\n"));
    assert_eq!(cache.get(b"hash").unwrap_err().kind, ErrorKind::WrongType);
    assert_eq!(cache.increment(b"hash", 1, MINUTE).unwrap_err().kind, ErrorKind::WrongType);
    assert_eq!(cache.get_many(&[b"hash"]).unwrap(), vec![None], "MGET reads other types as misses");
    assert!(cache.exists(b"hash").unwrap());
    assert_eq!(server.command(&["HGET", "hash", "field"]).as_deref(), Some("$5\r\nvalue\r\n"));
    assert_eq!(
        cache.hash_get(b"hash").unwrap(),
        Some(vec![(b"field".to_vec(), b"value".to_vec())]),
        "any client's hash is a record"
    );

    // Other types are listed, and the record operations refuse them without touching them.
    assert_eq!(server.command(&["RPUSH", "list", "a"]).as_deref(), Some(":1\r\n"));
    assert_eq!(cache.hash_get(b"list").unwrap_err().kind, ErrorKind::WrongType);
    let written = cache.hash_set(b"list", &[(b"f", b"v")], MINUTE, rcache::WriteCondition::Always);
    assert_eq!(written.unwrap_err().kind, ErrorKind::WrongType);
    assert_eq!(cache.compare_and_set(b"list", b"a", b"b", MINUTE).unwrap_err().kind, ErrorKind::WrongType);
    assert!(!cache.unlock(b"list", b"a").unwrap(), "a list is no lock");
    assert_eq!(cache.keys(None).unwrap(), vec![b"hash".to_vec(), b"list".to_vec()]);
    assert_eq!(server.command(&["LLEN", "list"]).as_deref(), Some(":1\r\n"));
}

#[test]
fn the_namespace_prefix_isolates_clients_sharing_a_database() {
    let server = RedisServer::start();
    let connect = |prefix: &str| {
        Cache::connect(Some(&server.url()), Options { key_prefix: prefix.as_bytes().to_vec(), ..Options::default() }).unwrap()
    };
    let (first, second) = (connect("app1:"), connect("app2:"));
    first.set(b"k", b"one", MINUTE).unwrap();
    second.set(b"k", b"two", MINUTE).unwrap();
    assert_eq!(first.get(b"k").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(second.get(b"k").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(server.command(&["GET", "app1:k"]).as_deref(), Some("$3\r\none\r\n"));
}

#[test]
fn a_unix_socket_url_reaches_the_server() {
    let server = RedisServer::start();
    let socket = std::env::temp_dir().join(format!("rcache-{}.sock", server.port));
    let socket_text = socket.to_str().unwrap();
    let reply = server.command(&["CONFIG", "SET", "unixsocket", socket_text]);
    if reply.as_deref() != Some("+OK\r\n") {
        // Redis 7 refuses to change unixsocket at run time; start a second server for it.
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--unixsocket", socket_text, "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_until(Duration::from_secs(10), || socket.exists()));
        let result = std::panic::catch_unwind(|| {
            let cache = Cache::connect(Some(&format!("unix://{socket_text}?db=2")), Options::default()).unwrap();
            cache.set(b"k", b"v", MINUTE).unwrap();
            assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        });
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&socket);
        result.unwrap();
    }
}

#[test]
fn an_acl_user_is_confined_to_its_keys() {
    let server = RedisServer::start();
    let reply = server.command(&["ACL", "SETUSER", "app", "on", ">secret", "~app:*", "+@all"]);
    assert_eq!(reply.as_deref(), Some("+OK\r\n"));
    let url = format!("redis://app:secret@127.0.0.1:{}/0", server.port);

    let confined = Cache::connect(Some(&url), Options { key_prefix: b"app:".to_vec(), ..Options::default() }).unwrap();
    confined.set(b"k", b"v", MINUTE).unwrap();
    assert_eq!(confined.increment(b"n", 1, MINUTE).unwrap(), 1);
    assert_eq!(confined.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));

    let outside = Cache::connect(Some(&url), Options::default()).unwrap();
    let refused = outside.set(b"k", b"v", MINUTE).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Server);
    assert!(refused.message.contains("NOPERM") || refused.message.contains("permission"), "{refused}");

    let wrong_password = format!("redis://app:wrong@127.0.0.1:{}/0", server.port);
    let error = Cache::connect(Some(&wrong_password), Options::default()).err().unwrap();
    assert_eq!(error.kind, ErrorKind::Connection, "{error}");
    assert!(!error.message.contains("wrong"), "the password never appears in messages: {error}");
}

#[test]
fn the_circuit_breaker_skips_a_dead_server_and_recovers_by_itself() {
    let mut server = RedisServer::start();
    let options = Options { breaker_threshold: 3, breaker_cooldown: Duration::from_millis(300), ..quick_timeouts() };
    let cache = Cache::connect(Some(&server.url()), options).unwrap();
    server.kill();
    for _ in 0..3 {
        assert_eq!(cache.get(b"k").unwrap_err().kind, ErrorKind::Connection);
    }
    let skipped = cache.get(b"k").unwrap_err();
    assert_eq!(skipped.kind, ErrorKind::Connection);
    assert!(skipped.message.contains("circuit breaker"), "{skipped}");
    let stats = cache.stats();
    assert_eq!(stats.breaker_trips, 1);
    assert!(stats.breaker_skips >= 1);

    server.restart();
    assert!(wait_until(Duration::from_secs(10), || cache.set(b"k", b"back", MINUTE).is_ok()));
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"back"[..]));
}

#[test]
fn fail_open_keeps_the_application_up_while_the_server_is_down() {
    let mut server = RedisServer::start();
    let options = Options { fail_open: true, ..quick_timeouts() };
    let cache = Cache::connect(Some(&server.url()), options).unwrap();
    cache.set(b"k", b"v", MINUTE).unwrap();
    server.kill();

    assert_eq!(cache.get(b"k").unwrap(), None, "a read is a miss");
    cache.set(b"k", b"dropped", MINUTE).unwrap();
    cache.set_with_tags(b"t", b"dropped", MINUTE, &[b"tag"]).unwrap();
    assert_eq!(cache.get_many(&[b"a", b"b"]).unwrap(), vec![None, None]);
    let computed = cache.get_or_compute(b"k", &rcache::ComputeOptions::default(), || Ok::<_, ()>(b"computed".to_vec()));
    assert_eq!(computed.unwrap(), b"computed");
    assert_eq!(cache.get_with_ttl(b"k").unwrap(), None);
    assert_eq!(cache.hash_get(b"h").unwrap(), None);
    // Losing these silently could serve stale data later: they still fail.
    assert!(cache.delete(b"k").is_err());
    assert!(cache.invalidate_tags(&[b"tag"]).is_err());
    assert!(cache.increment(b"n", 1, MINUTE).is_err());
    // The caller acts on these answers: they fail rather than guess.
    assert!(cache.compare_and_set(b"k", b"v", b"w", MINUTE).is_err());
    assert!(cache.hash_set(b"h", &[(b"f", b"v")], MINUTE, rcache::WriteCondition::Always).is_err());
    assert!(cache.lock(b"l", b"me", Duration::from_secs(1)).is_err());
    assert!(cache.keys(None).is_err());
    assert!(cache.server_info().is_err());
    assert!(cache.stats().fail_opens >= 7);

    server.restart();
    assert!(
        wait_until(Duration::from_secs(10), || cache.set(b"k", b"again", MINUTE).is_ok() && cache.get(b"k").unwrap().is_some())
    );
}

#[test]
fn fail_open_answers_a_stalled_server_within_the_timeouts() {
    let server = RedisServer::start();
    let options = Options { fail_open: true, ..quick_timeouts() };
    let cache = Cache::connect(Some(&server.url()), options).unwrap();
    server.pause();
    // The paused server never answers: a miss proves the timeout answered the call.
    assert_eq!(cache.get(b"k").unwrap(), None);
    server.resume();
}

#[test]
fn a_server_busy_in_debug_sleep_gives_timeouts_then_answers_again() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), quick_timeouts()).unwrap();
    cache.set(b"k", b"v", MINUTE).unwrap();
    let port = server.port;
    let sleeper = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(&mut stream, b"DEBUG SLEEP 1.5\r\n").unwrap();
        let mut reply = [0u8; 5];
        std::io::Read::read_exact(&mut stream, &mut reply).unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    // Bounded by the timeouts, not by the sleep: waiting out the sleep would have read the value.
    assert_eq!(cache.get(b"k").unwrap_err().kind, ErrorKind::Timeout);
    sleeper.join().unwrap();
    assert!(wait_until(Duration::from_secs(5), || cache.get(b"k").ok().flatten().is_some()));
}

#[test]
fn the_client_recovers_within_a_second_of_the_server_returning() {
    let mut server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), quick_timeouts()).unwrap();
    server.kill();
    for _ in 0..10 {
        assert!(cache.get(b"k").is_err());
    }
    assert!(cache.stats().breaker_trips >= 1, "the breaker is open");
    server.restart();
    assert!(wait_until(Duration::from_secs(5), || cache.set(b"k", b"v", MINUTE).is_ok()), "the breaker closes again");
}

/// Options for values of tens of MiB against quick timeouts.
fn large_values() -> Options {
    Options { max_value_bytes: 64 * 1024 * 1024, ..quick_timeouts() }
}

#[test]
fn a_large_set_cut_off_by_the_deadline_is_not_stored_and_holds_up_no_later_call() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), large_values()).unwrap();
    cache.set(b"small", b"v", MINUTE).unwrap();
    // Far more than the socket buffers hold: a paused server leaves most of it unsent.
    let large = vec![b'x'; 48 * 1024 * 1024];
    server.pause();
    let error = cache.set(b"large", &large, MINUTE).unwrap_err();
    server.resume();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(error.message.contains("may have been applied"), "the message says the write may have happened: {error}");
    // Its connection was closed: the server discarded the partial request,
    // and the next call does not wait behind the rest of it.
    assert_eq!(cache.get(b"small").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(cache.get(b"large").unwrap().map(|value| value.len()), None);
    assert_eq!(server.command(&["EXISTS", "large"]).as_deref(), Some(":0\r\n"));
    // The value is supported at timeouts that leave time to send it, as a
    // command, in a transaction and as a script argument.
    let patient = Options { response_timeout: Duration::from_secs(30), ..large_values() };
    let patient = Cache::connect(Some(&server.url()), patient).unwrap();
    patient.set(b"large", &large, MINUTE).unwrap();
    assert_eq!(patient.get(b"large").unwrap().map(|value| value.len()), Some(large.len()));
    let half = &large[..large.len() / 2];
    patient.set_many(&[(b"many1", half), (b"many2", half)], MINUTE).unwrap();
    patient.set_with_tags(b"tagged", half, MINUTE, &[b"t"]).unwrap();
    patient.set(b"large", half, Ttl::Keep).unwrap();
    for key in [&b"many1"[..], b"many2", b"tagged", b"large"] {
        assert_eq!(patient.get(key).unwrap().map(|value| value.len()), Some(half.len()), "{}", String::from_utf8_lossy(key));
    }
}

#[test]
fn a_large_set_still_moving_at_the_deadline_is_cut_off_and_not_stored() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port);
    let cache = Cache::connect(Some(&proxy.url()), large_values()).unwrap();
    cache.set(b"small", b"v", MINUTE).unwrap();
    // The proxy takes the request about 16 KiB per 2 ms, 8 MB/s: every wait
    // for room to send is short, but the whole value needs seconds, many
    // times the deadline, beyond what the socket buffers hold.
    proxy.slow_requests(Duration::from_millis(2));
    let large = vec![b'x'; 48 * 1024 * 1024];
    let error = cache.set(b"large", &large, MINUTE).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(error.message.contains("may have been applied"), "{error}");
    // The connection was closed with the request unfinished: once the proxy
    // has read all that the client sent, it has less than the request, and
    // the server never had the value.
    proxy.slow_requests(Duration::ZERO);
    assert!(proxy.wait_idle(Duration::from_secs(30)), "the client closed its connection");
    assert!(proxy.request_bytes() < large.len() as u64, "only part of the request was sent");
    assert_eq!(server.command(&["EXISTS", "large"]).as_deref(), Some(":0\r\n"));
    // The next call, on a new connection, works.
    assert_eq!(cache.get(b"small").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(cache.get(b"large").unwrap(), None);
}

#[test]
fn a_set_that_times_out_after_reaching_the_server_says_it_may_have_been_stored() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), quick_timeouts()).unwrap();
    cache.set(b"k", b"before", MINUTE).unwrap();
    server.pause();
    let error = cache.set(b"k", b"after", MINUTE).unwrap_err();
    server.resume();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(error.message.contains("may have been applied"), "{error}");
    // The request reached the server whole: it ran once the server resumed, as the message warned.
    assert!(wait_until(Duration::from_secs(10), || cache.get(b"k").ok().flatten().as_deref() == Some(&b"after"[..])));
}

/// Connections one handle opens to one server (see docs/wire.md).
const MAX_CONNECTIONS: usize = 16;

#[test]
fn many_threads_share_a_bounded_set_of_connections_and_each_gets_its_own_replies() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), Options::default()).unwrap();
    let done = AtomicBool::new(false);
    let most_clients = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let clients: u64 = support::info(server.port, "clients")["connected_clients"].parse().unwrap();
                most_clients.fetch_max(clients, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let callers: Vec<_> = (0..40)
            .map(|thread| {
                let cache = &cache;
                scope.spawn(move || {
                    let key = format!("caller{thread}");
                    for round in 0..200 {
                        let value = format!("{thread}:{round}");
                        cache.set(key.as_bytes(), value.as_bytes(), MINUTE).unwrap();
                        assert_eq!(cache.get(key.as_bytes()).unwrap().as_deref(), Some(value.as_bytes()));
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        watcher.join().unwrap();
    });
    // The watcher's own connection is one of the clients the server counts.
    let most = most_clients.load(Ordering::Relaxed) as usize;
    assert!(most <= MAX_CONNECTIONS + 1, "at most {MAX_CONNECTIONS} connections, saw {most} clients");
    assert!(most > 2, "concurrent callers use connections of their own, saw {most} clients");
}

#[test]
fn callers_waiting_for_a_connection_give_up_at_their_deadline_and_recover() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), quick_timeouts()).unwrap();
    cache.set(b"k", b"v", MINUTE).unwrap();
    server.pause();
    // More callers than connections: those that find none free wait for one
    // until their deadline; every call ends with a timeout, none hangs.
    std::thread::scope(|scope| {
        let callers: Vec<_> = (0..MAX_CONNECTIONS + 8).map(|_| scope.spawn(|| cache.get(b"k"))).collect();
        for caller in callers {
            let error = caller.join().unwrap().unwrap_err();
            assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
        }
    });
    server.resume();
    assert!(wait_until(Duration::from_secs(10), || cache.get(b"k").ok().flatten().is_some()));
    std::thread::scope(|scope| {
        for _ in 0..MAX_CONNECTIONS + 8 {
            scope.spawn(|| assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"v"[..])));
        }
    });
}
