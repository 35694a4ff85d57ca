//! Sentinel failover under a running client: the primary killed, then
//! restarted (it comes back as a replica), and a failover asked of the
//! sentinels while the old primary stays up. Each test has its own group:
//! one primary, one replica, three sentinels. Then sentinels that lie: a
//! stale one listed first naming a former primary that still takes writes,
//! one naming a replica, and a lost reply that must not be resent. A near
//! cache follows both kinds of failover.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcache::{Cache, ErrorKind, Options, Ttl};
use support::{RedisServer, SentinelGroup, info, query, wait_until};

/// One failover at a time: two Sentinel groups failing over at once on two
/// CPUs slow each other's sentinels past the tests' bounds.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const MINUTE: Ttl = Ttl::After(Duration::from_secs(60));

fn connect(group: &SentinelGroup) -> Cache {
    let options = Options { key_prefix: b"app:".to_vec(), ..Options::default() };
    Cache::connect(Some(&group.url()), options).unwrap()
}

/// The connections a server has from clients, other than the one asking and
/// the sentinels' own (named `sentinel-<id>-cmd`).
fn other_clients(port: u16) -> Vec<String> {
    let list: String = query(port, redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("normal")).unwrap();
    list.lines()
        .filter(|line| !line.contains(" name=sentinel-") && !line.contains(" cmd=client|list "))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_killed_primary_is_replaced_and_never_written_to_again() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut group = SentinelGroup::start();
    let cache = connect(&group);
    let (old_primary, replica) = (group.primary.port, group.replica.port);
    assert_eq!(group.primary_port(), Some(old_primary));
    for index in 0..500 {
        cache.set(format!("before:{index}").as_bytes(), index.to_string().as_bytes(), MINUTE).unwrap();
    }
    // Writes acknowledged well before the kill have reached the replica
    // (replication is asynchronous: the last ones before a kill may not).
    assert!(wait_until(Duration::from_secs(5), || {
        info(replica, "replication").get("master_repl_offset") == info(old_primary, "replication").get("master_repl_offset")
    }));

    let stop = AtomicBool::new(false);
    let (succeeded, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let killed_at = std::sync::Mutex::new(None::<Instant>);
    let first_after = std::sync::Mutex::new(None::<Instant>);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (cache, stop, succeeded, failed, killed_at, first_after) =
                (&cache, &stop, &succeeded, &failed, &killed_at, &first_after);
            scope.spawn(move || {
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("load:{worker}");
                    match cache.set(key.as_bytes(), round.to_string().as_bytes(), MINUTE).and_then(|()| cache.get(key.as_bytes()))
                    {
                        Ok(read) => {
                            assert_eq!(read, Some(round.to_string().into_bytes()), "a worker reads its own last write");
                            succeeded.fetch_add(1, Ordering::Relaxed);
                            if killed_at.lock().unwrap().is_some() {
                                first_after.lock().unwrap().get_or_insert_with(Instant::now);
                            }
                        }
                        Err(error) => {
                            assert!(matches!(error.kind, rcache::ErrorKind::Connection | rcache::ErrorKind::Timeout), "{error}");
                            failed.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    round += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        *killed_at.lock().unwrap() = Some(Instant::now());
        group.primary.kill();
        let resumed = wait_until(Duration::from_secs(30), || first_after.lock().unwrap().is_some());
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        assert!(resumed, "operations resumed after the failover");
    });
    let downtime = first_after.lock().unwrap().unwrap() - killed_at.lock().unwrap().unwrap();
    eprintln!(
        "sentinel failover: first successful write {:.2} s after the kill; {} calls failed, {} succeeded",
        downtime.as_secs_f64(),
        failed.load(Ordering::Relaxed),
        succeeded.load(Ordering::Relaxed)
    );
    // The sentinel asked may learn of the promotion a moment after the one the client asked.
    assert!(wait_until(Duration::from_secs(10), || group.primary_port() == Some(replica)), "the sentinels promoted the replica");
    // Known limit: while the sentinels still disagree about the primary, a
    // call can fail once more with a connection error; none may read wrong.
    let mut late_failures = 0;
    for index in 0..500 {
        let key = format!("before:{index}");
        let value = loop {
            match cache.get(key.as_bytes()) {
                Err(error) if error.kind == rcache::ErrorKind::Connection && late_failures < 20 => {
                    late_failures += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => break other.unwrap(),
            }
        };
        assert_eq!(value, Some(index.to_string().into_bytes()), "before:{index}, written before the kill, survived");
    }
    eprintln!("calls that still failed after the promotion: {late_failures}");

    // The old primary comes back empty, believing it is a primary, until the
    // sentinels turn it into a replica of the new one.
    group.primary.restart();
    // Sentinels turn a returning old primary into a replica after watching it
    // for a while (usually 10-20 s; longer when the machine is busy).
    assert!(
        wait_until(Duration::from_secs(90), || info(old_primary, "replication").get("master_port") == Some(&replica.to_string())),
        "the old primary rejoined as a replica"
    );
    assert_eq!(info(old_primary, "replication")["role"], "slave");
    for index in 0..100 {
        cache.set(format!("after:{index}").as_bytes(), b"v", MINUTE).unwrap();
    }
    let on_new: Option<String> = query(replica, redis::cmd("GET").arg("app:after:99")).unwrap();
    assert_eq!(on_new.as_deref(), Some("v"), "writes land on the new primary");
    assert!(wait_until(Duration::from_secs(2), || other_clients(old_primary).is_empty()), "{:?}", other_clients(old_primary));
}

#[test]
fn a_failover_asked_of_the_sentinels_moves_writes_to_the_new_primary() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let group = SentinelGroup::start();
    let cache = connect(&group);
    let (old_primary, replica) = (group.primary.port, group.replica.port);
    cache.set(b"k", b"before", MINUTE).unwrap();
    // The old primary stays up: the client learns of the switch from
    // `+switch-master`, from the connections the sentinels close, or from a
    // READONLY reply, whichever comes first.
    let () = query(group.sentinels[0].port, redis::cmd("SENTINEL").arg("FAILOVER").arg(support::SERVICE)).unwrap();
    assert!(wait_until(Duration::from_secs(30), || group.primary_port() == Some(replica)));
    // The sentinels announced the switch; the old primary is still a
    // writable primary for a while (they demote it next), yet the client has
    // switched already.
    std::thread::sleep(Duration::from_millis(300));
    let old_still_primary = info(old_primary, "replication").get("role").map(String::as_str) == Some("master");
    cache.set(b"k", b"after", MINUTE).unwrap();
    let on_new: Option<String> = query(replica, redis::cmd("GET").arg("app:k")).unwrap();
    assert_eq!(on_new.as_deref(), Some("after"), "the first write after +switch-master lands on the new primary");
    eprintln!(
        "manual failover: switched on +switch-master while the old primary was {}",
        if old_still_primary { "still a primary" } else { "already a replica" }
    );
    // INFO may fail for a moment while the old primary turns into a replica.
    assert!(
        wait_until(Duration::from_secs(30), || info(old_primary, "replication").get("role").map(String::as_str) == Some("slave"))
    );
    for index in 0..50 {
        cache.set(format!("w{index}").as_bytes(), b"v", MINUTE).unwrap();
    }
    let on_new: Option<String> = query(replica, redis::cmd("GET").arg("app:w49")).unwrap();
    assert_eq!(on_new.as_deref(), Some("v"), "writes land on the new primary");
    assert!(wait_until(Duration::from_secs(2), || other_clients(old_primary).is_empty()), "{:?}", other_clients(old_primary));
}

/// Whether a server has a near-cache tracking connection (named `rcache-near`).
fn tracks_near(port: u16) -> bool {
    let list: redis::RedisResult<String> = query(port, redis::cmd("CLIENT").arg("LIST"));
    list.is_ok_and(|list| list.lines().any(|line| line.contains(" name=rcache-near ")))
}

/// A near-cache handle reads `k` without pause while `fail` makes the
/// sentinels fail over and another handle writes (see `support::near`).
fn a_near_reader_follows_the_failover(mut fail: impl FnMut(&mut SentinelGroup)) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut group = SentinelGroup::start();
    let (old_primary, new_primary) = (group.primary.port, group.replica.port);
    let options = Options { key_prefix: b"app:".to_vec(), ..Options::default() };
    let reader = Cache::connect(Some(&format!("{}?near_cache=1000", group.url())), options).unwrap();
    let writer = connect(&group);
    writer.set(b"k", b"before", MINUTE).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        info(new_primary, "replication").get("master_repl_offset") == info(old_primary, "replication").get("master_repl_offset")
    }));
    let near_hit = || {
        let before = reader.stats().near_hits;
        reader.get(b"k").unwrap().is_some() && reader.stats().near_hits > before
    };
    assert!(wait_until(Duration::from_secs(5), near_hit), "the near cache serves k before the failover");
    assert!(tracks_near(old_primary));

    let sentinels: Vec<u16> = group.sentinels.iter().map(|sentinel| sentinel.port).collect();
    let promoted = |sentinels: &[u16]| {
        sentinels.iter().all(|&port| {
            let address: redis::RedisResult<(String, u16)> =
                query(port, redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(support::SERVICE));
            address.is_ok_and(|(_, port)| port == new_primary)
        })
    };
    let (checked, near) = support::near::read_through(
        &reader,
        &writer,
        b"k",
        support::near::Scenario {
            fault: &mut || {
                fail(&mut group);
                assert!(
                    wait_until(Duration::from_secs(60), || promoted(&sentinels)),
                    "every sentinel names the promoted replica"
                );
            },
            landed: &|value| {
                let stored: redis::RedisResult<Option<Vec<u8>>> = query(new_primary, redis::cmd("GET").arg("app:k"));
                stored.is_ok_and(|stored| stored.as_deref() == Some(value))
            },
            tracking_back: &|| tracks_near(new_primary),
        },
    );
    let stats = reader.stats();
    eprintln!(
        "near reader through a failover: {checked} reads checked, {near} of them near hits; {} flushes",
        stats.near_flushes
    );
    assert!(stats.near_flushes >= 1, "{stats:?}");
}

