//! Redis Cluster under change: a slot migrating between primaries while
//! clients use it, and a primary killed and replaced by its replica. Each test
//! has a cluster of its own (3 primaries, a replica each). A near-cache
//! reader follows both, and tagged entries are served near.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rcache::{Cache, ComputeOptions, Options, Ttl, WriteCondition};
use support::{RedisCluster, query, wait_until};

/// One cluster at a time: two six-node clusters under load on two CPUs slow
/// each other's failure detection past the tests' bounds.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const MINUTE: Ttl = Ttl::After(Duration::from_secs(60));

fn connect(cluster: &RedisCluster, prefix: &str) -> Cache {
    let options = Options { key_prefix: prefix.as_bytes().to_vec(), ..Options::default() };
    Cache::connect(Some(&cluster.url()), options).unwrap()
}

/// The slot of a key, as the cluster computes it.
fn slot_of(cluster: &RedisCluster, key: &str) -> u16 {
    query(cluster.nodes[0].port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).unwrap()
}

/// One worker's round of every kind of operation on keys of the migrating
/// slot (`{hot}`) and elsewhere; panics on any error or wrong value.
fn round(cache: &Cache, worker: usize, round: u64, counted: &AtomicU64) {
    let own = format!("{{hot}}:w{worker}");
    let value = format!("{worker}/{round}");
    cache.set(own.as_bytes(), value.as_bytes(), MINUTE).unwrap();
    assert_eq!(cache.get(own.as_bytes()).unwrap(), Some(value.clone().into_bytes()), "{own}");
    let (read, _) = cache.get_with_ttl(own.as_bytes()).unwrap().expect("just written");
    assert_eq!(read, value.as_bytes());

    assert!(cache.increment(b"{hot}:counter", 1, MINUTE).unwrap() > 0);
    counted.fetch_add(1, Ordering::SeqCst);

    let tagged = format!("{{hot}}:tagged{worker}");
    cache.set_with_tags(tagged.as_bytes(), value.as_bytes(), MINUTE, &[b"t1", format!("w{worker}").as_bytes()]).unwrap();
    assert_eq!(cache.get(tagged.as_bytes()).unwrap(), Some(value.clone().into_bytes()));
    assert!(cache.exists(tagged.as_bytes()).unwrap());

    let batch = [format!("{{hot}}:m{worker}a"), format!("{{hot}}:m{worker}b"), format!("cold:{worker}")];
    let entries: Vec<(&[u8], &[u8])> = batch.iter().map(|key| (key.as_bytes(), value.as_bytes())).collect();
    cache.set_many(&entries, MINUTE).unwrap();
    let keys: Vec<&[u8]> = batch.iter().map(|key| key.as_bytes()).collect();
    assert!(cache.get_many(&keys).unwrap().iter().all(|read| read.as_deref() == Some(value.as_bytes())));

    let record = format!("{{hot}}:record{worker}");
    assert!(cache.hash_set(record.as_bytes(), &[(b"round", value.as_bytes())], MINUTE, WriteCondition::Always).unwrap());
    assert_eq!(cache.hash_get(record.as_bytes()).unwrap(), Some(vec![(b"round".to_vec(), value.clone().into_bytes())]));

    let computed = cache
        .get_or_compute(
            format!("{{hot}}:computed{worker}:{}", round % 5).as_bytes(),
            &ComputeOptions { ttl: MINUTE, ..Default::default() },
            || Ok::<_, ()>(b"computed".to_vec()),
        )
        .unwrap();
    assert_eq!(computed, b"computed");

    let lock = format!("{{hot}}:lock{worker}");
    assert!(cache.lock(lock.as_bytes(), b"me", Duration::from_secs(10)).unwrap());
    assert!(cache.unlock(lock.as_bytes(), b"me").unwrap());

    assert!(cache.compare_and_set(own.as_bytes(), value.as_bytes(), b"swapped", MINUTE).unwrap());
    assert!(cache.delete(own.as_bytes()).unwrap());
}

