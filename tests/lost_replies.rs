//! Calls whose reply is lost. A proxy in front of each server forwards one
//! chosen request to Redis, lets it run, then either drops the connection
//! instead of passing the reply on or holds the reply past the client's
//! response timeout. Every call that is not safe to run twice must then
//! report `UnknownOutcome` or the truth, never a confident wrong answer, and
//! the server must show that it ran once: not resent.
//!
//! Each call is tried on a standalone server, on a Cluster whose nodes
//! announce their proxies' ports, and on a Sentinel group whose primary is
//! monitored at its proxy's address.

mod support;

use std::fmt::Debug;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rcache::{Cache, ErrorKind, Options, SaveOutcome, Ttl, WriteCondition};
use support::proxy::{Fault, FaultProxy, Trigger};
use support::{RedisCluster, RedisServer, SERVICE, keep, query, start_sentinel, wait_until};

const MINUTE: Ttl = Ttl::After(Duration::from_secs(60));
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a delayed reply is held: well past `RESPONSE_TIMEOUT`.
const DELAY: Duration = Duration::from_millis(1500);

/// Servers behind fault proxies, and the client URL that reaches them only
/// through the proxies.
struct Site {
    url: String,
    proxies: Vec<FaultProxy>,
    /// The real ports of the servers holding data, for checks that bypass the proxies.
    data_ports: Vec<u16>,
    /// One test at a time on a shared site: a proxy has one armed fault.
    serial: Mutex<()>,
    _servers: Vec<RedisServer>,
}