#[test]
fn a_near_reader_follows_a_killed_primary() {
    a_near_reader_follows_the_failover(|group| group.primary.kill());
}

#[test]
fn a_near_reader_follows_a_failover_asked_of_the_sentinels() {
    a_near_reader_follows_the_failover(|group| {
        let () = query(group.sentinels[0].port, redis::cmd("SENTINEL").arg("FAILOVER").arg(support::SERVICE)).unwrap();
    });
}

/// A fake sentinel on a loopback port: it speaks enough RESP to name
/// `127.0.0.1:<primary>` as the primary of `support::SERVICE` with the given
/// config epoch, to the discovery commands of rcache and of the `redis`
/// crate's own Sentinel client alike. Without an epoch it refuses
/// `SENTINEL MASTER` as an ACL would.
struct FakeSentinel {
    port: u16,
    /// Connections accepted so far (a lookup that has its majority from the
    /// other sentinels may drop its question to this one unanswered).
    connections: Arc<AtomicUsize>,
    primary: Arc<AtomicU16>,
    /// Connections subscribed to `+switch-master`.
    subscribers: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl FakeSentinel {
    fn start(primary: u16, config_epoch: Option<u64>) -> FakeSentinel {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let primary = Arc::new(AtomicU16::new(primary));
        let subscribers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counter, named, subscribed) = (Arc::clone(&connections), Arc::clone(&primary), Arc::clone(&subscribers));
        // Lives until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::Relaxed);
                let (named, subscribed) = (Arc::clone(&named), Arc::clone(&subscribed));
                std::thread::spawn(move || serve(stream, &named, config_epoch, &subscribed));
            }
        });
        FakeSentinel { port, connections, primary, subscribers }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    fn subscribed(&self) -> bool {
        !self.subscribers.lock().unwrap().is_empty()
    }

    /// Names `primary` from now on and announces it with `+switch-master`.
    fn switch_to(&self, primary: u16) {
        let old = self.primary.swap(primary, Ordering::SeqCst);
        let payload = format!("{} 127.0.0.1 {old} 127.0.0.1 {primary}", support::SERVICE);
        let message = array(&[bulk("message"), bulk("+switch-master"), bulk(&payload)]);
        for subscriber in self.subscribers.lock().unwrap().iter_mut() {
            let _ = subscriber.write_all(message.as_bytes());
        }
    }
}