#[test]
fn a_slot_migrates_under_load_without_a_failed_or_wrong_operation() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cluster = RedisCluster::start();
    let cache = connect(&cluster, "mig:");
    let hot = slot_of(&cluster, "mig:{hot}:x");
    assert_eq!(hot, slot_of(&cluster, "hot"), "the prefix has no braces: the hash tag decides");
    let source = cluster.owner(hot, 0);
    let target = *cluster.primaries().iter().find(|&&primary| primary != source).unwrap();
    // Keys already in the slot, to move while the load runs.
    for index in 0..200 {
        cache.set(format!("{{hot}}:old{index}").as_bytes(), b"old", MINUTE).unwrap();
    }
    let sessions = cache.sessions(b"{hot}:sess:");
    let session = sessions.create(&[(b"k", b"v")], MINUTE).unwrap();

    let stop = AtomicBool::new(false);
    let counted = AtomicU64::new(0);
    let rounds = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (cache, stop, counted, rounds) = (&cache, &stop, &counted, &rounds);
            scope.spawn(move || {
                let mut round_number = 0;
                while !stop.load(Ordering::Relaxed) {
                    round(cache, worker, round_number, counted);
                    round_number += 1;
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let migrated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::thread::sleep(Duration::from_millis(300));
            let (source_port, target_port) = (cluster.nodes[source].port, cluster.nodes[target].port);
            let (source_id, target_id) = (cluster.node_id(source), cluster.node_id(target));
            let setslot = |port: u16, args: &[&str]| {
                let () = query(port, redis::cmd("CLUSTER").arg("SETSLOT").arg(hot).arg(args)).unwrap();
            };
            setslot(target_port, &["IMPORTING", &source_id]);
            setslot(source_port, &["MIGRATING", &target_id]);
            // Move the keys a few at a time, so that the load runs against a
            // slot whose keys are half here, half there, for a while.
            let started = Instant::now();
            loop {
                let keys: Vec<Vec<u8>> = query(source_port, redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(hot).arg(5)).unwrap();
                if keys.is_empty() && started.elapsed() > Duration::from_millis(1500) {
                    break;
                }
                if !keys.is_empty() {
                    let mut migrate = redis::cmd("MIGRATE");
                    migrate.arg("127.0.0.1").arg(target_port).arg("").arg(0).arg(5000).arg("REPLACE").arg("KEYS").arg(&keys);
                    let _: String = query(source_port, &migrate).unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            for index in cluster.primaries() {
                setslot(cluster.nodes[index].port, &["NODE", &target_id]);
            }
            std::thread::sleep(Duration::from_millis(500));
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = migrated {
            std::panic::resume_unwind(panic);
        }
    });
    assert_eq!(cluster.owner(hot, source), target, "the slot moved");
    eprintln!("{} rounds of every operation ran across the migration", rounds.load(Ordering::Relaxed));
    assert!(rounds.load(Ordering::Relaxed) > 20, "the load ran through the migration");
    let counter: u64 = String::from_utf8(cache.get(b"{hot}:counter").unwrap().unwrap()).unwrap().parse().unwrap();
    assert_eq!(counter, counted.load(Ordering::SeqCst), "every increment counted exactly once");
    for index in 0..200 {
        assert_eq!(cache.get(format!("{{hot}}:old{index}").as_bytes()).unwrap().as_deref(), Some(&b"old"[..]));
    }
    assert!(sessions.load(session.id.as_bytes(), session.secret.as_bytes(), None).unwrap().is_some());
    cache.invalidate_tags(&[b"t1"]).unwrap();
    assert_eq!(cache.get(b"{hot}:tagged0").unwrap(), None, "tags still work across the moved slot");
    let keys = cache.keys(Some(b"{hot}:old*")).unwrap();
    assert_eq!(keys.len(), 200, "listing scans the new owner");
}

#[test]
fn a_killed_primary_is_replaced_by_its_replica_and_operations_resume() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut cluster = RedisCluster::start();
    let cache = connect(&cluster, "fail:");
    // Keys in every slot range, written well before the kill (replicated by then).
    for index in 0..300 {
        cache.set(format!("before:{index}").as_bytes(), index.to_string().as_bytes(), MINUTE).unwrap();
    }
    cache.set_with_tags(b"tagged", b"v", MINUTE, &[b"tag"]).unwrap();
    let key_slot = slot_of(&cluster, "fail:probe");
    let victim = cluster.owner(key_slot, 0);
    let replica = cluster.replica_of(victim);
    std::thread::sleep(Duration::from_millis(500));

    let killed = Instant::now();
    cluster.nodes[victim].kill();
    let mut failures = 0;
    let resumed = wait_until(Duration::from_secs(30), || match cache.set(b"probe", b"after", MINUTE) {
        Ok(()) => true,
        Err(error) => {
            assert!(
                matches!(error.kind, rcache::ErrorKind::Connection | rcache::ErrorKind::Timeout | rcache::ErrorKind::Server),
                "{error}"
            );
            failures += 1;
            false
        }
    });
    assert!(resumed, "writes resumed after the failover");
    eprintln!("cluster failover: first write {:.2} s after the kill, {failures} failed calls", killed.elapsed().as_secs_f64());
    assert_eq!(cluster.role(replica), "master", "the replica was promoted");
    assert_eq!(cluster.owner(key_slot, replica), replica);
    assert_eq!(cache.get(b"probe").unwrap().as_deref(), Some(&b"after"[..]));
    for index in 0..300 {
        let value = cache.get(format!("before:{index}").as_bytes()).unwrap();
        assert_eq!(value, Some(index.to_string().into_bytes()), "before:{index} survived the failover");
    }
    assert_eq!(cache.get(b"tagged").unwrap().as_deref(), Some(&b"v"[..]));
    cache.invalidate_tags(&[b"tag"]).unwrap();
    assert_eq!(cache.get(b"tagged").unwrap(), None);
    // Listing asks a node for the primaries; until gossip has told every node
    // of the promotion it may still name the dead one, and the call fails.
    let mut last = None;
    let listed = support::wait_until(Duration::from_secs(30), || {
        let listing = cache.keys(Some(b"before:*"));
        let done = listing.as_ref().is_ok_and(|keys| keys.len() == 300);
        last = Some(listing.map(|keys| keys.len()));
        done
    });
    assert!(listed, "listing scans the new primary: last attempt {last:?}");
    let computed = cache.get_or_compute(b"computed", &ComputeOptions::default(), || Ok::<_, ()>(b"v".to_vec())).unwrap();
    assert_eq!(computed, b"v");
}

/// Whether a node has a near-cache tracking connection (named `rcache-near`).
fn tracks_near(port: u16) -> bool {
    let list: redis::RedisResult<String> = query(port, redis::cmd("CLIENT").arg("LIST"));
    list.is_ok_and(|list| list.lines().any(|line| line.contains(" name=rcache-near ")))
}

/// A near-cache handle and a plain one on a fresh cluster, `{hot}:k`
/// written and served near, and the index of the primary serving it.
fn near_reader(cluster: &RedisCluster) -> (Cache, Cache, usize) {
    let options = Options { key_prefix: b"near:".to_vec(), ..Options::default() };
    let reader = Cache::connect(Some(&format!("{}?near_cache=1000", cluster.url())), options).unwrap();
    let writer = connect(cluster, "near:");
    writer.set(b"{hot}:k", b"before", MINUTE).unwrap();
    let near_hit = || {
        let before = reader.stats().near_hits;
        reader.get(b"{hot}:k").unwrap().is_some() && reader.stats().near_hits > before
    };
    assert!(wait_until(Duration::from_secs(5), near_hit), "the near cache serves the key");
    let owner = cluster.owner(slot_of(cluster, "near:{hot}:k"), 0);
    assert!(tracks_near(cluster.nodes[owner].port));
    (reader, writer, owner)
}

#[test]
fn a_near_reader_follows_a_slot_migration() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cluster = RedisCluster::start();
    let (reader, writer, source) = near_reader(&cluster);
    let hot = slot_of(&cluster, "near:{hot}:k");
    let target = *cluster.primaries().iter().find(|&&primary| primary != source).unwrap();
    let (source_port, target_port) = (cluster.nodes[source].port, cluster.nodes[target].port);
    let (checked, near) = support::near::read_through(
        &reader,
        &writer,
        b"{hot}:k",
        support::near::Scenario {
            fault: &mut || {
                let (source_id, target_id) = (cluster.node_id(source), cluster.node_id(target));
                let setslot = |port: u16, args: &[&str]| {
                    let () = query(port, redis::cmd("CLUSTER").arg("SETSLOT").arg(hot).arg(args)).unwrap();
                };
                setslot(target_port, &["IMPORTING", &source_id]);
                setslot(source_port, &["MIGRATING", &target_id]);
                loop {
                    let keys: Vec<Vec<u8>> =
                        query(source_port, redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(hot).arg(5)).unwrap();
                    if keys.is_empty() {
                        break;
                    }
                    let mut migrate = redis::cmd("MIGRATE");
                    migrate.arg("127.0.0.1").arg(target_port).arg("").arg(0).arg(5000).arg("REPLACE").arg("KEYS").arg(&keys);
                    let _: String = query(source_port, &migrate).unwrap();
                }
                for index in cluster.primaries() {
                    setslot(cluster.nodes[index].port, &["NODE", &target_id]);
                }
            },
            landed: &|_| true,
            tracking_back: &|| true,
        },
    );
    assert_eq!(cluster.owner(hot, source), target, "the slot moved");
    eprintln!("near reader through a slot migration: {checked} reads of the last value, {near} of them near hits");
}