impl Site {
    fn standalone() -> Site {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.port);
        Site {
            url: proxy.url(),
            data_ports: vec![server.port],
            proxies: vec![proxy],
            serial: Mutex::new(()),
            _servers: vec![server],
        }
    }

    /// Three primaries without replicas; each announces its proxy's port, so
    /// that the slot map, redirects and every client connection go through the proxies.
    fn cluster() -> &'static Site {
        static SHARED: OnceLock<&'static Site> = OnceLock::new();
        SHARED.get_or_init(|| {
            keep(|| {
                let cluster = RedisCluster::start_with_replicas(0);
                let proxies: Vec<FaultProxy> = cluster.nodes.iter().map(|node| FaultProxy::start(node.port)).collect();
                for (node, proxy) in cluster.nodes.iter().zip(&proxies) {
                    let set = redis::cmd("CONFIG").arg("SET").arg("cluster-announce-port").arg(proxy.port).clone();
                    query::<()>(node.port, &set).unwrap();
                }
                let proxy_ports: Vec<u16> = proxies.iter().map(|proxy| proxy.port).collect();
                let announced = || {
                    cluster.nodes.iter().all(|node| {
                        let slots: Vec<Vec<redis::Value>> =
                            query(node.port, redis::cmd("CLUSTER").arg("SLOTS")).unwrap_or_default();
                        !slots.is_empty()
                            && slots.iter().all(|range| match range.get(2) {
                                Some(redis::Value::Array(address)) => {
                                    let port: Option<u16> = address
                                        .get(1)
                                        .and_then(|port| redis::FromRedisValue::from_redis_value(port.clone()).ok());
                                    port.is_some_and(|port| proxy_ports.contains(&port))
                                }
                                _ => false,
                            })
                    })
                };
                assert!(wait_until(Duration::from_secs(30), announced), "the nodes did not announce their proxies");
                let RedisCluster { nodes } = cluster;
                Site {
                    url: format!("redis+cluster://{},{}", proxies[0].address(), proxies[1].address()),
                    data_ports: nodes.iter().map(|node| node.port).collect(),
                    proxies,
                    serial: Mutex::new(()),
                    _servers: nodes,
                }
            })
        })
    }

    /// A primary and a replica behind proxies (the replica announces its
    /// proxy's port), three sentinels monitoring the primary at its proxy.
    fn sentinel() -> &'static Site {
        static SHARED: OnceLock<&'static Site> = OnceLock::new();
        SHARED.get_or_init(|| {
            keep(|| {
                let primary = RedisServer::start();
                let primary_proxy = FaultProxy::start(primary.port);
                let replica_proxy = FaultProxy::start_unbound();
                let replica = RedisServer::start_with(&[
                    "--replicaof",
                    "127.0.0.1",
                    &primary.port.to_string(),
                    "--replica-announce-port",
                    &replica_proxy.port.to_string(),
                ]);
                replica_proxy.set_upstream(replica.port);
                let sentinels: Vec<RedisServer> = (0..3).map(|_| start_sentinel(primary_proxy.port, &[])).collect();
                let ready = || {
                    sentinels.iter().all(|sentinel| {
                        let master: std::collections::HashMap<String, String> =
                            query(sentinel.port, redis::cmd("SENTINEL").arg("MASTER").arg(SERVICE)).unwrap_or_default();
                        let replicas: Vec<std::collections::HashMap<String, String>> =
                            query(sentinel.port, redis::cmd("SENTINEL").arg("REPLICAS").arg(SERVICE)).unwrap_or_default();
                        master.get("num-other-sentinels").map(String::as_str) == Some("2")
                            && replicas.iter().any(|replica| {
                                replica.get("port") == Some(&replica_proxy.port.to_string())
                                    && replica.get("master-link-status").map(String::as_str) == Some("ok")
                            })
                    })
                };
                assert!(wait_until(Duration::from_secs(30), ready), "the sentinels did not find each other");
                let hosts: Vec<String> = sentinels.iter().map(|sentinel| format!("127.0.0.1:{}", sentinel.port)).collect();
                Site {
                    url: format!("redis+sentinel://{}/{SERVICE}/0", hosts.join(",")),
                    data_ports: vec![primary.port],
                    proxies: vec![primary_proxy, replica_proxy],
                    serial: Mutex::new(()),
                    _servers: [primary, replica].into_iter().chain(sentinels).collect(),
                }
            })
        })
    }

    fn cache(&self) -> Cache {
        let options = Options {
            connect_timeout: Duration::from_millis(2000),
            response_timeout: RESPONSE_TIMEOUT,
            breaker_threshold: 1000,
            ..Options::default()
        };
        Cache::connect(Some(&self.url), options).unwrap()
    }

    /// Arms every proxy; the first request `trigger` picks, on any of them, is faulted.
    fn arm(&self, fault: Fault, trigger: impl Fn() -> Trigger) {
        for proxy in &self.proxies {
            proxy.arm(fault, trigger());
        }
    }

    /// Disarms every proxy and returns the request that was faulted.
    fn faulted(&self) -> String {
        for proxy in &self.proxies {
            proxy.disarm();
        }
        let fired = self.proxies.iter().find_map(|proxy| proxy.fired());
        fired.expect("the fault happened: a request of the call reached Redis and its reply was lost")
    }

    /// `command` sent straight to the server holding its key (the first one
    /// that answers without a redirect).
    fn direct<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let mut errors = Vec::new();
        for port in &self.data_ports {
            match query(*port, command) {
                Ok(value) => return value,
                Err(error) => errors.push(error.to_string()),
            }
        }
        panic!("no server answered {command:?}: {errors:?}")
    }
}

/// The call's result is the truth or `UnknownOutcome`.
fn truth_or_unknown<T: Debug + PartialEq>(result: rcache::Result<T>, truth: T, faulted: &str) -> bool {
    match result {
        Ok(value) => {
            assert_eq!(value, truth, "a confident wrong answer after the reply to `{faulted}` was lost");
            true
        }
        Err(error) => {
            assert_eq!(error.kind, ErrorKind::UnknownOutcome, "after the reply to `{faulted}` was lost: {error}");
            false
        }
    }
}

/// The client still gives right answers after the fault (a late reply is
/// never taken for the answer to a later request).
fn still_right(cache: &Cache, key: &str) {
    let marker = format!("marker of {key}");
    let marker_key = format!("{key}-marker");
    assert!(wait_until(Duration::from_secs(10), || cache.set(marker_key.as_bytes(), marker.as_bytes(), MINUTE).is_ok()));
    for _ in 0..20 {
        if let Ok(value) = cache.get(marker_key.as_bytes()) {
            assert_eq!(value.as_deref(), Some(marker.as_bytes()), "a reply was taken for another request's");
        }
    }
}