fn bulk(text: &str) -> String {
    format!("${}\r\n{text}\r\n", text.len())
}

fn array(items: &[String]) -> String {
    format!("*{}\r\n{}", items.len(), items.concat())
}

/// Answers one client's commands until it hangs up.
fn serve(stream: TcpStream, primary: &AtomicU16, config_epoch: Option<u64>, subscribers: &std::sync::Mutex<Vec<TcpStream>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let master = || {
        let primary = primary.load(Ordering::SeqCst);
        let fields = [
            ("name", support::SERVICE.to_string()),
            ("ip", "127.0.0.1".to_string()),
            ("port", primary.to_string()),
            ("flags", "master".to_string()),
            ("num-slaves", "1".to_string()),
            ("num-other-sentinels", "2".to_string()),
            ("quorum", "2".to_string()),
            ("config-epoch", config_epoch.unwrap_or(0).to_string()),
        ];
        array(&fields.iter().flat_map(|(name, value)| [bulk(name), bulk(value)]).collect::<Vec<_>>())
    };
    while let Some(command) = read_command(&mut reader) {
        let words: Vec<String> = command.iter().map(|word| word.to_ascii_uppercase()).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let reply = match words.as_slice() {
            ["PING", ..] => "+PONG\r\n".to_string(),
            ["CLIENT", ..] => "+OK\r\n".to_string(),
            ["ROLE"] => array(&[bulk("sentinel"), array(&[bulk(support::SERVICE)])]),
            ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", _] => {
                array(&[bulk("127.0.0.1"), bulk(&primary.load(Ordering::SeqCst).to_string())])
            }
            ["SUBSCRIBE", "+SWITCH-MASTER"] => {
                subscribers.lock().unwrap().push(writer.try_clone().unwrap());
                array(&[bulk("subscribe"), bulk("+switch-master"), ":1\r\n".to_string()])
            }
            ["SENTINEL", "MASTER", _] if config_epoch.is_none() => "-NOPERM this user has no permissions\r\n".to_string(),
            ["SENTINEL", "MASTER", _] => master(),
            ["SENTINEL", "MASTERS"] => array(&[master()]),
            _ => "-ERR unknown command\r\n".to_string(),
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// One RESP array of bulk strings; `None` at the end of the stream.
fn read_command(reader: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&read| read > 0)?;
    let count: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    (0..count)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let length: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
            let mut word = vec![0; length + 2];
            reader.read_exact(&mut word).ok()?;
            word.truncate(length);
            String::from_utf8(word).ok()
        })
        .collect()
}