#[test]
fn a_near_reader_follows_a_killed_primary() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut cluster = RedisCluster::start();
    let (reader, writer, victim) = near_reader(&cluster);
    let replica = cluster.replica_of(victim);
    std::thread::sleep(Duration::from_millis(500));
    let flushes = reader.stats().near_flushes;
    let replica_port = cluster.nodes[replica].port;
    let (checked, near) = support::near::read_through(
        &reader,
        &writer,
        b"{hot}:k",
        support::near::Scenario {
            fault: &mut || cluster.nodes[victim].kill(),
            landed: &|_| true,
            tracking_back: &|| tracks_near(replica_port),
        },
    );
    assert_eq!(cluster.role(replica), "master", "the replica was promoted");
    assert!(reader.stats().near_flushes > flushes, "losing the primary emptied the near cache");
    eprintln!("near reader through a killed primary: {checked} reads of the last value, {near} of them near hits");
}

#[test]
fn tagged_entries_are_served_near_and_dropped_by_a_tag_invalidated_elsewhere() {
    let cluster = RedisCluster::shared();
    let options = Options { key_prefix: b"neartags:".to_vec(), ..Options::default() };
    let reader = Cache::connect(Some(&format!("{}?near_cache=1000", cluster.url())), options).unwrap();
    let writer = connect(cluster, "neartags:");
    // Tags whose keys live in other slots than the entries, on other nodes.
    let tags: [&[u8]; 3] = [b"a", b"b", b"c"];
    for index in 0..20 {
        writer.set_with_tags(format!("e{index}").as_bytes(), b"v", MINUTE, &tags).unwrap();
    }
    let all_near = || {
        let before = reader.stats().near_hits;
        (0..20).all(|index| reader.get(format!("e{index}").as_bytes()).unwrap().as_deref() == Some(&b"v"[..]))
            && reader.stats().near_hits == before + 20
    };
    assert!(wait_until(Duration::from_secs(5), all_near), "tagged entries are served near");
    writer.invalidate_tags(&[b"b"]).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || (0..20).all(|index| reader.get(format!("e{index}").as_bytes()).unwrap().is_none()))
    );
    writer.set_with_tags(b"e0", b"w", MINUTE, &[b"c"]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || reader.get(b"e0").unwrap().as_deref() == Some(&b"w"[..])));
    writer.invalidate_tags(&[b"c"]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || reader.get(b"e0").unwrap().is_none()), "a tag of its own node's keys");
}