fn increment(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    assert_eq!(cache.increment(key.as_bytes(), 5, MINUTE).unwrap(), 5);
    site.arm(fault, || Trigger::write_to(key.as_bytes()));
    let result = cache.increment(key.as_bytes(), 3, MINUTE);
    let faulted = site.faulted();
    truth_or_unknown(result, 8, &faulted);
    let stored: i64 = site.direct(redis::cmd("GET").arg(key));
    assert_eq!(stored, 8, "the increment ran once (`{faulted}`)");
    still_right(&cache, key);
}

fn lock(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    assert!(cache.lock(key.as_bytes(), b"warm-up", Duration::from_secs(10)).unwrap());
    assert!(cache.unlock(key.as_bytes(), b"warm-up").unwrap());
    site.arm(fault, || Trigger::write_to(key.as_bytes()));
    let result = cache.lock(key.as_bytes(), b"ours", Duration::from_secs(10));
    let faulted = site.faulted();
    truth_or_unknown(result, true, &faulted);
    let holder: Option<String> = site.direct(redis::cmd("GET").arg(key));
    assert_eq!(holder.as_deref(), Some("ours"), "the lock is ours (`{faulted}`)");
    still_right(&cache, key);
}

fn extend_lock(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    let short = Duration::from_secs(5);
    assert!(cache.lock(key.as_bytes(), b"ours", short).unwrap());
    assert!(cache.extend_lock(key.as_bytes(), b"ours", short).unwrap());
    site.arm(fault, || Trigger::write_to(key.as_bytes()));
    let result = cache.extend_lock(key.as_bytes(), b"ours", Duration::from_secs(600));
    let faulted = site.faulted();
    match result {
        Ok(extended) => assert!(extended, "reported not ours after the reply to `{faulted}` was lost"),
        // A second run sets the same lease and gives the same answer, so a
        // plain timeout (safe to try again) is as honest as an unknown outcome.
        Err(error) => assert!(
            matches!(error.kind, ErrorKind::UnknownOutcome | ErrorKind::Timeout),
            "after the reply to `{faulted}` was lost: {error}"
        ),
    }
    let holder: Option<String> = site.direct(redis::cmd("GET").arg(key));
    assert_eq!(holder.as_deref(), Some("ours"), "the lock is still ours (`{faulted}`)");
    let left: i64 = site.direct(redis::cmd("PTTL").arg(key));
    assert!(left > 60_000, "the lease was extended (`{faulted}`): {left} ms left");
    still_right(&cache, key);
}

fn unlock(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    assert!(cache.lock(key.as_bytes(), b"ours", Duration::from_secs(10)).unwrap());
    assert!(cache.unlock(key.as_bytes(), b"ours").unwrap());
    assert!(cache.lock(key.as_bytes(), b"ours", Duration::from_secs(10)).unwrap());
    site.arm(fault, || Trigger::write_to(key.as_bytes()));
    let result = cache.unlock(key.as_bytes(), b"ours");
    let faulted = site.faulted();
    truth_or_unknown(result, true, &faulted);
    let exists: bool = site.direct(redis::cmd("EXISTS").arg(key));
    assert!(!exists, "the lock was released (`{faulted}`)");
    still_right(&cache, key);
}

fn compare_and_set(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    cache.set(key.as_bytes(), b"one", MINUTE).unwrap();
    assert!(cache.compare_and_set(key.as_bytes(), b"one", b"two", MINUTE).unwrap());
    site.arm(fault, || Trigger::write_to(key.as_bytes()));
    let result = cache.compare_and_set(key.as_bytes(), b"two", b"three", MINUTE);
    let faulted = site.faulted();
    truth_or_unknown(result, true, &faulted);
    assert!(wait_until(Duration::from_secs(10), || cache.get(key.as_bytes()).is_ok()));
    assert_eq!(cache.get(key.as_bytes()).unwrap().as_deref(), Some(&b"three"[..]), "the write happened (`{faulted}`)");
    still_right(&cache, key);
}