fn sentinel_url(ports: &[u16]) -> String {
    let hosts: Vec<String> = ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
    format!("redis+sentinel://{}/{}/0", hosts.join(","), support::SERVICE)
}

fn role(port: u16) -> String {
    info(port, "replication").get("role").cloned().unwrap_or_default()
}

#[test]
fn a_stale_sentinel_listed_first_cannot_send_writes_to_a_former_primary() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let group = SentinelGroup::start();
    let (old_primary, new_primary) = (group.primary.port, group.replica.port);
    let old_epoch: u64 = {
        let master: std::collections::HashMap<String, String> =
            query(group.sentinels[0].port, redis::cmd("SENTINEL").arg("MASTER").arg(support::SERVICE)).unwrap();
        master["config-epoch"].parse().unwrap()
    };
    let () = query(group.sentinels[0].port, redis::cmd("SENTINEL").arg("FAILOVER").arg(support::SERVICE)).unwrap();
    let all_agree = || {
        group.sentinels.iter().all(|sentinel| {
            let address: redis::RedisResult<(String, u16)> =
                query(sentinel.port, redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(support::SERVICE));
            address.is_ok_and(|(_, port)| port == new_primary)
        })
    };
    assert!(wait_until(Duration::from_secs(60), all_agree), "the sentinels agree on the promoted replica");
    assert!(wait_until(Duration::from_secs(60), || role(old_primary) == "slave"), "the sentinels demoted the old primary");
    // A partition: the former primary takes writes again as a master, and
    // the sentinels (reset) no longer watch it, so none turns it back.
    let () = query(old_primary, redis::cmd("REPLICAOF").arg("NO").arg("ONE")).unwrap();
    for sentinel in &group.sentinels {
        let _: i64 = query(sentinel.port, redis::cmd("SENTINEL").arg("RESET").arg(support::SERVICE)).unwrap();
    }
    assert_eq!(role(old_primary), "master");

    // A stale sentinel, listed first, still names the old primary with the old epoch.
    let stale = FakeSentinel::start(old_primary, Some(old_epoch));
    let mut ports = vec![stale.port];
    ports.extend(group.sentinels.iter().map(|sentinel| sentinel.port));
    let cache =
        Cache::connect(Some(&sentinel_url(&ports)), Options { key_prefix: b"app:".to_vec(), ..Options::default() }).unwrap();
    for index in 0..100 {
        cache.set(format!("w{index}").as_bytes(), b"v", MINUTE).unwrap();
        assert_eq!(cache.increment(b"count", 1, MINUTE).unwrap(), index + 1);
    }
    assert!(stale.connections() > 0, "the client reached the stale sentinel");
    let on_old: Vec<String> = query(old_primary, redis::cmd("KEYS").arg("app:*")).unwrap();
    assert!(on_old.is_empty(), "writes reached the former primary: {on_old:?}");
    let on_new: Option<String> = query(new_primary, redis::cmd("GET").arg("app:w99")).unwrap();
    assert_eq!(on_new.as_deref(), Some("v"), "writes land on the primary the sentinels agree on");
    assert_eq!(role(old_primary), "master", "the former primary stayed a writable master throughout");
}