#[test]
fn a_large_set_cut_off_by_the_deadline_is_not_stored_and_holds_up_no_later_call() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // No replicas: a node paused for a moment is not failed over.
    let cluster = RedisCluster::start_with_replicas(0);
    let options = Options {
        key_prefix: b"cut:".to_vec(),
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        max_value_bytes: 64 * 1024 * 1024,
        ..Options::default()
    };
    let cache = Cache::connect(Some(&cluster.url()), options).unwrap();
    // Both keys on the node that is paused.
    cache.set(b"{big}small", b"v", MINUTE).unwrap();
    let owner = cluster.owner(slot_of(&cluster, "cut:{big}large"), 0);
    // Far more than the socket buffers hold: a paused node leaves most of it unsent.
    let large = vec![b'x'; 48 * 1024 * 1024];
    cluster.nodes[owner].pause();
    let error = cache.set(b"{big}large", &large, MINUTE).unwrap_err();
    cluster.nodes[owner].resume();
    assert_eq!(error.kind, rcache::ErrorKind::Timeout, "{error}");
    assert!(error.message.contains("may have been applied"), "the message says the write may have happened: {error}");
    // Its connections were closed: the node discarded the partial request,
    // and the next call does not wait behind the rest of it.
    assert_eq!(cache.get(b"{big}small").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(cache.get(b"{big}large").unwrap().map(|value| value.len()), None);
    let stored: u64 = query(cluster.nodes[owner].port, redis::cmd("EXISTS").arg("cut:{big}large")).unwrap();
    assert_eq!(stored, 0, "the value cut off mid-send was not stored");
}

