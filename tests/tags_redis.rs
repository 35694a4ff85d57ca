//! The tag guarantees that depend on Redis itself: bounded metadata, eviction
//! under `allkeys-lru`, and a clear that stays in its namespace.

mod support;

use std::time::Duration;

use rcache::{Cache, ComputeOptions, ErrorKind, Options, Ttl};
use support::{RedisCluster, RedisServer, query, wait_until};

fn connect(server: &RedisServer, prefix: &str) -> Cache {
    Cache::connect(Some(&server.url()), Options { key_prefix: prefix.as_bytes().to_vec(), ..Options::default() }).unwrap()
}

fn integer_reply(reply: Option<String>) -> i64 {
    let reply = reply.expect("server answers");
    reply.trim_start_matches(':').trim().parse().unwrap_or_else(|_| panic!("not an integer reply: {reply}"))
}

fn info_field(server: &RedisServer, section: &str, field: &str) -> Option<String> {
    let info = server.command(&["INFO", section])?;
    info.lines().find_map(|line| line.strip_prefix(&format!("{field}:")).map(str::to_string))
}

/// Walks the keyspace so Redis expires every key whose TTL has passed.
fn expire_everything_due(server: &RedisServer) {
    let mut cursor = "0".to_string();
    loop {
        let reply = server.command(&["SCAN", &cursor, "COUNT", "10000"]).unwrap();
        cursor = reply.lines().nth(2).unwrap().to_string();
        if cursor == "0" {
            break;
        }
    }
}

#[test]
fn tag_metadata_is_bounded_once_tagged_entries_expire() {
    let server = RedisServer::start();
    let cache = connect(&server, "bounded:");
    let ttl = Ttl::After(Duration::from_millis(300));
    let groups: Vec<String> = (0..100).map(|group| format!("group:{group}")).collect();
    for index in 0..100_000u32 {
        let group = groups[index as usize % groups.len()].as_bytes();
        cache.set_with_tags(format!("entry:{index}").as_bytes(), b"value", ttl, &[b"all", group]).unwrap();
    }
    let tag_keys = server.command(&["KEYS", "bounded:__rcache_tag:*"]).unwrap();
    assert!(tag_keys.starts_with("*101\r\n"), "one small key per tag, whatever the number of entries");

    std::thread::sleep(Duration::from_millis(300) + rcache::backend::TAG_MARGIN);
    assert!(wait_until(Duration::from_secs(10), || {
        expire_everything_due(&server);
        integer_reply(server.command(&["DBSIZE"])) == 0
    }));
    let used: u64 = info_field(&server, "memory", "used_memory").unwrap().trim().parse().unwrap();
    assert!(used < 4 * 1024 * 1024, "used_memory back to an empty server's: {used}");
}

#[test]
fn tags_of_entries_without_a_ttl_expire_unless_written_again() {
    let server = RedisServer::start();
    let cache = connect(&server, "untimed:");
    let tag_key = "untimed:__rcache_tag:t";
    let lifetime = (rcache::backend::UNTIMED_TAG_LIFETIME + rcache::backend::TAG_MARGIN).as_millis() as i64;
    let finite = |what: &str| {
        let left = integer_reply(server.command(&["PTTL", tag_key]));
        assert!(left > lifetime - 60_000 && left <= lifetime, "{what}: the tag key lives {left} ms");
    };
    cache.set_with_tags(b"k", b"v", Ttl::Never, &[b"t"]).unwrap();
    finite("set without a TTL");
    // A tag key found without expiry gets one from every write that records it.
    assert_eq!(integer_reply(server.command(&["PERSIST", tag_key])), 1);
    cache.set(b"plain", b"v", Ttl::Never).unwrap();
    assert!(cache.add_tags(b"plain", &[b"t"]).unwrap());
    finite("add_tags to an entry without a TTL");
    assert_eq!(integer_reply(server.command(&["PERSIST", tag_key])), 1);
    assert!(cache.expire(b"k", Ttl::Never).unwrap());
    finite("expire to no TTL");
    // A deleted entry leaves nothing that lives forever.
    assert!(cache.delete(b"k").unwrap());
    assert!(cache.delete(b"plain").unwrap());
    finite("after the entries are deleted");
    // When a tag key expires under an entry, the entry is a miss, never stale.
    cache.set_with_tags(b"k", b"v", Ttl::Never, &[b"t"]).unwrap();
    assert_eq!(integer_reply(server.command(&["PEXPIRE", tag_key, "1"])), 1);
    assert!(wait_until(Duration::from_secs(5), || cache.get(b"k").unwrap().is_none()));
    assert!(!cache.add_tags(b"k", &[b"u"]).unwrap());
}