fn hash_set_if_absent(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    let fields: &[(&[u8], &[u8])] = &[(b"name", b"first")];
    assert!(!cache.hash_set(key.as_bytes(), fields, MINUTE, WriteCondition::IfExists).unwrap());
    site.arm(fault, || Trigger::write_to(key.as_bytes()));
    let result = cache.hash_set(key.as_bytes(), fields, MINUTE, WriteCondition::IfAbsent);
    let faulted = site.faulted();
    truth_or_unknown(result, true, &faulted);
    let stored: Vec<(String, String)> = site.direct(redis::cmd("HGETALL").arg(key));
    assert_eq!(stored, vec![("name".to_string(), "first".to_string())], "the record was written (`{faulted}`)");
    still_right(&cache, key);
}

fn delete(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    cache.set(key.as_bytes(), b"v", MINUTE).unwrap();
    assert!(cache.delete(key.as_bytes()).unwrap());
    cache.set(key.as_bytes(), b"v", MINUTE).unwrap();
    site.arm(fault, || Trigger::write_to(key.as_bytes()));
    let result = cache.delete(key.as_bytes());
    let faulted = site.faulted();
    truth_or_unknown(result, true, &faulted);
    let exists: bool = site.direct(redis::cmd("EXISTS").arg(key));
    assert!(!exists, "the key was deleted (`{faulted}`)");
    still_right(&cache, key);
}

fn clear(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    let pattern = format!("{key}:*");
    assert_eq!(cache.clear(Some(pattern.as_bytes())).unwrap(), 0);
    for index in 0..5 {
        cache.set(format!("{key}:{index}").as_bytes(), b"v", MINUTE).unwrap();
    }
    site.arm(fault, || Trigger::write_to(format!("{key}:").as_bytes()));
    let result = cache.clear(Some(pattern.as_bytes()));
    let faulted = site.faulted();
    if truth_or_unknown(result, 5, &faulted) {
        assert!(cache.keys(Some(pattern.as_bytes())).unwrap().is_empty(), "every key was deleted (`{faulted}`)");
    }
    still_right(&cache, key);
}

fn session_save(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    let namespace = format!("{key}:");
    let sessions = cache.sessions(namespace.as_bytes());
    let session = sessions.create(&[(b"visits", b"1")], MINUTE).unwrap();
    let (id, secret) = (session.id.as_bytes(), session.secret.as_bytes());
    let version = sessions.load(id, secret, None).unwrap().unwrap().version;
    assert_eq!(
        sessions.save(id, secret, Some(version), &[(b"visits", b"2")], &[], MINUTE).unwrap(),
        SaveOutcome::Saved(version + 1)
    );
    site.arm(fault, || Trigger::write_to(id));
    let result = sessions.save(id, secret, Some(version + 1), &[(b"visits", b"3")], &[], MINUTE);
    let faulted = site.faulted();
    truth_or_unknown(result, SaveOutcome::Saved(version + 2), &faulted);
    assert!(wait_until(Duration::from_secs(10), || sessions.load(id, secret, None).is_ok()));
    let record = sessions.load(id, secret, None).unwrap().unwrap();
    assert_eq!(record.version, version + 2, "the save ran once (`{faulted}`)");
    assert_eq!(record.fields, vec![(b"visits".to_vec(), b"3".to_vec())]);
    still_right(&cache, key);
}

fn session_destroy(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    let namespace = format!("{key}:");
    let sessions = cache.sessions(namespace.as_bytes());
    let other = sessions.create(&[(b"user", b"other")], MINUTE).unwrap();
    assert!(sessions.destroy(other.id.as_bytes(), other.secret.as_bytes()).unwrap());
    let session = sessions.create(&[(b"user", b"ours")], MINUTE).unwrap();
    let (id, secret) = (session.id.as_bytes(), session.secret.as_bytes());
    site.arm(fault, || Trigger::write_to(id));
    let result = sessions.destroy(id, secret);
    let faulted = site.faulted();
    truth_or_unknown(result, true, &faulted);
    assert!(wait_until(Duration::from_secs(10), || sessions.load(id, secret, None).is_ok()));
    assert_eq!(sessions.load(id, secret, None).unwrap(), None, "the session was destroyed (`{faulted}`)");
    still_right(&cache, key);
}