/// Whether the node at `asked` flags the node listening on `port` as failed
/// (`CLUSTER NODES`: `fail`, not just `fail?`).
fn flagged_failed(cluster: &RedisCluster, asked: usize, port: u16) -> bool {
    let nodes: String = query(cluster.nodes[asked].port, redis::cmd("CLUSTER").arg("NODES")).unwrap();
    let address = format!("127.0.0.1:{port}@");
    nodes.lines().any(|line| {
        let mut fields = line.split(' ').skip(1);
        fields.next().is_some_and(|node| node.starts_with(&address))
            && fields.next().is_some_and(|flags| flags.split(',').any(|flag| flag == "fail"))
    })
}

/// Three primaries without replicas that keep serving their own slots
/// while another is down (`cluster-require-full-coverage no`).
fn cluster_without_full_coverage() -> RedisCluster {
    let cluster = RedisCluster::start_with_replicas(0);
    for node in &cluster.nodes {
        let _: () = query(node.port, redis::cmd("CONFIG").arg("SET").arg("cluster-require-full-coverage").arg("no")).unwrap();
    }
    cluster
}

/// A stalled primary times out the calls on its own keys only: calls to the
/// other primaries go on, resent or not, before and after the Cluster flags
/// the stalled one as failed. (With Redis's default
/// `cluster-require-full-coverage yes`, a Cluster with a failed primary that
/// no replica replaces answers CLUSTERDOWN for every key on every node, which
/// no client can serve through; an operator who wants the other primaries to
/// keep serving turns it off, as here.)
#[test]
fn a_paused_node_times_out_its_own_keys_only() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cluster = cluster_without_full_coverage();
    let options = Options {
        key_prefix: b"stall:".to_vec(),
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let cache = Cache::connect(Some(&cluster.url()), options).unwrap();
    let owner_of = |key: &str| cluster.owner(slot_of(&cluster, &format!("stall:{key}")), 0);
    let stalled = owner_of("{a}");
    let healthy = (0..100).map(|index| format!("{{b{index}}}")).find(|key| owner_of(key) != stalled).unwrap();
    let observer = owner_of(&healthy);
    cache.set(b"{a}", b"a", MINUTE).unwrap();
    cache.set(healthy.as_bytes(), b"b", MINUTE).unwrap();
    let counter = format!("{healthy}:counter");

    cluster.nodes[stalled].pause();
    // Rounds until the other primaries flag the paused one as failed
    // (after `cluster-node-timeout`), then two more.
    let (mut stalled_calls, mut healthy_calls) = (Vec::new(), Vec::new());
    let mut rounds_flagged = 0;
    let give_up = Instant::now() + Duration::from_secs(30);
    while rounds_flagged < 2 && Instant::now() < give_up {
        if flagged_failed(&cluster, observer, cluster.nodes[stalled].port) {
            rounds_flagged += 1;
        }
        stalled_calls.push((cache.get(b"{a}").map(drop), rcache::ErrorKind::Timeout));
        // Sent once: its reply is lost, not its request.
        stalled_calls.push((cache.increment(b"{a}:counter", 1, MINUTE).map(drop), rcache::ErrorKind::UnknownOutcome));
        healthy_calls.push(cache.get(healthy.as_bytes()).map(|read| read == Some(b"b".to_vec())));
        healthy_calls.push(cache.increment(counter.as_bytes(), 1, MINUTE).map(|count| count > 0));
    }
    cluster.nodes[stalled].resume();

    assert_eq!(rounds_flagged, 2, "the Cluster flagged the paused primary as failed");
    for (call, expected) in stalled_calls {
        assert!(matches!(&call, Err(error) if error.kind == expected), "{expected:?}: {call:?}");
    }
    for call in healthy_calls {
        assert!(call.unwrap(), "a call to a healthy primary returns its value");
    }
    assert!(wait_until(Duration::from_secs(10), || cache.get(b"{a}").ok().flatten().is_some()));
}