#[test]
fn a_replica_named_primary_is_refused() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    // Two of three sentinels name the replica, one the real primary: the
    // majority wins, the node it names answers ROLE as a replica, and no
    // minority answer is tried instead.
    let wrong = [FakeSentinel::start(replica.port, Some(7)), FakeSentinel::start(replica.port, Some(7))];
    // These two refuse `SENTINEL MASTER` (no epoch) yet still count.
    let right = [FakeSentinel::start(primary.port, None), FakeSentinel::start(primary.port, None)];
    let url = sentinel_url(&[wrong[0].port, wrong[1].port, right[0].port]);
    let error = Cache::connect(Some(&url), Options::default()).err().expect("a replica is not used as the primary");
    assert_eq!(error.kind, ErrorKind::Connection, "{error}");
    assert!(error.message.contains(&format!("127.0.0.1:{}", replica.port)) && error.message.contains("replica"), "{error}");
    // Named by a majority, the real primary is used, whatever the epochs.
    let cache = Cache::connect(Some(&sentinel_url(&[wrong[0].port, right[0].port, right[1].port])), Options::default()).unwrap();
    cache.set(b"k", b"v", MINUTE).unwrap();
    let on_primary: Option<String> = query(primary.port, redis::cmd("GET").arg("k")).unwrap();
    assert_eq!(on_primary.as_deref(), Some("v"));
}