#[test]
fn a_vanished_tag_only_causes_misses() {
    let server = RedisServer::start();
    let cache = connect(&server, "evict:");
    cache.set_with_tags(b"k", b"v", Ttl::After(Duration::from_secs(60)), &[b"t"]).unwrap();
    // Eviction of the tag key, as allkeys-lru may do: the entry becomes a miss, never stale.
    assert_eq!(integer_reply(server.command(&["DEL", "evict:__rcache_tag:t"])), 1);
    assert_eq!(cache.get(b"k").unwrap(), None);
    // A new tag with the same name gets a new token: the old entry stays invalid.
    cache.set_with_tags(b"other", b"v", Ttl::After(Duration::from_secs(60)), &[b"t"]).unwrap();
    assert_eq!(cache.get(b"k").unwrap(), None);
    assert_eq!(cache.get(b"other").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn under_allkeys_lru_pressure_an_invalidated_value_never_comes_back() {
    let server = RedisServer::start();
    for (name, value) in [("maxmemory", "8mb"), ("maxmemory-policy", "allkeys-lru"), ("maxmemory-samples", "3")] {
        assert_eq!(server.command(&["CONFIG", "SET", name, value]).as_deref(), Some("+OK\r\n"));
    }
    let cache = connect(&server, "lru:");
    let minute = Ttl::After(Duration::from_secs(60));
    let value = vec![b'v'; 200];
    for round in 0..20u32 {
        let tag = format!("round:{round}");
        let keys: Vec<String> = (0..500).map(|index| format!("r{round}:{index}")).collect();
        for key in &keys {
            cache.set_with_tags(key.as_bytes(), &value, minute, &[tag.as_bytes(), b"shared"]).unwrap();
        }
        cache.invalidate_tags(&[tag.as_bytes()]).unwrap();
        // Pressure: plain keys push the server past maxmemory, evicting whatever it samples.
        for filler in 0..2000u32 {
            cache.set(format!("filler:{round}:{filler}").as_bytes(), &value, minute).unwrap();
        }
        for key in &keys {
            assert_eq!(cache.get(key.as_bytes()).unwrap(), None, "{key} came back after invalidation");
        }
    }
    let evicted: u64 = info_field(&server, "stats", "evicted_keys").unwrap().trim().parse().unwrap();
    assert!(evicted > 0, "the test put the server under eviction pressure");
}

#[test]
fn clear_stays_in_its_namespace_and_never_uses_keys_or_flushdb() {
    let server = RedisServer::start();
    let (mine, theirs) = (connect(&server, "mine:"), connect(&server, "theirs:"));
    let minute = Ttl::After(Duration::from_secs(60));
    for index in 0..5000u32 {
        mine.set(format!("k{index}").as_bytes(), b"v", minute).unwrap();
        theirs.set(format!("k{index}").as_bytes(), b"v", minute).unwrap();
    }
    mine.set_with_tags(b"tagged", b"v", minute, &[b"t"]).unwrap();
    assert_eq!(server.command(&["SET", "mine", "no prefix"]).as_deref(), Some("+OK\r\n"));

    assert_eq!(mine.clear(None).unwrap(), 5002, "entries and the tag key");
    assert_eq!(integer_reply(server.command(&["DBSIZE"])), 5001);
    assert!(theirs.exists(b"k4999").unwrap());

    let stats = server.command(&["INFO", "commandstats"]).unwrap();
    assert!(stats.contains("cmdstat_scan"), "clear scans");
    assert!(!stats.contains("cmdstat_keys:") && !stats.contains("cmdstat_flushdb") && !stats.contains("cmdstat_flushall"));
}

#[test]
fn a_prefix_with_glob_characters_is_matched_literally() {
    let server = RedisServer::start();
    let odd = connect(&server, "app[1]*:");
    let other = connect(&server, "app1x:");
    let minute = Ttl::After(Duration::from_secs(60));
    odd.set(b"k", b"v", minute).unwrap();
    other.set(b"k", b"v", minute).unwrap();
    assert_eq!(odd.clear(None).unwrap(), 1);
    assert!(other.exists(b"k").unwrap());
}

#[test]
fn an_entry_naming_a_tag_key_outside_the_handles_tag_space_is_corrupt_and_that_key_is_not_read() {
    let server = RedisServer::start();
    let cache = connect(&server, "mine:");
    // Written by another program: a tagged entry whose tag record points at
    // a key rcache does not own, holding the very token recorded.
    let token = b"0123456789abcdef";
    let foreign = b"other:secret";
    let stored =
        [&b"\0rcache-tags\0"[..], b"1:", foreign.len().to_string().as_bytes(), b":", foreign, token, b"payload"].concat();
    query::<()>(server.port, redis::cmd("SET").arg("mine:k").arg(stored)).unwrap();
    query::<()>(server.port, redis::cmd("SET").arg(foreign).arg(token)).unwrap();
    query::<()>(server.port, redis::cmd("CONFIG").arg("RESETSTAT")).unwrap();

    assert_eq!(cache.get(b"k").unwrap_err().kind, ErrorKind::Corrupt);
    assert_eq!(cache.get_with_ttl(b"k").unwrap_err().kind, ErrorKind::Corrupt);
    assert_eq!(cache.get_many(&[b"k"]).unwrap_err().kind, ErrorKind::Corrupt);
    // get_many's own MGET only: the foreign tag key was never read.
    assert_eq!((calls(&server, "get"), calls(&server, "mget"), calls(&server, "evalsha")), (2, 1, 0));
}

#[test]
fn every_call_refuses_an_entry_naming_a_tag_key_outside_the_tag_space_and_never_touches_that_key() {
    let server = RedisServer::start();
    // With LFU, a key's access counter goes from 5 to 6 at its first read or write.
    query::<()>(server.port, redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("allkeys-lfu")).unwrap();
    let cache = connect(&server, "mine:");
    let token = b"0123456789abcdef";
    let foreign = b"other:secret";
    let stored =
        [&b"\0rcache-tags\0"[..], b"1:", foreign.len().to_string().as_bytes(), b":", foreign, token, b"payload"].concat();
    query::<()>(server.port, redis::cmd("SET").arg("mine:k").arg(&stored).arg("PX").arg(100_000)).unwrap();
    query::<()>(server.port, redis::cmd("SET").arg(foreign).arg(token).arg("PX").arg(100_000)).unwrap();
    let minute = Ttl::After(Duration::from_secs(60));

    let corrupt = |error: rcache::Error| assert_eq!(error.kind, ErrorKind::Corrupt, "{error}");
    corrupt(cache.expire(b"k", Ttl::Never).unwrap_err());
    corrupt(cache.expire(b"k", minute).unwrap_err());
    corrupt(cache.add_tags(b"k", &[b"t"]).unwrap_err());
    corrupt(cache.delete(b"k").unwrap_err());
    corrupt(cache.compare_and_set(b"k", b"payload", b"new", minute).unwrap_err());
    corrupt(cache.exists(b"k").unwrap_err());
    corrupt(cache.remaining(b"k").unwrap_err());
    corrupt(cache.set(b"k", b"new", Ttl::Keep).unwrap_err());
    corrupt(cache.hash_get(b"k").unwrap_err());
    corrupt(cache.keys(None).unwrap_err());

    // Nothing changed, and the foreign key was neither read nor written.
    let value: Vec<u8> = query(server.port, redis::cmd("GET").arg("mine:k")).unwrap();
    assert_eq!(value, stored);
    let left: i64 = query(server.port, redis::cmd("PTTL").arg("mine:k")).unwrap();
    assert!(left > 0 && left <= 100_000, "{left}");
    let foreign_left: i64 = query(server.port, redis::cmd("PTTL").arg(foreign)).unwrap();
    assert!(foreign_left > 0 && foreign_left <= 100_000, "{foreign_left}");
    let accesses: i64 = query(server.port, redis::cmd("OBJECT").arg("FREQ").arg(foreign)).unwrap();
    assert_eq!(accesses, 5, "the foreign tag key was read or written");
    assert_eq!(query::<i64>(server.port, redis::cmd("EXISTS").arg("mine:__rcache_tag:t")).unwrap(), 0);
}

/// How many times the server ran `command` since the last `CONFIG RESETSTAT`.
fn calls(server: &RedisServer, command: &str) -> u64 {
    let stats = server.command(&["INFO", "commandstats"]).unwrap();
    let line = stats.lines().find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")).map(str::to_string));
    line.map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[test]
fn an_untagged_read_is_one_get_and_a_tagged_one_is_one_mget_once_its_tags_are_known() {
    let server = RedisServer::start();
    let cache = connect(&server, "cost:");
    let minute = Ttl::After(Duration::from_secs(60));
    cache.set(b"plain", b"v", minute).unwrap();
    cache.set_with_tags(b"tagged", b"v", minute, &[b"t", b"u"]).unwrap();
    query::<()>(server.port, redis::cmd("CONFIG").arg("RESETSTAT")).unwrap();
    let calls = |command: &str| calls(&server, command);
    for _ in 0..10 {
        assert_eq!(cache.get(b"plain").unwrap().as_deref(), Some(&b"v"[..]));
    }
    assert_eq!((calls("get"), calls("mget"), calls("evalsha")), (10, 0, 0));
    // Written by this handle: its tag keys are known, each read is one MGET.
    for _ in 0..10 {
        assert_eq!(cache.get(b"tagged").unwrap().as_deref(), Some(&b"v"[..]));
    }
    assert_eq!((calls("get"), calls("mget"), calls("evalsha")), (10, 10, 0));
    // Another handle learns them at its first read: GET, then MGET of the tokens.
    let other = connect(&server, "cost:");
    for _ in 0..10 {
        assert_eq!(other.get(b"tagged").unwrap().as_deref(), Some(&b"v"[..]));
    }
    assert_eq!((calls("get"), calls("mget"), calls("evalsha")), (11, 20, 0));
    assert_eq!(other.get_with_ttl(b"tagged").unwrap().unwrap().0, b"v");
    assert_eq!(other.get_many(&[b"tagged", b"plain"]).unwrap(), vec![Some(b"v".to_vec()), Some(b"v".to_vec())]);
    assert_eq!((calls("get"), calls("mget"), calls("pttl"), calls("evalsha")), (11, 22, 1, 0));
    // Early refresh reads the entry, its lifetime, and the hint with the known tags' tokens: one request.
    let options = ComputeOptions { ttl: minute, tags: &[b"t", b"u"], early_refresh_beta: 1.0, ..ComputeOptions::default() };
    let value = other.get_or_compute(b"tagged", &options, || Ok::<_, ()>(b"computed".to_vec())).unwrap();
    assert_eq!(value, b"v");
    assert_eq!((calls("get"), calls("mget"), calls("pttl"), calls("evalsha")), (12, 23, 2, 0));
}

/// Every read of `key`, as `cache` answers it, errors as their kinds.
fn reads(cache: &Cache, key: &[u8]) -> [Result<Option<Vec<u8>>, ErrorKind>; 3] {
    [
        cache.get(key).map_err(|e| e.kind),
        cache.get_with_ttl(key).map(|found| found.map(|(value, _)| value)).map_err(|e| e.kind),
        cache.get_many(&[key]).map(|mut values| values.pop().flatten()).map_err(|e| e.kind),
    ]
}

fn hit(value: &[u8]) -> [Result<Option<Vec<u8>>, ErrorKind>; 3] {
    [Ok(Some(value.to_vec())), Ok(Some(value.to_vec())), Ok(Some(value.to_vec()))]
}

const MISS: [Result<Option<Vec<u8>>, ErrorKind>; 3] = [Ok(None), Ok(None), Ok(None)];

/// `reader` learns the tags of k at its first read; `writer`, another
/// process, changes k and its tags behind its back: every read answers as a
/// handle that knew nothing would.
fn known_tag_keys_are_only_a_hint(reader: &Cache, writer: &Cache) {
    let minute = Ttl::After(Duration::from_secs(60));
    writer.set_with_tags(b"k", b"one", minute, &[b"a", b"b"]).unwrap();
    assert_eq!(reads(reader, b"k"), hit(b"one"));

    // Invalidated elsewhere: the tokens read with the entry are the new ones.
    writer.invalidate_tags(&[b"b"]).unwrap();
    assert_eq!(reads(reader, b"k"), MISS);

    // Written again with other tags: those the reader did not know are read after the entry.
    writer.set_with_tags(b"k", b"two", minute, &[b"a", b"c"]).unwrap();
    assert_eq!(reads(reader, b"k"), hit(b"two"));
    writer.set_with_tags(b"k", b"three", minute, &[b"d"]).unwrap();
    assert_eq!(reads(reader, b"k"), hit(b"three"));
    writer.invalidate_tags(&[b"d"]).unwrap();
    assert_eq!(reads(reader, b"k"), MISS);
    writer.set_with_tags(b"k", b"four", minute, &[b"a", b"e"]).unwrap();
    assert_eq!(reads(reader, b"k"), hit(b"four"));
    writer.invalidate_tags(&[b"e"]).unwrap();
    assert_eq!(reads(reader, b"k"), MISS);

    // A plain value, no value.
    writer.set_with_tags(b"k", b"five", minute, &[b"a"]).unwrap();
    assert_eq!(reads(reader, b"k"), hit(b"five"));
    writer.set(b"k", b"plain", minute).unwrap();
    assert_eq!(reads(reader, b"k"), hit(b"plain"));
    writer.set_with_tags(b"k", b"six", minute, &[b"a"]).unwrap();
    assert_eq!(reads(reader, b"k"), hit(b"six"));
    writer.delete(b"k").unwrap();
    assert_eq!(reads(reader, b"k"), MISS);
    writer.set_with_tags(b"k", b"seven", minute, &[b"a"]).unwrap();
    assert_eq!(reads(reader, b"k"), hit(b"seven"));
    // Entries this handle wrote itself, invalidated by the other.
    reader.set_with_tags(b"mine", b"eight", minute, &[b"f", b"a"]).unwrap();
    assert_eq!(reads(reader, b"mine"), hit(b"eight"));
    writer.invalidate_tags(&[b"f"]).unwrap();
    assert_eq!(reads(reader, b"mine"), MISS);
}

#[test]
fn known_tag_keys_are_only_a_hint_the_stored_entry_decides_which_tags_are_checked() {
    let server = RedisServer::start();
    let minute = Ttl::After(Duration::from_secs(60));
    let reader = connect(&server, "hint:");
    known_tag_keys_are_only_a_hint(&reader, &connect(&server, "hint:"));

    // A value of another type: as a handle that knew nothing reads it.
    assert_eq!(reads(&reader, b"k"), hit(b"seven"));
    query::<()>(server.port, redis::cmd("DEL").arg("hint:k")).unwrap();
    query::<()>(server.port, redis::cmd("HSET").arg("hint:k").arg("f").arg("v")).unwrap();
    assert_eq!(reads(&reader, b"k"), reads(&connect(&server, "hint:"), b"k"));
    assert!(reader.get(b"k").is_err(), "GET of a hash is an error");

    // An entry naming a tag key outside the tag space stays corrupt for a reader that knew its old tags.
    reader.set_with_tags(b"j", b"eight", minute, &[b"a"]).unwrap();
    assert_eq!(reads(&reader, b"j"), hit(b"eight"));
    let token = b"0123456789abcdef";
    let foreign = b"other:secret";
    let stored =
        [&b"\0rcache-tags\0"[..], b"1:", foreign.len().to_string().as_bytes(), b":", foreign, token, b"payload"].concat();
    query::<()>(server.port, redis::cmd("SET").arg("hint:j").arg(stored)).unwrap();
    query::<()>(server.port, redis::cmd("SET").arg(foreign).arg(token)).unwrap();
    let corrupt = Err(ErrorKind::Corrupt);
    assert_eq!(reads(&reader, b"j"), [corrupt.clone(), corrupt.clone(), corrupt]);
}

#[test]
fn on_a_cluster_known_tag_keys_are_only_a_hint_too() {
    let cluster = RedisCluster::start_with_replicas(0);
    let open = || {
        let options = Options { key_prefix: b"hint:".to_vec(), ..Options::default() };
        Cache::connect(Some(&cluster.url()), options).unwrap()
    };
    known_tag_keys_are_only_a_hint(&open(), &open());
}