/// A large `set` cut off by a stalled primary closes its lane's connections
/// to every node; the lane opened after it finds the Cluster without waiting
/// for the stalled node again, and serves the other primaries while it
/// stalls. (The stalled node is not one the URL names: discovering from a
/// stalled seed costs the first call on the new lane its deadline.)
#[test]
fn a_large_set_cut_off_by_a_stalled_node_holds_up_no_call_to_the_others() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cluster = cluster_without_full_coverage();
    let options = Options {
        key_prefix: b"far:".to_vec(),
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(1000),
        max_value_bytes: 64 * 1024 * 1024,
        ..Options::default()
    };
    let cache = Cache::connect(Some(&cluster.url()), options).unwrap();
    let owner_of = |key: &str| cluster.owner(slot_of(&cluster, &format!("far:{key}")), 0);
    // The URL names nodes 0 and 1.
    let stalled_key = (0..100).map(|index| format!("{{a{index}}}")).find(|key| owner_of(key) == 2).unwrap();
    let healthy = (0..100).map(|index| format!("{{b{index}}}")).find(|key| owner_of(key) != 2).unwrap();
    cache.set(healthy.as_bytes(), b"b", MINUTE).unwrap();
    let counter = format!("{healthy}:counter");
    // Far more than the socket buffers hold: the paused node leaves most of it unsent.
    let large = vec![b'x'; 48 * 1024 * 1024];

    cluster.nodes[2].pause();
    let cut_off = cache.set(stalled_key.as_bytes(), &large, MINUTE).map_err(|error| error.kind);
    let mut healthy_calls = Vec::new();
    let mut stalled_calls = Vec::new();
    for _ in 0..3 {
        healthy_calls.push(cache.get(healthy.as_bytes()).map(|read| read == Some(b"b".to_vec())));
        healthy_calls.push(cache.increment(counter.as_bytes(), 1, MINUTE).map(|count| count > 0));
        stalled_calls.push(cache.get(stalled_key.as_bytes()).map_err(|error| error.kind));
    }
    cluster.nodes[2].resume();

    assert_eq!(cut_off, Err(rcache::ErrorKind::Timeout));
    for call in healthy_calls {
        assert!(call.unwrap(), "a call to a healthy primary returns its value");
    }
    for call in stalled_calls {
        assert_eq!(call, Err(rcache::ErrorKind::Timeout));
    }
    assert!(wait_until(Duration::from_secs(10), || cache.get(stalled_key.as_bytes()).is_ok()));
    assert_eq!(cache.get(stalled_key.as_bytes()).unwrap(), None, "the value cut off mid-send was not stored");
}