fn session_purge(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    let namespace = format!("{key}:");
    let sessions = cache.sessions(namespace.as_bytes());
    assert_eq!(sessions.purge_idle(Duration::ZERO).unwrap(), 0);
    for _ in 0..3 {
        sessions.create(&[(b"user", b"idle")], MINUTE).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    site.arm(fault, || Trigger::write_to(namespace.as_bytes()));
    let result = sessions.purge_idle(Duration::ZERO);
    let faulted = site.faulted();
    if truth_or_unknown(result, 3, &faulted) {
        assert!(sessions.list().unwrap().is_empty(), "every idle session was purged (`{faulted}`)");
    }
    still_right(&cache, key);
}

fn session_lock(site: &Site, fault: Fault, key: &str) {
    let cache = site.cache();
    let namespace = format!("{key}:");
    let sessions = cache.sessions(namespace.as_bytes());
    let session = sessions.create(&[(b"user", b"ours")], MINUTE).unwrap();
    let (id, secret) = (session.id.as_bytes(), session.secret.as_bytes());
    let warm_up = sessions.lock(id, secret, Duration::from_secs(10)).unwrap().unwrap();
    assert!(sessions.unlock(id, warm_up.as_bytes()).unwrap());
    site.arm(fault, || Trigger::command_with("SET", "NX"));
    let result = sessions.lock(id, secret, Duration::from_secs(10));
    let faulted = site.faulted();
    let lock_key = format!("__rcache_lock:{namespace}{}", session.id);
    let holder: Option<String> = site.direct(redis::cmd("GET").arg(&lock_key));
    match result {
        Ok(owner) => {
            assert!(owner.is_some(), "reported held by someone else after the reply to `{faulted}` was lost");
            assert_eq!(holder, owner, "the lock is held by the owner reported");
        }
        Err(error) => {
            assert_eq!(error.kind, ErrorKind::UnknownOutcome, "after the reply to `{faulted}` was lost: {error}");
            assert!(holder.is_some(), "the lock was taken once (`{faulted}`)");
        }
    }
    still_right(&cache, key);
}

/// One test per call, topology and fault.
macro_rules! lost_reply_tests {
    ($($case:ident),* $(,)?) => {
        mod standalone {
            use super::*;
            $(
                mod $case {
                    use super::*;
                    #[test]
                    fn dropped_connection() {
                        super::super::$case(&Site::standalone(), Fault::DropReply, concat!(stringify!($case), "-dropped"));
                    }
                    #[test]
                    fn late_reply() {
                        super::super::$case(&Site::standalone(), Fault::DelayReply(DELAY), concat!(stringify!($case), "-late"));
                    }
                }
            )*
        }
        mod cluster {
            use super::*;
            $(
                mod $case {
                    use super::*;
                    #[test]
                    fn dropped_connection() {
                        let site = Site::cluster();
                        let _serial = site.serial.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        super::super::$case(site, Fault::DropReply, concat!("cluster-", stringify!($case), "-dropped"));
                    }
                    #[test]
                    fn late_reply() {
                        let site = Site::cluster();
                        let _serial = site.serial.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        super::super::$case(site, Fault::DelayReply(DELAY), concat!("cluster-", stringify!($case), "-late"));
                    }
                }
            )*
        }
        mod sentinel {
            use super::*;
            $(
                mod $case {
                    use super::*;
                    #[test]
                    fn dropped_connection() {
                        let site = Site::sentinel();
                        let _serial = site.serial.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        super::super::$case(site, Fault::DropReply, concat!("sentinel-", stringify!($case), "-dropped"));
                    }
                    #[test]
                    fn late_reply() {
                        let site = Site::sentinel();
                        let _serial = site.serial.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        super::super::$case(site, Fault::DelayReply(DELAY), concat!("sentinel-", stringify!($case), "-late"));
                    }
                }
            )*
        }
    };
}

lost_reply_tests!(
    increment,
    lock,
    extend_lock,
    unlock,
    compare_and_set,
    hash_set_if_absent,
    delete,
    clear,
    session_save,
    session_destroy,
    session_purge,
    session_lock,
);