#[test]
fn a_call_whose_reply_is_lost_is_not_sent_again() {
    let primary = RedisServer::start();
    let sentinel = FakeSentinel::start(primary.port, Some(1));
    let options = Options {
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let cache = Cache::connect(Some(&sentinel_url(&[sentinel.port])), options).unwrap();
    assert_eq!(cache.increment(b"count", 1, MINUTE).unwrap(), 1);
    // The increment reaches the paused primary's socket and runs when it
    // resumes; its reply comes too late. The lookup that follows names the
    // same primary, which does not answer ROLE either.
    primary.pause();
    let lost = cache.increment(b"count", 1, MINUTE);
    let read = cache.get(b"count");
    primary.resume();
    let error = lost.expect_err("no reply from a paused primary");
    assert_eq!(error.kind, ErrorKind::UnknownOutcome, "{error}");
    assert!(matches!(read.map_err(|e| e.kind), Err(ErrorKind::Timeout | ErrorKind::Connection)));
    let count: String = query(primary.port, redis::cmd("GET").arg("count")).unwrap();
    assert_eq!(count, "2", "the lost increment ran once, not twice");
    assert_eq!(cache.increment(b"count", 1, MINUTE).unwrap(), 3);
}

#[test]
fn a_switch_the_sentinels_announce_ends_the_old_primarys_near_copies() {
    // Two unrelated primaries: the old one stays up, writable and silent
    // about the key, so only the switch can end the near copy read from it.
    let (old, new) = (RedisServer::start(), RedisServer::start());
    let () = query(old.port, redis::cmd("SET").arg("k").arg("old")).unwrap();
    let () = query(new.port, redis::cmd("SET").arg("k").arg("new")).unwrap();
    let sentinel = FakeSentinel::start(old.port, Some(1));
    let url = format!("{}?near_cache=100", sentinel_url(&[sentinel.port]));
    let reader = Cache::connect(Some(&url), Options::default()).unwrap();
    let near_hit = || {
        let before = reader.stats().near_hits;
        let value = reader.get(b"k").unwrap();
        (reader.stats().near_hits > before).then_some(value).flatten()
    };
    assert!(wait_until(Duration::from_secs(5), || near_hit().as_deref() == Some(&b"old"[..])));
    assert!(wait_until(Duration::from_secs(5), || sentinel.subscribed()), "the watcher subscribed");

    sentinel.switch_to(new.port);
    assert!(wait_until(Duration::from_secs(10), || reader.get(b"k").unwrap().as_deref() == Some(&b"new"[..])));
    assert!(wait_until(Duration::from_secs(5), || near_hit().as_deref() == Some(&b"new"[..])), "tracking on the new primary");
    for _ in 0..100 {
        assert_eq!(reader.get(b"k").unwrap().as_deref(), Some(&b"new"[..]), "a copy from the old primary came back");
    }
    // The new primary's reports reach the near cache.
    let () = query(new.port, redis::cmd("SET").arg("k").arg("newer")).unwrap();
    assert!(wait_until(Duration::from_secs(5), || reader.get(b"k").unwrap().as_deref() == Some(&b"newer"[..])));
    assert!(wait_until(Duration::from_secs(5), || !tracks_near(old.port)), "the old primary's tracking connection was closed");
}

#[test]
fn a_large_set_cut_off_by_the_deadline_is_not_stored_and_holds_up_no_later_call() {
    let primary = RedisServer::start();
    let sentinel = FakeSentinel::start(primary.port, Some(1));
    let options = Options {
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        max_value_bytes: 64 * 1024 * 1024,
        ..Options::default()
    };
    let cache = Cache::connect(Some(&sentinel_url(&[sentinel.port])), options).unwrap();
    cache.set(b"small", b"v", MINUTE).unwrap();
    // Far more than the socket buffers hold: a paused primary leaves most of it unsent.
    let large = vec![b'x'; 48 * 1024 * 1024];
    primary.pause();
    let error = cache.set(b"large", &large, MINUTE).unwrap_err();
    primary.resume();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(error.message.contains("may have been applied"), "the message says the write may have happened: {error}");
    // Its connection was closed: the primary discarded the partial request,
    // and the next call does not wait behind the rest of it.
    assert_eq!(cache.get(b"small").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(cache.get(b"large").unwrap().map(|value| value.len()), None);
    let stored: u64 = query(primary.port, redis::cmd("EXISTS").arg("large")).unwrap();
    assert_eq!(stored, 0, "the value cut off mid-send was not stored");
}
