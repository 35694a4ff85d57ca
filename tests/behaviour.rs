//! The behavioural suite, run against every backend: each case is a function
//! of a fresh `Cache`, instantiated once per backend by `suite!` (memory://,
//! Redis, and Redis with a near cache).

mod support;

use std::time::Duration;

use rcache::{
    Cache, ComputeError, ComputeOptions, Computed, ErrorKind, FailSafe, MemoryLimits, OnWaitTimeout, Options, Remaining,
    SaveOutcome, Ttl, WriteCondition,
};
use support::{RedisCluster, RedisServer, SentinelGroup, wait_until};

const SHORT: Ttl = Ttl::After(Duration::from_millis(80));

fn ttl_secs(secs: u64) -> Ttl {
    Ttl::After(Duration::from_secs(secs))
}

fn set_then_get_and_miss(cache: &Cache) {
    assert_eq!(cache.get(b"absent").unwrap(), None);
    cache.set(b"greeting", b"hello", ttl_secs(60)).unwrap();
    assert_eq!(cache.get(b"greeting").unwrap().as_deref(), Some(&b"hello"[..]));
    cache.set(b"greeting", b"again", ttl_secs(60)).unwrap();
    assert_eq!(cache.get(b"greeting").unwrap().as_deref(), Some(&b"again"[..]));
}

fn keys_and_values_are_binary_safe(cache: &Cache) {
    let every_byte: Vec<u8> = (0..=255).collect();
    let key = b"k\0\xff\xfe\n\r ";
    cache.set(key, &every_byte, ttl_secs(60)).unwrap();
    assert_eq!(cache.get(key).unwrap(), Some(every_byte.clone()));
    assert_eq!(cache.get(b"k").unwrap(), None, "a key is not cut at its NUL byte");
    cache.set(&every_byte, b"", ttl_secs(60)).unwrap();
    assert_eq!(cache.get(&every_byte).unwrap(), Some(Vec::new()), "an empty value is a hit");
}

fn entries_expire(cache: &Cache) {
    cache.set(b"short", b"v", SHORT).unwrap();
    assert!(cache.exists(b"short").unwrap());
    assert!(wait_until(Duration::from_secs(3), || cache.get(b"short").unwrap().is_none()));
    assert!(!cache.exists(b"short").unwrap());
    assert_eq!(cache.remaining(b"short").unwrap(), Remaining::Missing);
}

fn ttl_never_and_default(cache: &Cache) {
    cache.set(b"forever", b"v", Ttl::Never).unwrap();
    assert_eq!(cache.remaining(b"forever").unwrap(), Remaining::Forever);
    cache.set(b"default", b"v", Ttl::Default).unwrap();
    match cache.options().default_ttl {
        None => assert_eq!(cache.remaining(b"default").unwrap(), Remaining::Forever),
        Some(ttl) => assert!(matches!(cache.remaining(b"default").unwrap(), Remaining::Left(left) if left <= ttl)),
    }
}

fn remaining_and_expire(cache: &Cache) {
    cache.set(b"k", b"v", ttl_secs(100)).unwrap();
    let Remaining::Left(left) = cache.remaining(b"k").unwrap() else { panic!("expected a TTL") };
    assert!(left > Duration::from_secs(95) && left <= Duration::from_secs(100));
    assert!(cache.expire(b"k", ttl_secs(1000)).unwrap());
    let Remaining::Left(left) = cache.remaining(b"k").unwrap() else { panic!("expected a TTL") };
    assert!(left > Duration::from_secs(990));
    assert!(cache.expire(b"k", Ttl::Never).unwrap());
    assert_eq!(cache.remaining(b"k").unwrap(), Remaining::Forever);
    assert!(!cache.expire(b"absent", ttl_secs(10)).unwrap());
    assert!(!cache.expire(b"absent", Ttl::Never).unwrap());
    assert!(cache.expire(b"k", SHORT).unwrap());
    assert!(wait_until(Duration::from_secs(3), || !cache.exists(b"k").unwrap()));
}

fn delete_and_exists(cache: &Cache) {
    assert!(!cache.delete(b"k").unwrap());
    cache.set(b"k", b"v", ttl_secs(60)).unwrap();
    assert!(cache.exists(b"k").unwrap());
    assert!(cache.delete(b"k").unwrap());
    assert!(!cache.exists(b"k").unwrap());
    assert_eq!(cache.get(b"k").unwrap(), None);
}

fn many_at_once(cache: &Cache) {
    assert_eq!(cache.get_many(&[]).unwrap(), Vec::<Option<Vec<u8>>>::new());
    cache.set_many(&[], ttl_secs(60)).unwrap();
    cache.set_many(&[(b"a", b"1"), (b"b", b""), (b"c", b"3")], ttl_secs(60)).unwrap();
    let values = cache.get_many(&[b"c", b"missing", b"a", b"b"]).unwrap();
    assert_eq!(values, vec![Some(b"3".to_vec()), None, Some(b"1".to_vec()), Some(Vec::new())]);
    assert!(matches!(cache.remaining(b"a").unwrap(), Remaining::Left(_)));
    let invalid = cache.set_many(&[(b"x", b"1"), (b"", b"2")], ttl_secs(60)).unwrap_err();
    assert_eq!(invalid.kind, ErrorKind::InvalidArgument);
    assert_eq!(cache.get(b"x").unwrap(), None, "a rejected batch stores nothing");
}

fn counters(cache: &Cache) {
    assert_eq!(cache.increment(b"n", 1, ttl_secs(100)).unwrap(), 1);
    assert_eq!(cache.increment(b"n", 41, ttl_secs(5)).unwrap(), 42);
    assert_eq!(cache.increment(b"n", -50, ttl_secs(5)).unwrap(), -8);
    let Remaining::Left(left) = cache.remaining(b"n").unwrap() else { panic!("a new counter gets its TTL") };
    assert!(left > Duration::from_secs(90), "an existing counter keeps its TTL");
    assert_eq!(cache.get(b"n").unwrap().as_deref(), Some(&b"-8"[..]));
    cache.set(b"text", b"not a number", ttl_secs(60)).unwrap();
    assert_eq!(cache.increment(b"text", 1, ttl_secs(60)).unwrap_err().kind, ErrorKind::WrongType);
    assert_eq!(cache.get(b"text").unwrap().as_deref(), Some(&b"not a number"[..]));
    cache.set(b"big", i64::MAX.to_string().as_bytes(), ttl_secs(60)).unwrap();
    assert_eq!(cache.increment(b"big", 1, ttl_secs(60)).unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(cache.get(b"big").unwrap(), Some(i64::MAX.to_string().into_bytes()));
    assert_eq!(cache.increment(b"forever", 1, Ttl::Never).unwrap(), 1);
    assert_eq!(cache.remaining(b"forever").unwrap(), Remaining::Forever);
}

fn counter_expires_with_its_ttl(cache: &Cache) {
    assert_eq!(cache.increment(b"hits", 1, SHORT).unwrap(), 1);
    assert!(wait_until(Duration::from_secs(3), || !cache.exists(b"hits").unwrap()));
    assert_eq!(cache.increment(b"hits", 1, SHORT).unwrap(), 1, "an expired counter starts again");
}

fn bad_arguments_are_refused(cache: &Cache) {
    let kind = |result: rcache::Result<()>| result.unwrap_err().kind;
    assert_eq!(kind(cache.set(b"", b"v", ttl_secs(1))), ErrorKind::InvalidArgument);
    assert_eq!(cache.get(b"").unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.set(b"k", b"v", Ttl::After(Duration::ZERO))), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.set(b"k", b"v", Ttl::After(rcache::MAX_TTL * 2))), ErrorKind::InvalidArgument);
    let long_key = vec![b'k'; cache.options().max_key_bytes + 1];
    assert_eq!(kind(cache.set(&long_key, b"v", ttl_secs(1))), ErrorKind::TooLarge);
    let big_value = vec![0u8; cache.options().max_value_bytes + 1];
    assert_eq!(kind(cache.set(b"k", &big_value, ttl_secs(1))), ErrorKind::TooLarge);
    assert_eq!(cache.get(b"k").unwrap(), None, "nothing was stored by a refused call");
}

fn concurrent_callers_get_their_own_replies(cache: &Cache) {
    std::thread::scope(|scope| {
        for thread in 0..16 {
            scope.spawn(move || {
                for round in 0..300 {
                    let key = format!("t{thread}:{}", round % 7);
                    let value = format!("{thread}/{round}");
                    cache.set(key.as_bytes(), value.as_bytes(), ttl_secs(60)).unwrap();
                    assert_eq!(cache.get(key.as_bytes()).unwrap(), Some(value.into_bytes()));
                    cache.increment(b"shared", 1, ttl_secs(60)).unwrap();
                }
            });
        }
    });
    assert_eq!(cache.get(b"shared").unwrap(), Some(b"4800".to_vec()));
}

fn tagged_entries_vanish_when_a_tag_is_invalidated(cache: &Cache) {
    cache.set_with_tags(b"profile:1", b"ada", ttl_secs(60), &[b"user:1", b"profiles"]).unwrap();
    cache.set_with_tags(b"profile:2", b"bob", ttl_secs(60), &[b"user:2", b"profiles"]).unwrap();
    cache.set_with_tags(b"avatar:1", b"png", ttl_secs(60), &[b"user:1"]).unwrap();
    cache.set(b"plain", b"untouched", ttl_secs(60)).unwrap();
    assert_eq!(cache.get(b"profile:1").unwrap().as_deref(), Some(&b"ada"[..]));

    cache.invalidate_tags(&[b"user:1"]).unwrap();
    assert_eq!(cache.get(b"profile:1").unwrap(), None);
    assert_eq!(cache.get(b"avatar:1").unwrap(), None);
    assert!(!cache.exists(b"avatar:1").unwrap());
    assert_eq!(cache.get(b"profile:2").unwrap().as_deref(), Some(&b"bob"[..]));
    assert_eq!(
        cache.get_many(&[b"profile:1", b"profile:2", b"plain"]).unwrap(),
        vec![None, Some(b"bob".to_vec()), Some(b"untouched".to_vec())]
    );

    cache.invalidate_tags(&[b"profiles", b"never-used"]).unwrap();
    assert_eq!(cache.get(b"profile:2").unwrap(), None);
    assert_eq!(cache.get(b"plain").unwrap().as_deref(), Some(&b"untouched"[..]));

    cache.set_with_tags(b"profile:1", b"ada again", ttl_secs(60), &[b"user:1"]).unwrap();
    assert_eq!(cache.get(b"profile:1").unwrap().as_deref(), Some(&b"ada again"[..]), "a write after invalidation is valid");
}

fn tags_can_be_added_to_an_existing_entry(cache: &Cache) {
    assert!(!cache.add_tags(b"absent", &[b"t"]).unwrap());
    cache.set(b"k", b"v", ttl_secs(100)).unwrap();
    assert!(cache.add_tags(b"k", &[b"a"]).unwrap());
    assert!(cache.add_tags(b"k", &[b"a", b"b"]).unwrap());
    let Remaining::Left(left) = cache.remaining(b"k").unwrap() else { panic!("the TTL is kept") };
    assert!(left > Duration::from_secs(90));
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    cache.invalidate_tags(&[b"b"]).unwrap();
    assert_eq!(cache.get(b"k").unwrap(), None);
    assert!(!cache.add_tags(b"k", &[b"c"]).unwrap(), "an invalidated entry is missing");
}

/// `count` distinct tags starting with `prefix`.
fn tag_names(prefix: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|index| format!("{prefix}{index}").into_bytes()).collect()
}

fn slices(tags: &[Vec<u8>]) -> Vec<&[u8]> {
    tags.iter().map(Vec::as_slice).collect()
}

fn an_entry_carries_at_most_max_tags_across_add_tags_calls(cache: &Cache) {
    cache.set_with_tags(b"k", b"v", ttl_secs(60), &[b"base"]).unwrap();
    // Batches of 16: fifteen fit (1 + 15 × 16 = 241), the sixteenth would make 257.
    let batches: Vec<Vec<Vec<u8>>> = (0..20).map(|batch| tag_names(&format!("b{batch}:"), 16)).collect();
    let mut added = 0;
    for batch in &batches {
        match cache.add_tags(b"k", &slices(batch)) {
            Ok(found) => {
                assert!(found);
                added += 1;
            }
            Err(refused) => {
                assert_eq!(refused.kind, ErrorKind::InvalidArgument, "{refused}");
                assert!(refused.message.contains("257") && refused.message.contains("256"), "{refused}");
            }
        }
    }
    assert_eq!(added, 15);
    // Tags the entry carries already count once: naming them again is fine.
    assert!(cache.add_tags(b"k", &slices(&batches[0])).unwrap());
    let last = tag_names("last:", 15);
    assert!(cache.add_tags(b"k", &slices(&last)).unwrap(), "exactly the limit");
    assert_eq!(cache.add_tags(b"k", &[b"one more"]).unwrap_err().kind, ErrorKind::InvalidArgument);
    // A refused call added nothing: its tags do not touch the entry.
    cache.invalidate_tags(&[b"b15:0", b"b19:15", b"one more"]).unwrap();
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // Every accepted tag still counts.
    cache.invalidate_tags(&[b"last:14"]).unwrap();
    assert_eq!(cache.get(b"k").unwrap(), None);
    // A new entry starts from its own tags.
    cache.set_with_tags(b"k", b"w", ttl_secs(60), &slices(&last)).unwrap();
    assert!(cache.add_tags(b"k", &slices(&batches[0])).unwrap());
}

fn concurrent_add_tags_never_pass_the_cap(cache: &Cache) {
    cache.set_with_tags(b"k", b"v", ttl_secs(60), &[b"base"]).unwrap();
    let batches: Vec<Vec<Vec<u8>>> = (0..8).map(|batch| tag_names(&format!("c{batch}:"), 64)).collect();
    let accepted: Vec<bool> = std::thread::scope(|scope| {
        let calls: Vec<_> = batches
            .iter()
            .map(|batch| {
                scope.spawn(move || match cache.add_tags(b"k", &slices(batch)) {
                    Ok(found) => found,
                    Err(refused) => {
                        assert_eq!(refused.kind, ErrorKind::InvalidArgument, "{refused}");
                        false
                    }
                })
            })
            .collect();
        calls.into_iter().map(|call| call.join().unwrap()).collect()
    });
    // 1 + 3 × 64 = 193 fit, in whatever order the calls ran; a fourth batch would make 257.
    assert_eq!(accepted.iter().filter(|&&accepted| accepted).count(), 3, "{accepted:?}");
    // A refused batch added none of its tags.
    for (batch, _) in batches.iter().zip(&accepted).filter(|(_, accepted)| !**accepted) {
        cache.invalidate_tags(&slices(batch)).unwrap();
    }
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // An accepted batch added all of them.
    let (batch, _) = batches.iter().zip(&accepted).find(|(_, accepted)| **accepted).unwrap();
    cache.invalidate_tags(&[&batch[63]]).unwrap();
    assert_eq!(cache.get(b"k").unwrap(), None);
}

fn tagged_values_are_binary_safe_and_may_be_empty(cache: &Cache) {
    let every_byte: Vec<u8> = (0..=255).collect();
    cache.set_with_tags(b"bin", &every_byte, ttl_secs(60), &[b"t\0:x", &every_byte[..40]]).unwrap();
    assert_eq!(cache.get(b"bin").unwrap(), Some(every_byte.clone()));
    cache.set_with_tags(b"empty", b"", Ttl::Never, &[b"t"]).unwrap();
    assert_eq!(cache.get(b"empty").unwrap(), Some(Vec::new()));
    assert_eq!(
        cache.increment(b"empty", 1, ttl_secs(60)).unwrap_err().kind,
        ErrorKind::WrongType,
        "a tagged entry is no counter"
    );
    cache.invalidate_tags(&[&every_byte[..40]]).unwrap();
    assert_eq!(cache.get(b"bin").unwrap(), None);
    assert_eq!(cache.get(b"empty").unwrap(), Some(Vec::new()));
}

fn bad_tags_are_refused(cache: &Cache) {
    let kind = |result: rcache::Result<()>| result.unwrap_err().kind;
    assert_eq!(kind(cache.set_with_tags(b"k", b"v", ttl_secs(1), &[b""])), ErrorKind::InvalidArgument);
    let long_tag = vec![b't'; cache.options().max_key_bytes + 1];
    assert_eq!(kind(cache.set_with_tags(b"k", b"v", ttl_secs(1), &[&long_tag])), ErrorKind::TooLarge);
    let many: Vec<&[u8]> = (0..=rcache::MAX_TAGS).map(|_| &b"t"[..]).collect();
    assert_eq!(kind(cache.invalidate_tags(&many)), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.set(b"__rcache_tag:x", b"v", ttl_secs(1))), ErrorKind::InvalidArgument);
    assert_eq!(cache.get(b"k").unwrap(), None, "nothing was stored by a refused call");
}

fn clear_by_pattern_and_whole_namespace(cache: &Cache) {
    for key in ["user:1", "user:2", "user:10", "post:1", "a*b"] {
        cache.set(key.as_bytes(), b"v", ttl_secs(60)).unwrap();
    }
    cache.set_with_tags(b"user:3", b"v", ttl_secs(60), &[b"t"]).unwrap();
    assert_eq!(cache.clear(Some(b"user:?")).unwrap(), 3);
    assert!(cache.exists(b"user:10").unwrap());
    assert!(!cache.exists(b"user:1").unwrap());
    assert_eq!(cache.clear(Some(b"a\\*b")).unwrap(), 1);
    assert!(cache.exists(b"post:1").unwrap());
    let deleted = cache.clear(None).unwrap();
    assert!(deleted >= 2, "the rest, tags included: {deleted}");
    for key in ["user:10", "post:1"] {
        assert!(!cache.exists(key.as_bytes()).unwrap());
    }
    assert_eq!(cache.clear(None).unwrap(), 0);
}

fn a_write_racing_an_invalidation_never_survives_it(cache: &Cache) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const WRITERS: usize = 3;
    // Each writer stores increasing sequence numbers and publishes the last
    // one whose write has returned. A write that returned before an
    // invalidation started must be unreadable once the invalidation returns.
    let landed: [AtomicU64; WRITERS] = Default::default();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (landed, stop) = (&landed[writer], &stop);
            scope.spawn(move || {
                let key = format!("race:{writer}");
                let mut sequence = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    cache.set_with_tags(key.as_bytes(), sequence.to_string().as_bytes(), ttl_secs(60), &[b"race"]).unwrap();
                    landed.store(sequence, Ordering::SeqCst);
                }
            });
        }
        let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for _ in 0..200 {
                let before: Vec<u64> = landed.iter().map(|last| last.load(Ordering::SeqCst)).collect();
                cache.invalidate_tags(&[b"race"]).unwrap();
                for (writer, landed_before) in before.iter().enumerate() {
                    if let Some(value) = cache.get(format!("race:{writer}").as_bytes()).unwrap() {
                        let sequence: u64 = String::from_utf8(value).unwrap().parse().unwrap();
                        assert!(sequence > *landed_before, "writer {writer}: read {sequence}, invalidated up to {landed_before}");
                    }
                }
            }
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = check {
            std::panic::resume_unwind(panic);
        }
    });
}

fn get_or_compute_computes_once_then_hits(cache: &Cache) {
    let options = ComputeOptions { ttl: ttl_secs(60), tags: &[b"t"], ..ComputeOptions::default() };
    let computed = cache.get_or_compute(b"k", &options, || Ok::<_, ()>(b"fresh".to_vec())).unwrap();
    assert_eq!(computed, b"fresh");
    let hit = cache.get_or_compute(b"k", &options, || -> Result<Vec<u8>, ()> { panic!("must not compute on a hit") });
    assert_eq!(hit.unwrap(), b"fresh");
    cache.invalidate_tags(&[b"t"]).unwrap();
    let again = cache.get_or_compute(b"k", &options, || Ok::<_, ()>(b"again".to_vec())).unwrap();
    assert_eq!(again, b"again", "tags given to get_or_compute are recorded");
}

fn a_failed_computation_stores_nothing_and_frees_the_lock(cache: &Cache) {
    let options = ComputeOptions { ttl: ttl_secs(60), lock_lease: Duration::from_secs(60), ..ComputeOptions::default() };
    let failed = cache.get_or_compute(b"k", &options, || Err::<Vec<u8>, _>("backend down"));
    assert!(matches!(failed, Err(ComputeError::Compute("backend down"))));
    assert_eq!(cache.get(b"k").unwrap(), None);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.get_or_compute(b"k", &options, || -> Result<Vec<u8>, ()> { panic!("bug in the computation") })
    }));
    assert!(panicked.is_err());
    // The lock was released, not left to expire: a caller that would rather
    // fail than wait computes at once.
    let impatient = ComputeOptions { wait_timeout: Duration::from_millis(1), on_wait_timeout: OnWaitTimeout::Fail, ..options };
    let value = cache.get_or_compute(b"k", &impatient, || Ok::<_, ()>(b"ok".to_vec())).unwrap();
    assert_eq!(value, b"ok");
}

fn concurrent_misses_compute_once(cache: &Cache) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let computations = AtomicU32::new(0);
    // A lease much shorter than the computation: renewal (every third of the
    // lease) must keep the lock. Not so short that a loaded machine starves
    // the renewing thread for a whole lease.
    let options = ComputeOptions { ttl: ttl_secs(60), lock_lease: Duration::from_millis(300), ..ComputeOptions::default() };
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                let value = cache
                    .get_or_compute(b"slow", &options, || {
                        computations.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(1200));
                        Ok::<_, ()>(b"expensive".to_vec())
                    })
                    .unwrap();
                assert_eq!(value, b"expensive");
            });
        }
    });
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.computations, 1);
    assert!(stats.lock_waits >= 1, "the other callers waited");
}

fn stats_count_hits_misses_and_latency(cache: &Cache) {
    assert_eq!(cache.get(b"k").unwrap(), None);
    cache.set(b"k", b"v", ttl_secs(60)).unwrap();
    assert!(cache.get(b"k").unwrap().is_some());
    cache.get_many(&[b"k", b"absent"]).unwrap();
    assert!(cache.increment(b"k", 1, ttl_secs(60)).is_err());
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (2, 2));
    assert_eq!(stats.other_errors, 1, "the wrong-type increment");
    assert!(stats.latency_p50 > Duration::ZERO && stats.latency_p50 <= stats.latency_p99);
    assert!(stats.latency_p99 <= stats.latency_max);
}

fn waiters_take_over_from_a_failed_computation(cache: &Cache) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let attempts = AtomicU32::new(0);
    let options = ComputeOptions { ttl: ttl_secs(60), ..ComputeOptions::default() };
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    cache.get_or_compute(b"k", &options, || {
                        std::thread::sleep(Duration::from_millis(50));
                        match attempts.fetch_add(1, Ordering::SeqCst) {
                            0 => Err("first attempt fails"),
                            _ => Ok(b"second".to_vec()),
                        }
                    })
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|result| result.is_err()).count(), 1, "only the failing caller sees its error");
    assert!(results.iter().flatten().all(|value| value == b"second"));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

fn a_waiter_gives_up_or_computes_after_its_timeout(cache: &Cache) {
    let holder = ComputeOptions { ttl: ttl_secs(60), ..ComputeOptions::default() };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            cache
                .get_or_compute(b"k", &holder, || {
                    std::thread::sleep(Duration::from_millis(600));
                    Ok::<_, ()>(b"slow".to_vec())
                })
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(100));
        let impatient =
            ComputeOptions { wait_timeout: Duration::from_millis(50), on_wait_timeout: OnWaitTimeout::Fail, ..holder };
        let gave_up = cache.get_or_compute(b"k", &impatient, || Ok::<_, ()>(b"mine".to_vec()));
        assert!(matches!(gave_up, Err(ComputeError::Cache(ref error)) if error.kind == ErrorKind::Timeout));
        let itself = ComputeOptions { on_wait_timeout: OnWaitTimeout::Compute, ..impatient };
        let computed = cache.get_or_compute(b"k", &itself, || Ok::<_, ()>(b"mine".to_vec())).unwrap();
        assert_eq!(computed, b"mine");
    });
}

fn extending_a_tagged_entry_keeps_its_tags_alive(cache: &Cache) {
    cache.set_with_tags(b"k", b"v", Ttl::After(Duration::from_millis(200)), &[b"t"]).unwrap();
    assert!(cache.expire(b"k", ttl_secs(60)).unwrap());
    std::thread::sleep(Duration::from_millis(200) + rcache::backend::TAG_MARGIN + Duration::from_millis(300));
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"v"[..]), "the tag outlives its first deadline");
    cache.invalidate_tags(&[b"t"]).unwrap();
    assert_eq!(cache.get(b"k").unwrap(), None);
    assert_eq!(cache.remaining(b"k").unwrap(), Remaining::Missing, "an invalidated entry has no TTL");
    assert!(!cache.expire(b"k", ttl_secs(60)).unwrap());
    assert!(!cache.delete(b"k").unwrap());
}

fn a_plain_value_that_looks_like_a_tagged_entry_reads_back_unchanged(cache: &Cache) {
    let tricky = [b"\0rcache-tags\0".as_slice(), b"0:hello"].concat();
    cache.set(b"k", &tricky, ttl_secs(60)).unwrap();
    assert_eq!(cache.get(b"k").unwrap(), Some(tricky.clone()));
    cache.set_many(&[(b"m", &tricky)], ttl_secs(60)).unwrap();
    assert_eq!(cache.get_many(&[b"m"]).unwrap(), vec![Some(tricky)]);
}

fn early_refresh_recomputes_before_expiry_one_caller_at_a_time(cache: &Cache) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let run = |beta: f64, key: &[u8]| {
        let (computations, running, overlapped) = (AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0));
        let options = ComputeOptions {
            ttl: Ttl::After(Duration::from_millis(1500)),
            early_refresh_beta: beta,
            ..ComputeOptions::default()
        };
        let compute = || {
            if running.fetch_add(1, Ordering::SeqCst) > 0 {
                overlapped.fetch_add(1, Ordering::SeqCst);
            }
            let round = computations.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(40));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, ()>(round.to_string().into_bytes())
        };
        cache.get_or_compute(key, &options, compute).unwrap();
        let until = std::time::Instant::now() + Duration::from_millis(1000);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    while std::time::Instant::now() < until {
                        cache.get_or_compute(key, &options, compute).unwrap();
                        std::thread::sleep(Duration::from_millis(2));
                    }
                });
            }
        });
        assert_eq!(overlapped.load(Ordering::SeqCst), 0, "one refresh at a time");
        computations.load(Ordering::SeqCst)
    };
    // Within 1 s of a 1.5 s TTL, only early refresh recomputes.
    assert_eq!(run(0.0, b"steady"), 1, "beta 0 turns early refresh off");
    assert!(run(30.0, b"eager") >= 2, "with a large beta the value is refreshed before it expires");
}

fn sessions_save_with_versions_and_never_lose_an_update(cache: &Cache) {
    let sessions = cache.sessions(b"sess:");
    let new = sessions.create(&[(b"user", b"ada")], ttl_secs(60)).unwrap();
    assert_eq!(new.id.len(), 32);
    assert_eq!(new.secret.len(), 32);
    let (id, secret) = (new.id.as_bytes(), new.secret.as_bytes());
    let loaded = sessions.load(id, secret, None).unwrap().unwrap();
    assert_eq!(loaded.fields, vec![(b"user".to_vec(), b"ada".to_vec())]);
    assert_eq!(loaded.version, 1);

    assert_eq!(
        sessions.save(id, secret, Some(1), &[(b"cart", b"3 items")], &[b"user"], ttl_secs(60)).unwrap(),
        SaveOutcome::Saved(2)
    );
    assert_eq!(sessions.save(id, secret, Some(1), &[(b"cart", b"stale")], &[], ttl_secs(60)).unwrap(), SaveOutcome::Conflict(2));
    let loaded = sessions.load(id, secret, None).unwrap().unwrap();
    assert_eq!(loaded.fields, vec![(b"cart".to_vec(), b"3 items".to_vec())]);
    // Version 0 is none a session has: it means any version, as in the C API.
    assert_eq!(sessions.save(id, secret, Some(0), &[], &[], ttl_secs(60)).unwrap(), SaveOutcome::Saved(3));

    // Racing writers: every save lands or reports a conflict; none is lost.
    sessions.save(id, secret, None, &[(b"count", b"0")], &[], ttl_secs(60)).unwrap();
    let landed = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    loop {
                        let record = sessions.load(id, secret, None).unwrap().unwrap();
                        let count: u64 = record
                            .fields
                            .iter()
                            .find(|(name, _)| name == b"count")
                            .map(|(_, value)| String::from_utf8(value.clone()).unwrap().parse().unwrap())
                            .unwrap();
                        let next = (count + 1).to_string();
                        match sessions
                            .save(id, secret, Some(record.version), &[(b"count", next.as_bytes())], &[], ttl_secs(60))
                            .unwrap()
                        {
                            SaveOutcome::Saved(_) => break,
                            SaveOutcome::Conflict(_) => continue,
                            SaveOutcome::Missing => panic!("the session vanished"),
                        }
                    }
                    landed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    let record = sessions.load(id, secret, None).unwrap().unwrap();
    let count = record.fields.iter().find(|(name, _)| name == b"count").unwrap().1.clone();
    assert_eq!(count, b"200".to_vec(), "200 saves landed, none lost");
}

fn a_session_secret_is_never_stored(cache: &Cache) {
    let sessions = cache.sessions(b"sess:");
    let new = sessions.create(&[(b"user", b"ada")], ttl_secs(60)).unwrap();
    let key = [&b"sess:"[..], new.id.as_bytes()].concat();
    // On Redis the session is a hash any client can read; memory:// keeps sessions apart.
    let stored = cache.hash_get(&key).ok().flatten().unwrap_or_default();
    let secret = new.secret.as_bytes();
    for (name, value) in &stored {
        assert!(
            !value.windows(secret.len()).any(|window| window == secret),
            "field {:?} holds the secret",
            String::from_utf8_lossy(name)
        );
    }
    assert!(sessions.load(new.id.as_bytes(), secret, None).unwrap().is_some());
}

fn a_lock_owner_that_looks_like_a_tagged_entry_is_refused(cache: &Cache) {
    let owner = b"\0rcache-tags\0999:evil\0";
    for result in [
        cache.lock(b"held", owner, Duration::from_secs(5)),
        cache.extend_lock(b"held", owner, Duration::from_secs(5)),
        cache.unlock(b"held", owner),
    ] {
        assert_eq!(result.unwrap_err().kind, ErrorKind::InvalidArgument);
    }
    assert!(!cache.exists(b"held").unwrap());
}

fn a_wrong_secret_sees_nothing_and_changes_nothing(cache: &Cache) {
    let sessions = cache.sessions(b"sess:");
    let new = sessions.create(&[(b"user", b"ada")], Ttl::After(Duration::from_millis(400))).unwrap();
    let id = new.id.as_bytes();
    let forged = b"0123456789abcdef0123456789abcdef";
    for secret in [&forged[..], b"", &new.secret.as_bytes()[..31]] {
        assert_eq!(sessions.load(id, secret, Some(ttl_secs(60))).unwrap(), None);
        assert_eq!(sessions.save(id, secret, None, &[(b"user", b"eve")], &[], ttl_secs(60)).unwrap(), SaveOutcome::Missing);
        assert!(!sessions.touch(id, secret, ttl_secs(60)).unwrap());
        assert!(!sessions.destroy(id, secret).unwrap());
        assert_eq!(sessions.lock(id, secret, Duration::from_secs(5)).unwrap(), None);
    }
    assert_eq!(sessions.load(b"no-such-id", new.secret.as_bytes(), None).unwrap(), None);
    let record = sessions.load(id, new.secret.as_bytes(), None).unwrap().unwrap();
    assert_eq!(record.fields, vec![(b"user".to_vec(), b"ada".to_vec())]);
    // The forged touches renewed nothing: the session expires on time.
    assert!(wait_until(Duration::from_secs(3), || sessions.load(id, new.secret.as_bytes(), None).unwrap().is_none()));
}

fn session_expiry_slides_on_touch_and_on_load_when_asked(cache: &Cache) {
    let sessions = cache.sessions(b"sess:");
    let short = Ttl::After(Duration::from_millis(400));
    let new = sessions.create(&[(b"k", b"v")], short).unwrap();
    let (id, secret) = (new.id.as_bytes(), new.secret.as_bytes());
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(200));
        assert!(sessions.touch(id, secret, short).unwrap());
    }
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(200));
        assert!(sessions.load(id, secret, Some(short)).unwrap().is_some(), "a sliding load renews it");
    }
    assert!(wait_until(Duration::from_secs(3), || sessions.load(id, secret, None).unwrap().is_none()));
}

fn sessions_are_listed_purged_and_locked(cache: &Cache) {
    let sessions = cache.sessions(b"sess:");
    let other = cache.sessions(b"other:");
    let idle: Vec<_> = (0..3).map(|_| sessions.create(&[(b"k", b"v")], ttl_secs(60)).unwrap()).collect();
    let kept_elsewhere = other.create(&[(b"k", b"v")], ttl_secs(60)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let active = sessions.create(&[(b"k", b"v")], ttl_secs(60)).unwrap();
    assert!(sessions.touch(idle[0].id.as_bytes(), idle[0].secret.as_bytes(), ttl_secs(60)).unwrap());
    let listed = sessions.list().unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|(_, record)| record.fields == vec![(b"k".to_vec(), b"v".to_vec())] && record.touched_ms > 0));

    assert_eq!(sessions.purge_idle(Duration::from_millis(200)).unwrap(), 2);
    let mut left: Vec<Vec<u8>> = sessions.list().unwrap().into_iter().map(|(id, _)| id).collect();
    left.sort();
    let mut expected = vec![idle[0].id.clone().into_bytes(), active.id.clone().into_bytes()];
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(other.list().unwrap().len(), 1, "another namespace is untouched");
    assert!(other.load(kept_elsewhere.id.as_bytes(), kept_elsewhere.secret.as_bytes(), None).unwrap().is_some());

    let (id, secret) = (active.id.as_bytes(), active.secret.as_bytes());
    let owner = sessions.lock(id, secret, Duration::from_secs(60)).unwrap().expect("free");
    assert_eq!(sessions.lock(id, secret, Duration::from_secs(5)).unwrap(), None, "held");
    // Loads never wait on the lock: the load answers while the lock is still held.
    assert!(sessions.load(id, secret, None).unwrap().is_some());
    assert_eq!(sessions.lock(id, secret, Duration::from_secs(5)).unwrap(), None, "still held");
    assert!(!sessions.unlock(id, b"not the owner").unwrap());
    assert!(sessions.unlock(id, owner.as_bytes()).unwrap());
    assert!(sessions.lock(id, secret, Duration::from_secs(5)).unwrap().is_some());
}

fn session_namespaces_never_reach_each_other_or_cache_entries(cache: &Cache) {
    let (app, admin) = (cache.sessions(b"app:"), cache.sessions(b"app:admin:"));
    let mine = admin.create(&[(b"role", b"root")], ttl_secs(60)).unwrap();
    let forged_id = [b"admin:".as_slice(), mine.id.as_bytes()].concat();
    assert_eq!(app.load(&forged_id, mine.secret.as_bytes(), None).unwrap(), None);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(app.purge_idle(Duration::ZERO).unwrap(), 0, "purge stays in its namespace");
    assert!(app.list().unwrap().is_empty());
    assert!(admin.load(mine.id.as_bytes(), mine.secret.as_bytes(), None).unwrap().is_some());
    // A forged id that names a cache entry is just a missing session.
    let entry_id = b"0123456789abcdef0123456789abcdef";
    cache.set(&[b"app:".as_slice(), entry_id].concat(), b"cached", ttl_secs(60)).unwrap();
    assert_eq!(app.load(entry_id, b"any", None).unwrap(), None);
    assert_eq!(app.save(entry_id, b"any", None, &[(b"a", b"b")], &[], ttl_secs(60)).unwrap(), SaveOutcome::Missing);
    assert!(!app.unlock(b"", b"owner").is_ok_and(|unlocked| unlocked));
}

fn bad_session_input_is_refused(cache: &Cache) {
    let sessions = cache.sessions(b"sess:");
    let kind = |result: rcache::Result<rcache::NewSession>| result.unwrap_err().kind;
    assert_eq!(kind(sessions.create(&[(b"__secret", b"x")], ttl_secs(60))), ErrorKind::InvalidArgument);
    assert_eq!(kind(sessions.create(&[(b"", b"x")], ttl_secs(60))), ErrorKind::InvalidArgument);
    assert_eq!(kind(sessions.create(&[(b"\xff\xfe", b"x")], ttl_secs(60))), ErrorKind::InvalidArgument);
    let big = vec![0u8; cache.options().max_value_bytes + 1];
    assert_eq!(kind(sessions.create(&[(b"data", &big)], ttl_secs(60))), ErrorKind::TooLarge);
    assert_eq!(sessions.load(b"", b"secret", None).unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(sessions.save(b"missing", b"secret", Some(1), &[(b"a", b"b")], &[], ttl_secs(60)).unwrap(), SaveOutcome::Missing);
    let new = sessions.create(&[], Ttl::After(Duration::from_millis(100))).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    let late = sessions.save(new.id.as_bytes(), new.secret.as_bytes(), Some(1), &[(b"a", b"b")], &[], ttl_secs(60));
    assert_eq!(late.unwrap(), SaveOutcome::Missing, "an expired session is not brought back by a save");
}

fn left_between(remaining: Remaining, low: Duration, high: Duration) -> bool {
    matches!(remaining, Remaining::Left(left) if left > low && left <= high)
}

fn get_with_ttl_reads_value_and_lifetime_at_once(cache: &Cache) {
    assert_eq!(cache.get_with_ttl(b"absent").unwrap(), None);
    cache.set(b"k", b"v", ttl_secs(100)).unwrap();
    let (value, remaining) = cache.get_with_ttl(b"k").unwrap().unwrap();
    assert_eq!(value, b"v");
    assert!(left_between(remaining, Duration::from_secs(95), Duration::from_secs(100)), "{remaining:?}");
    cache.set(b"forever", b"", Ttl::Never).unwrap();
    assert_eq!(cache.get_with_ttl(b"forever").unwrap(), Some((Vec::new(), Remaining::Forever)));
    cache.set_with_tags(b"tagged", b"t", ttl_secs(100), &[b"tag"]).unwrap();
    assert_eq!(cache.get_with_ttl(b"tagged").unwrap().map(|(value, _)| value), Some(b"t".to_vec()));
    cache.invalidate_tags(&[b"tag"]).unwrap();
    assert_eq!(cache.get_with_ttl(b"tagged").unwrap(), None, "an invalidated entry is a miss");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (3, 2), "counted like get");
    cache.set(b"short", b"v", SHORT).unwrap();
    assert!(wait_until(Duration::from_secs(3), || cache.get_with_ttl(b"short").unwrap().is_none()));
}

fn keep_ttl_keeps_the_current_expiry_where_a_whole_value_is_replaced(cache: &Cache) {
    cache.set(b"k", b"one", ttl_secs(100)).unwrap();
    cache.set(b"k", b"two", Ttl::Keep).unwrap();
    let (value, remaining) = cache.get_with_ttl(b"k").unwrap().unwrap();
    assert_eq!(value, b"two");
    assert!(left_between(remaining, Duration::from_secs(90), Duration::from_secs(100)), "{remaining:?}");
    cache.set(b"new", b"v", Ttl::Keep).unwrap();
    assert_eq!(cache.remaining(b"new").unwrap(), Remaining::Forever, "a new key gets no expiry");
    cache.set(b"k", b"three", Ttl::Never).unwrap();
    cache.set(b"k", b"four", Ttl::Keep).unwrap();
    assert_eq!(cache.remaining(b"k").unwrap(), Remaining::Forever);
    cache.set_with_tags(b"gone", b"v", ttl_secs(100), &[b"tag"]).unwrap();
    cache.invalidate_tags(&[b"tag"]).unwrap();
    cache.set(b"gone", b"back", Ttl::Keep).unwrap();
    assert_eq!(cache.remaining(b"gone").unwrap(), Remaining::Forever, "an invalidated entry was missing");

    // Nothing else can keep a TTL, and a refused call changes nothing.
    let invalid = |result: rcache::Result<()>| assert_eq!(result.unwrap_err().kind, ErrorKind::InvalidArgument);
    invalid(cache.expire(b"k", Ttl::Keep).map(drop));
    invalid(cache.increment(b"n", 1, Ttl::Keep).map(drop));
    invalid(cache.set_many(&[(b"m", b"v")], Ttl::Keep));
    invalid(cache.set_with_tags(b"t", b"v", Ttl::Keep, &[b"tag"]));
    invalid(cache.sessions(b"sess:").create(&[], Ttl::Keep).map(drop));
    let options = ComputeOptions { ttl: Ttl::Keep, ..ComputeOptions::default() };
    let computed = cache.get_or_compute(b"c", &options, || Ok::<_, ()>(b"v".to_vec()));
    assert!(matches!(computed, Err(ComputeError::Cache(ref error)) if error.kind == ErrorKind::InvalidArgument));
    for key in [&b"n"[..], b"m", b"t", b"c"] {
        assert!(!cache.exists(key).unwrap(), "{key:?} was not stored");
    }
}

fn compare_and_set_replaces_only_the_expected_value(cache: &Cache) {
    assert!(!cache.compare_and_set(b"k", b"", b"v", ttl_secs(60)).unwrap());
    assert!(!cache.exists(b"k").unwrap(), "a missing key is not created");
    cache.set(b"k", b"a", ttl_secs(100)).unwrap();
    assert!(!cache.compare_and_set(b"k", b"b", b"c", ttl_secs(60)).unwrap());
    assert!(!cache.compare_and_set(b"k", b"a\0", b"c", ttl_secs(60)).unwrap(), "compared byte for byte");
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"a"[..]));
    assert!(cache.compare_and_set(b"k", b"a", b"b", Ttl::Keep).unwrap());
    let (value, remaining) = cache.get_with_ttl(b"k").unwrap().unwrap();
    assert_eq!(value, b"b");
    assert!(left_between(remaining, Duration::from_secs(90), Duration::from_secs(100)), "the TTL was kept");
    assert!(cache.compare_and_set(b"k", b"b", b"", Ttl::Never).unwrap());
    assert_eq!(cache.get_with_ttl(b"k").unwrap(), Some((Vec::new(), Remaining::Forever)));
    assert!(cache.compare_and_set(b"k", b"", b"d", ttl_secs(5)).unwrap(), "an empty value is a value");
    assert!(left_between(cache.remaining(b"k").unwrap(), Duration::ZERO, Duration::from_secs(5)));

    // A tagged entry compares by its value and becomes a plain one.
    cache.set_with_tags(b"tagged", b"x", ttl_secs(60), &[b"tag"]).unwrap();
    assert!(cache.compare_and_set(b"tagged", b"x", b"y", ttl_secs(60)).unwrap());
    cache.invalidate_tags(&[b"tag"]).unwrap();
    assert_eq!(cache.get(b"tagged").unwrap().as_deref(), Some(&b"y"[..]), "no longer tagged");
    cache.set_with_tags(b"invalid", b"x", ttl_secs(60), &[b"other"]).unwrap();
    cache.invalidate_tags(&[b"other"]).unwrap();
    assert!(!cache.compare_and_set(b"invalid", b"x", b"y", ttl_secs(60)).unwrap(), "an invalidated entry is missing");
    assert_eq!(cache.get(b"invalid").unwrap(), None);

    // One winner among racing writers.
    cache.set(b"race", b"0", ttl_secs(60)).unwrap();
    let winners = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let winners = &winners;
            scope.spawn(move || {
                if cache.compare_and_set(b"race", b"0", format!("t{thread}").as_bytes(), ttl_secs(60)).unwrap() {
                    winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(winners.into_inner(), 1);

    let big = vec![0u8; cache.options().max_value_bytes + 1];
    assert_eq!(cache.compare_and_set(b"k", b"d", &big, ttl_secs(60)).unwrap_err().kind, ErrorKind::TooLarge);
    assert_eq!(cache.compare_and_set(b"k", &big, b"e", ttl_secs(60)).unwrap_err().kind, ErrorKind::TooLarge);
    assert_eq!(cache.compare_and_set(b"", b"d", b"e", ttl_secs(60)).unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"d"[..]));
}

fn sorted(fields: Option<rcache::HashFields>) -> Option<rcache::HashFields> {
    fields.map(|mut fields| {
        fields.sort();
        fields
    })
}

fn pairs(fields: &[(&str, &str)]) -> rcache::HashFields {
    fields.iter().map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec())).collect()
}

fn hash_records_merge_fields_and_read_whole(cache: &Cache) {
    let always = WriteCondition::Always;
    assert_eq!(cache.hash_get(b"h").unwrap(), None);
    assert!(cache.hash_set(b"h", &[(b"a", b"1"), (b"b", b"2")], ttl_secs(100), always).unwrap());
    assert_eq!(sorted(cache.hash_get(b"h").unwrap()), Some(pairs(&[("a", "1"), ("b", "2")])));
    assert!(cache.hash_set(b"h", &[(b"b", b"3"), (b"c", b""), (b"c", b"last")], Ttl::Keep, always).unwrap());
    assert_eq!(sorted(cache.hash_get(b"h").unwrap()), Some(pairs(&[("a", "1"), ("b", "3"), ("c", "last")])));
    assert!(left_between(cache.remaining(b"h").unwrap(), Duration::from_secs(90), Duration::from_secs(100)), "Keep kept it");
    assert!(cache.hash_set(b"h", &[(b"a", b"9")], Ttl::Never, always).unwrap());
    assert_eq!(cache.remaining(b"h").unwrap(), Remaining::Forever);
    assert!(cache.hash_set(b"h", &[(b"d", b"4")], ttl_secs(50), always).unwrap());
    assert!(left_between(cache.remaining(b"h").unwrap(), Duration::from_secs(40), Duration::from_secs(50)));

    // Binary-safe names and values, the empty name included.
    let every_byte: Vec<u8> = (0..=255).collect();
    assert!(cache.hash_set(b"bin", &[(b"", b"empty name"), (b"\0\xff", &every_byte)], Ttl::Never, always).unwrap());
    let expected = vec![(Vec::new(), b"empty name".to_vec()), (b"\0\xff".to_vec(), every_byte.clone())];
    assert_eq!(sorted(cache.hash_get(b"bin").unwrap()), Some(expected));

    // Key operations work on records.
    assert!(cache.exists(b"h").unwrap());
    assert!(cache.expire(b"h", ttl_secs(30)).unwrap());
    assert!(cache.delete(b"h").unwrap());
    assert_eq!(cache.hash_get(b"h").unwrap(), None);
    assert!(cache.hash_set(b"short", &[(b"f", b"v")], SHORT, always).unwrap());
    assert!(wait_until(Duration::from_secs(3), || cache.hash_get(b"short").unwrap().is_none()));

    // Refused calls write nothing.
    let kind = |result: rcache::Result<bool>| result.unwrap_err().kind;
    assert_eq!(kind(cache.hash_set(b"none", &[], ttl_secs(60), always)), ErrorKind::InvalidArgument);
    let big = vec![0u8; cache.options().max_value_bytes];
    assert_eq!(kind(cache.hash_set(b"none", &[(b"f", &big)], ttl_secs(60), always)), ErrorKind::TooLarge);
    assert_eq!(kind(cache.hash_set(b"none", &[(b"f", b"v")], Ttl::After(Duration::ZERO), always)), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.hash_set(b"__rcache_x", &[(b"f", b"v")], ttl_secs(60), always)), ErrorKind::InvalidArgument);
    assert!(!cache.exists(b"none").unwrap());
    let stats = cache.stats();
    assert!(stats.hits >= 3 && stats.misses >= 3, "hash_get counts like get: {stats:?}");
}

fn hash_set_conditions_decide_whether_anything_is_written(cache: &Cache) {
    use WriteCondition::{Always, IfAbsent, IfExists};
    assert!(!cache.hash_set(b"h", &[(b"a", b"1")], ttl_secs(60), IfExists).unwrap());
    assert!(!cache.exists(b"h").unwrap(), "nothing written");
    assert!(cache.hash_set(b"h", &[(b"a", b"1")], ttl_secs(60), IfAbsent).unwrap());
    assert!(!cache.hash_set(b"h", &[(b"a", b"2")], Ttl::Never, IfAbsent).unwrap());
    assert_eq!(cache.hash_get(b"h").unwrap(), Some(pairs(&[("a", "1")])), "unchanged");
    assert!(matches!(cache.remaining(b"h").unwrap(), Remaining::Left(_)), "its TTL too");
    assert!(cache.hash_set(b"h", &[(b"b", b"2")], Ttl::Keep, IfExists).unwrap());
    assert_eq!(sorted(cache.hash_get(b"h").unwrap()), Some(pairs(&[("a", "1"), ("b", "2")])));

    // A string value: absent it is not, and a record it is not.
    cache.set(b"s", b"text", ttl_secs(60)).unwrap();
    assert!(!cache.hash_set(b"s", &[(b"a", b"1")], ttl_secs(60), IfAbsent).unwrap());
    for condition in [Always, IfExists] {
        assert_eq!(cache.hash_set(b"s", &[(b"a", b"1")], ttl_secs(60), condition).unwrap_err().kind, ErrorKind::WrongType);
    }
    assert_eq!(cache.get(b"s").unwrap().as_deref(), Some(&b"text"[..]));

    // An invalidated tagged entry is missing, and a record replaces it.
    cache.set_with_tags(b"t", b"v", ttl_secs(60), &[b"tag"]).unwrap();
    cache.invalidate_tags(&[b"tag"]).unwrap();
    assert!(!cache.hash_set(b"t", &[(b"a", b"1")], ttl_secs(60), IfExists).unwrap());
    assert!(cache.hash_set(b"t", &[(b"a", b"1")], Ttl::Keep, IfAbsent).unwrap());
    assert_eq!(cache.hash_get(b"t").unwrap(), Some(pairs(&[("a", "1")])));
    assert_eq!(cache.remaining(b"t").unwrap(), Remaining::Forever);
}

fn records_and_values_are_different_types(cache: &Cache) {
    cache.hash_set(b"h", &[(b"f", b"1")], ttl_secs(60), WriteCondition::Always).unwrap();
    cache.set(b"s", b"1", ttl_secs(60)).unwrap();
    let wrong = |error: rcache::Error| assert_eq!(error.kind, ErrorKind::WrongType);
    wrong(cache.get(b"h").unwrap_err());
    wrong(cache.get_with_ttl(b"h").unwrap_err());
    wrong(cache.increment(b"h", 1, ttl_secs(60)).unwrap_err());
    wrong(cache.add_tags(b"h", &[b"tag"]).unwrap_err());
    wrong(cache.compare_and_set(b"h", b"1", b"2", ttl_secs(60)).unwrap_err());
    wrong(cache.hash_get(b"s").unwrap_err());
    match cache.get_or_compute(b"h", &ComputeOptions::default(), || Ok::<_, ()>(b"v".to_vec())) {
        Err(ComputeError::Cache(error)) => wrong(error),
        other => panic!("get_or_compute on a record: {other:?}"),
    }
    assert_eq!(cache.get_many(&[b"h", b"s"]).unwrap(), vec![None, Some(b"1".to_vec())], "MGET semantics");
    assert!(!cache.lock(b"h", b"me", Duration::from_secs(5)).unwrap(), "a record is no free lock");
    assert!(!cache.extend_lock(b"h", b"me", Duration::from_secs(5)).unwrap());
    assert!(!cache.unlock(b"h", b"me").unwrap());
    assert_eq!(cache.hash_get(b"h").unwrap(), Some(pairs(&[("f", "1")])), "left alone");
    cache.set(b"h", b"now a value", Ttl::Keep).unwrap();
    assert_eq!(cache.get(b"h").unwrap().as_deref(), Some(&b"now a value"[..]), "set replaces any type, as SET does");
    assert!(matches!(cache.remaining(b"h").unwrap(), Remaining::Left(_)), "keeping the record's TTL");
}

fn keys_lists_the_namespace_without_reserved_or_invalidated_keys(cache: &Cache) {
    assert_eq!(cache.keys(None).unwrap(), Vec::<Vec<u8>>::new());
    for key in ["user:1", "user:2", "user:10", "post:1", "a*b"] {
        cache.set(key.as_bytes(), b"v", ttl_secs(60)).unwrap();
    }
    cache.hash_set(b"record", &[(b"f", b"v")], ttl_secs(60), WriteCondition::Always).unwrap();
    cache.set_with_tags(b"tagged", b"v", ttl_secs(60), &[b"keep"]).unwrap();
    cache.set_with_tags(b"invalid", b"v", ttl_secs(60), &[b"drop"]).unwrap();
    cache.invalidate_tags(&[b"drop"]).unwrap();
    cache.get_or_compute(b"computed", &ComputeOptions::default(), || Ok::<_, ()>(b"v".to_vec())).unwrap();
    assert!(cache.lock(b"held", b"me", Duration::from_secs(60)).unwrap());
    cache.set(b"short", b"v", SHORT).unwrap();
    let names = |keys: Vec<Vec<u8>>| keys.into_iter().map(|key| String::from_utf8(key).unwrap()).collect::<Vec<_>>();
    assert!(wait_until(Duration::from_secs(3), || !cache.exists(b"short").unwrap()));
    assert_eq!(
        names(cache.keys(None).unwrap()),
        ["a*b", "computed", "held", "post:1", "record", "tagged", "user:1", "user:10", "user:2"],
        "sorted, without the prefix, the tag, lock and meta keys, the invalidated or the expired entry"
    );
    assert_eq!(names(cache.keys(Some(b"user:?")).unwrap()), ["user:1", "user:2"]);
    assert_eq!(names(cache.keys(Some(b"a\\*b")).unwrap()), ["a*b"]);
    assert_eq!(names(cache.keys(Some(b"[hr]e*")).unwrap()), ["held", "record"]);
    assert_eq!(names(cache.keys(Some(b"__rcache_*")).unwrap()), Vec::<String>::new());
    assert_eq!(names(cache.keys(Some(b"")).unwrap()), Vec::<String>::new());
}

fn locks_between_two_owners(cache: &Cache) {
    let lease = Duration::from_secs(5);
    assert!(cache.lock(b"job", b"alice", lease).unwrap());
    assert!(!cache.lock(b"job", b"bob", lease).unwrap(), "held by alice");
    assert!(!cache.lock(b"job", b"alice", lease).unwrap(), "not reentrant");
    assert!(!cache.extend_lock(b"job", b"bob", lease).unwrap());
    assert!(!cache.unlock(b"job", b"bob").unwrap());
    assert_eq!(cache.get(b"job").unwrap().as_deref(), Some(&b"alice"[..]), "the key holds its owner");
    assert!(cache.extend_lock(b"job", b"alice", Duration::from_secs(60)).unwrap());
    assert!(left_between(cache.remaining(b"job").unwrap(), Duration::from_secs(50), Duration::from_secs(60)));
    assert!(cache.unlock(b"job", b"alice").unwrap());
    assert!(!cache.exists(b"job").unwrap());
    assert!(!cache.unlock(b"job", b"alice").unwrap(), "released once");
    assert!(cache.lock(b"job", b"bob", lease).unwrap());

    // A lease that runs out frees the lock for the next owner, and the first loses it.
    assert!(cache.lock(b"brief", b"alice", Duration::from_millis(100)).unwrap());
    assert!(wait_until(Duration::from_secs(3), || cache.lock(b"brief", b"bob", lease).unwrap()));
    assert!(!cache.extend_lock(b"brief", b"alice", lease).unwrap());
    assert!(!cache.unlock(b"brief", b"alice").unwrap());
    assert!(cache.unlock(b"brief", b"bob").unwrap());

    // Only one of many contenders wins.
    let winners = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let winners = &winners;
            scope.spawn(move || {
                if cache.lock(b"contended", format!("owner{thread}").as_bytes(), lease).unwrap() {
                    winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(winners.into_inner(), 1);

    // A value that is not the owner's is never released or extended.
    cache.set(b"value", b"alice", ttl_secs(60)).unwrap();
    assert!(!cache.lock(b"value", b"alice", lease).unwrap());
    cache.set_with_tags(b"tagged", b"alice", ttl_secs(60), &[b"tag"]).unwrap();
    assert!(!cache.unlock(b"tagged", b"alice").unwrap(), "a tagged entry is no lock");
    assert!(cache.exists(b"tagged").unwrap());

    let kind = |result: rcache::Result<bool>| result.unwrap_err().kind;
    assert_eq!(kind(cache.lock(b"x", b"", lease)), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.lock(b"x", b"me", Duration::ZERO)), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.extend_lock(b"x", b"me", Duration::ZERO)), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.unlock(b"x", b"")), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.lock(b"__rcache_lock:x", b"me", lease)), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.lock(b"", b"me", lease)), ErrorKind::InvalidArgument);
    let big = vec![b'o'; cache.options().max_value_bytes + 1];
    assert_eq!(kind(cache.lock(b"x", &big, lease)), ErrorKind::TooLarge);
    assert!(!cache.exists(b"x").unwrap());
}

fn server_info_describes_the_backend(cache: &Cache) {
    for key in ["a", "b", "c"] {
        cache.set(key.as_bytes(), b"v", ttl_secs(60)).unwrap();
    }
    let text = String::from_utf8(cache.server_info().unwrap()).unwrap();
    assert!(text.starts_with("# "), "{text}");
    assert!(text.ends_with("\r\n") && !text.replace("\r\n", "").contains('\n'), "CRLF lines");
    let fields: std::collections::HashMap<&str, &str> =
        text.split("\r\n").filter(|line| !line.starts_with('#')).filter_map(|line| line.split_once(':')).collect();
    assert!(fields["used_memory"].parse::<u64>().unwrap() > 0);
    match cache.backend_kind() {
        rcache::BackendKind::Memory => {
            assert_eq!(fields["rcache_backend"], "memory");
            assert_eq!(fields["keys"], "3");
            assert!(text.contains("\r\n\r\n# Keyspace\r\n"), "{text}");
        }
        rcache::BackendKind::Redis => {
            assert!(fields.contains_key("redis_version"));
            assert!(fields["db0"].starts_with("keys=3,"), "{text}");
        }
        // Servers shared by the suite: other cases' keys count too.
        rcache::BackendKind::Sentinel | rcache::BackendKind::Cluster => {
            assert!(fields.contains_key("redis_version"));
            let keys: u64 = fields["db0"].trim_start_matches("keys=").split(',').next().unwrap().parse().unwrap();
            assert!(keys >= 3, "{text}");
        }
    }
    if cache.backend_kind() == rcache::BackendKind::Cluster {
        assert_eq!(fields["cluster_primaries"], "3");
        assert_eq!(text.matches("\r\n# Node\r\nrcache_node:").count() + usize::from(text.starts_with("# Node\r\n")), 3, "{text}");
    }
}

fn keys_and_clear_stay_in_a_namespace_with_glob_characters(open: &dyn Fn(&[u8]) -> Cache) {
    // Unescaped, "app[1]*:" would match the keys of "app1:" too.
    let (mine, theirs) = (open(b"app[1]*:"), open(b"app1:"));
    mine.set(b"k1", b"v", ttl_secs(60)).unwrap();
    mine.set(b"x?y", b"v", ttl_secs(60)).unwrap();
    mine.hash_set(b"h", &[(b"f", b"v")], ttl_secs(60), WriteCondition::Always).unwrap();
    theirs.set(b"k1", b"v", ttl_secs(60)).unwrap();
    theirs.set(b"other", b"v", ttl_secs(60)).unwrap();
    assert_eq!(mine.keys(None).unwrap(), [b"h".to_vec(), b"k1".to_vec(), b"x?y".to_vec()]);
    assert_eq!(mine.keys(Some(b"x\\?y")).unwrap(), [b"x?y".to_vec()]);
    assert_eq!(mine.keys(Some(b"k*")).unwrap(), [b"k1".to_vec()]);
    assert_eq!(theirs.keys(None).unwrap(), [b"k1".to_vec(), b"other".to_vec()]);
    assert_eq!(mine.clear(None).unwrap(), 3);
    assert_eq!(mine.keys(None).unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(theirs.keys(None).unwrap().len(), 2, "the other namespace is untouched");
}

/// A private server with an ACL user `suite` allowed every command but only
/// the keys under `suite:`, and the URL that logs in as it.
fn acl_server() -> (RedisServer, String) {
    let server = RedisServer::start();
    let mut setuser = ::redis::cmd("ACL");
    setuser.arg("SETUSER").arg("suite").arg("on").arg(">secret").arg("~suite:*").arg("+@all");
    let () = support::query(server.port, &setuser).unwrap();
    let url = format!("redis://suite:secret@127.0.0.1:{}/0", server.port);
    (server, url)
}

#[test]
fn an_acl_user_is_refused_outside_its_namespace_with_a_clear_error() {
    let (server, url) = acl_server();
    let outside = Cache::connect(Some(&url), Options { key_prefix: b"other:".to_vec(), ..Options::default() }).unwrap();
    for error in [outside.set(b"k", b"v", ttl_secs(60)).unwrap_err(), outside.get(b"k").unwrap_err()] {
        assert_eq!(error.kind, ErrorKind::Server);
        assert!(
            error.message.contains("ACL (NOPERM)") && error.message.contains("permissions to access one of the keys"),
            "{error}"
        );
    }

    // Inside, every feature's keys stay under the prefix.
    let inside = Cache::connect(Some(&url), Options { key_prefix: b"suite:app:".to_vec(), ..Options::default() }).unwrap();
    inside.set_with_tags(b"tagged", b"v", ttl_secs(60), &[b"t"]).unwrap();
    inside
        .get_or_compute(b"computed", &ComputeOptions { ttl: ttl_secs(60), tags: &[b"t"], ..Default::default() }, || {
            Ok::<_, ()>(b"v".to_vec())
        })
        .unwrap();
    assert!(inside.lock(b"job", b"me", Duration::from_secs(60)).unwrap());
    let sessions = inside.sessions(b"sess:");
    let session = sessions.create(&[(b"k", b"v")], ttl_secs(60)).unwrap();
    assert!(sessions.lock(session.id.as_bytes(), session.secret.as_bytes(), Duration::from_secs(60)).unwrap().is_some());
    inside.hash_set(b"record", &[(b"f", b"v")], ttl_secs(60), WriteCondition::Always).unwrap();
    inside.increment(b"counter", 1, ttl_secs(60)).unwrap();
    inside.invalidate_tags(&[b"t"]).unwrap();
    let all: Vec<String> = support::query(server.port, ::redis::cmd("KEYS").arg("*")).unwrap();
    assert!(all.len() >= 8, "{all:?}");
    assert!(all.iter().all(|key| key.starts_with("suite:app:")), "{all:?}");
    assert!(all.iter().any(|key| key.starts_with("suite:app:__rcache_tag:")), "{all:?}");
    assert!(all.iter().any(|key| key.starts_with("suite:app:__rcache_lock:")), "{all:?}");
    assert!(all.iter().any(|key| key.starts_with("suite:app:__rcache_meta:")), "{all:?}");
}

/// Fail-safe with a long stale window and throttle, on values that expire at once.
fn fail_safe_options() -> ComputeOptions<'static> {
    let fail_safe = FailSafe { max_stale: Duration::from_secs(60), throttle: Duration::from_secs(60) };
    ComputeOptions { ttl: SHORT, tags: &[b"t"], fail_safe: Some(fail_safe), early_refresh_beta: 0.0, ..ComputeOptions::default() }
}

/// Stores `value` at `key` through get-or-compute and waits until it expires.
fn store_then_expire(cache: &Cache, key: &[u8], options: &ComputeOptions<'_>, value: &[u8]) {
    let stored = cache.get_or_compute_with(key, options, || Ok::<_, ()>(Some(value.to_vec()))).unwrap();
    assert_eq!(stored, Computed { value: Some(value.to_vec()), stale: false });
    assert!(wait_until(Duration::from_secs(10), || cache.get(key).unwrap().is_none()));
}

fn must_not_compute() -> Result<Option<Vec<u8>>, &'static str> {
    panic!("throttled: must not compute")
}

fn fail_safe_serves_the_last_good_value_marked_stale_and_throttles(cache: &Cache) {
    let options = fail_safe_options();
    store_then_expire(cache, b"k", &options, b"good");
    assert_eq!(cache.get(b"k").unwrap(), None, "a plain read never sees the stale copy");
    let served = cache.get_or_compute_with(b"k", &options, || Err::<Option<Vec<u8>>, _>("source down")).unwrap();
    assert_eq!(served, Computed { value: Some(b"good".to_vec()), stale: true });
    // Throttled: the next caller gets the stale value without computing.
    let served = cache.get_or_compute_with(b"k", &options, must_not_compute).unwrap();
    assert_eq!(served, Computed { value: Some(b"good".to_vec()), stale: true });
    let stats = cache.stats();
    assert_eq!((stats.stale_served, stats.throttles, stats.computations), (2, 1, 2));
    // Without fail-safe the failure is the caller's, stale copy or not.
    let plain = ComputeOptions { fail_safe: Some(FailSafe::OFF), ..options };
    let failed = cache.get_or_compute_with(b"other", &plain, || Err::<Option<Vec<u8>>, _>("down"));
    assert!(matches!(failed, Err(ComputeError::Compute("down"))));
    assert_eq!(cache.keys(None).unwrap(), Vec::<Vec<u8>>::new(), "stale copies are rcache's own keys");
}

fn fail_safe_without_throttle_computes_again_and_a_success_replaces_the_copy(cache: &Cache) {
    let fail_safe = FailSafe { max_stale: Duration::from_secs(60), throttle: Duration::ZERO };
    let options = ComputeOptions { fail_safe: Some(fail_safe), ..fail_safe_options() };
    store_then_expire(cache, b"k", &options, b"one");
    for _ in 0..2 {
        let served = cache.get_or_compute_with(b"k", &options, || Err::<Option<Vec<u8>>, _>("down")).unwrap();
        assert_eq!(served, Computed { value: Some(b"one".to_vec()), stale: true });
    }
    assert_eq!(cache.stats().computations, 3, "no throttle: each caller tried the source");
    store_then_expire(cache, b"k", &options, b"two");
    let served = cache.get_or_compute_with(b"k", &options, || Err::<Option<Vec<u8>>, _>("down")).unwrap();
    assert_eq!(served.value.as_deref(), Some(&b"two"[..]));
}

fn invalidations_deletes_and_clears_remove_stale_copies(cache: &Cache) {
    let fail_safe = FailSafe { max_stale: Duration::from_secs(60), throttle: Duration::ZERO };
    let options = ComputeOptions { fail_safe: Some(fail_safe), ..fail_safe_options() };
    let fails = || Err::<Option<Vec<u8>>, _>("source down");
    store_then_expire(cache, b"tagged", &options, b"old");
    cache.invalidate_tags(&[b"t"]).unwrap();
    assert!(matches!(cache.get_or_compute_with(b"tagged", &options, fails), Err(ComputeError::Compute(_))));
    store_then_expire(cache, b"deleted", &options, b"old");
    cache.delete(b"deleted").unwrap();
    assert!(matches!(cache.get_or_compute_with(b"deleted", &options, fails), Err(ComputeError::Compute(_))));
    store_then_expire(cache, b"cleared", &options, b"old");
    store_then_expire(cache, b"kept", &options, b"kept");
    cache.clear(Some(b"clear*")).unwrap();
    assert!(matches!(cache.get_or_compute_with(b"cleared", &options, fails), Err(ComputeError::Compute(_))));
    let kept = cache.get_or_compute_with(b"kept", &options, fails).unwrap();
    assert_eq!(kept, Computed { value: Some(b"kept".to_vec()), stale: true }, "a clear by pattern keeps other keys' copies");
}

fn stale_copies_last_only_max_stale_past_expiry(cache: &Cache) {
    let fail_safe = FailSafe { max_stale: Duration::from_millis(150), throttle: Duration::ZERO };
    let options = ComputeOptions { fail_safe: Some(fail_safe), ..fail_safe_options() };
    store_then_expire(cache, b"k", &options, b"v");
    let fails = || Err::<Option<Vec<u8>>, _>("down");
    assert!(wait_until(Duration::from_secs(10), || cache.get_or_compute_with(b"k", &options, fails).is_err()));
}

fn a_waiter_that_times_out_gets_the_stale_value(cache: &Cache) {
    let options =
        ComputeOptions { wait_timeout: Duration::from_millis(50), on_wait_timeout: OnWaitTimeout::Fail, ..fail_safe_options() };
    store_then_expire(cache, b"k", &options, b"old");
    std::thread::scope(|scope| {
        let (started, begun) = std::sync::mpsc::channel();
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let slow = scope.spawn(move || {
            cache.get_or_compute_with(b"k", &options, || {
                started.send(()).unwrap();
                finished.recv().unwrap();
                Ok::<_, ()>(Some(b"new".to_vec()))
            })
        });
        begun.recv().unwrap();
        let waited = cache.get_or_compute_with(b"k", &options, must_not_compute).unwrap();
        assert_eq!(waited, Computed { value: Some(b"old".to_vec()), stale: true });
        finish.send(()).unwrap();
        assert_eq!(slow.join().unwrap().unwrap(), Computed { value: Some(b"new".to_vec()), stale: false });
    });
}

fn negative_results_are_remembered_apart_from_values(cache: &Cache) {
    let options = ComputeOptions { ttl: ttl_secs(60), negative_ttl: Some(Duration::from_secs(60)), ..ComputeOptions::default() };
    let none = cache.get_or_compute_with(b"k", &options, || Ok::<_, ()>(None)).unwrap();
    assert_eq!(none, Computed { value: None, stale: false });
    let again = cache.get_or_compute_with(b"k", &options, || -> Result<Option<Vec<u8>>, ()> { panic!("remembered") });
    assert_eq!(again.unwrap(), Computed { value: None, stale: false });
    assert_eq!(cache.get(b"k").unwrap(), None, "no value is never an empty value");
    assert_eq!(cache.stats().negative_hits, 1);
    // A call without negative caching ignores the record, and its value wins.
    assert_eq!(cache.get_or_compute(b"k", &options, || Ok::<_, ()>(b"v".to_vec())).unwrap(), b"v");
    let found = cache.get_or_compute_with(b"k", &options, || Ok::<_, ()>(None)).unwrap();
    assert_eq!(found.value.as_deref(), Some(&b"v"[..]));
    // Deleting the key forgets that it had no value.
    let fresh = ComputeOptions { negative_ttl: Some(Duration::from_secs(60)), ..options };
    cache.get_or_compute_with(b"gone", &fresh, || Ok::<_, ()>(None)).unwrap();
    cache.delete(b"gone").unwrap();
    let computed = cache.get_or_compute_with(b"gone", &fresh, || Ok::<_, ()>(Some(b"back".to_vec()))).unwrap();
    assert_eq!(computed.value.as_deref(), Some(&b"back"[..]));
    // Without negative_ttl "no value" is returned and not remembered.
    let forgetful = ComputeOptions { negative_ttl: None, ..options };
    assert_eq!(cache.get_or_compute_with(b"n", &forgetful, || Ok::<_, ()>(None)).unwrap().value, None);
    let computed = cache.get_or_compute_with(b"n", &forgetful, || Ok::<_, ()>(Some(b"now".to_vec()))).unwrap();
    assert_eq!(computed.value.as_deref(), Some(&b"now"[..]));
    let bad = ComputeOptions { negative_ttl: Some(Duration::ZERO), ..options };
    let refused = cache.get_or_compute_with(b"k", &bad, || Ok::<_, ()>(None));
    assert!(matches!(refused, Err(ComputeError::Cache(ref error)) if error.kind == ErrorKind::InvalidArgument));
}

fn ttl_jitter_spreads_expiries_below_the_ttl(cache: &Cache) {
    cache.set_ttl_jitter(50).unwrap();
    let minute = Duration::from_secs(60);
    let mut left = Vec::new();
    for index in 0..50 {
        let key = format!("k{index}");
        cache.set(key.as_bytes(), b"v", Ttl::After(minute)).unwrap();
        match cache.remaining(key.as_bytes()).unwrap() {
            Remaining::Left(remaining) => left.push(remaining),
            other => panic!("{other:?}"),
        }
    }
    assert!(left.iter().all(|&remaining| remaining <= minute && remaining >= minute / 2 - Duration::from_secs(1)), "{left:?}");
    left.sort();
    left.dedup();
    assert!(left.len() > 1, "expiries spread: {left:?}");
    cache.set_ttl_jitter(0).unwrap();
    cache.set(b"exact", b"v", Ttl::After(minute)).unwrap();
    assert!(left_between(cache.remaining(b"exact").unwrap(), minute - Duration::from_secs(2), minute));
    assert_eq!(cache.set_ttl_jitter(101).unwrap_err().kind, ErrorKind::InvalidArgument);
}

fn small_limits() -> Options {
    Options { max_key_bytes: 300, max_value_bytes: 1024, ..Options::default() }
}

/// Runs `case` on a handle of a fresh private Redis; `parameters` are added to its URL.
fn on_redis(parameters: &str, case: fn(&Cache)) {
    let server = RedisServer::start();
    let options = Options { key_prefix: b"suite:".to_vec(), ..small_limits() };
    let cache = Cache::connect(Some(&format!("{}{parameters}", server.url())), options).unwrap();
    case(&cache);
}

/// Runs `case` on a private Redis (with a near cache, so tracked reads are
/// checked too) while `MONITOR` records what runs there; then checks that
/// every key a script's commands touched was declared in the script's
/// `KEYS`, as Redis Cluster, key-checking proxies and ACLs on declared keys
/// need. The server itself reports each command a script runs and which of
/// its arguments are keys (`COMMAND GETKEYS`).
fn on_redis_checking_declared_keys(case: fn(&Cache)) {
    let server = RedisServer::start();
    let mut monitor = std::process::Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "monitor"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = monitor.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let end = line.contains("\"rcache-monitor-end\"");
            lines.push(line);
            if end {
                break;
            }
        }
        lines
    });
    // MONITOR is on once it answers OK; commands sent before are not seen.
    assert!(wait_until(Duration::from_secs(5), || {
        let clients: String = support::query(server.port, ::redis::cmd("CLIENT").arg("LIST")).unwrap();
        clients.contains("cmd=monitor")
    }));
    let options = Options { key_prefix: b"suite:".to_vec(), ..small_limits() };
    let cache = Cache::connect(Some(&format!("{}?near_cache=1000", server.url())), options).unwrap();
    case(&cache);
    drop(cache);
    let _: String = support::query(server.port, ::redis::cmd("ECHO").arg("rcache-monitor-end")).unwrap();
    let lines = lines.join().unwrap();
    let _ = monitor.kill();
    let _ = monitor.wait();

    let client = ::redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let mut declared: Vec<Vec<u8>> = Vec::new();
    let mut undeclared = Vec::new();
    for line in &lines {
        let Some((source, args)) = monitor_line(line) else { continue };
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        if source != "lua" {
            if name.starts_with("eval") {
                let count: usize = String::from_utf8_lossy(&args[2]).parse().unwrap();
                declared = args[3..3 + count].to_vec();
            }
            continue;
        }
        let keys: Vec<Vec<u8>> = ::redis::cmd("COMMAND").arg("GETKEYS").arg(&args).query(&mut connection).unwrap_or_default();
        for key in keys {
            if !declared.contains(&key) {
                undeclared.push(format!("{}: {line}", String::from_utf8_lossy(&key)));
            }
        }
    }
    assert!(undeclared.is_empty(), "keys scripts touched without declaring them:\n{}", undeclared.join("\n"));
}

/// The source (`lua` for a script's commands, else the client's address)
/// and arguments of one line of `MONITOR` output.
fn monitor_line(line: &str) -> Option<(String, Vec<Vec<u8>>)> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let source = line[open + 1..close].split(' ').nth(1)?.to_string();
    let mut args = Vec::new();
    let mut bytes = line[close + 1..].bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'"' {
            continue;
        }
        let mut arg = Vec::new();
        loop {
            match bytes.next()? {
                b'"' => break,
                b'\\' => match bytes.next()? {
                    b'n' => arg.push(b'\n'),
                    b'r' => arg.push(b'\r'),
                    b't' => arg.push(b'\t'),
                    b'a' => arg.push(7),
                    b'b' => arg.push(8),
                    b'x' => {
                        let hex = [bytes.next()?, bytes.next()?];
                        arg.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
                    }
                    other => arg.push(other),
                },
                other => arg.push(other),
            }
        }
        args.push(arg);
    }
    (!args.is_empty()).then_some((source, args))
}

/// Opens a handle with the given key prefix.
type Opener<'a> = &'a dyn Fn(&[u8]) -> Cache;

/// Runs `case` with a function opening handles of one fresh private Redis,
/// with the given prefix; `parameters` are added to their URL.
fn on_redis_opening(parameters: &str, case: fn(Opener)) {
    let server = RedisServer::start();
    case(&|prefix: &[u8]| {
        let options = Options { key_prefix: prefix.to_vec(), ..small_limits() };
        Cache::connect(Some(&format!("{}{parameters}", server.url())), options).unwrap()
    });
}

/// Each case runs on `memory://`, on a private Redis, on a private Redis
/// through a near cache, as an ACL user confined to `suite:*`, on a Redis
/// Cluster and on a primary found through Sentinel, with and without a near cache. The cases after
/// `opening:` get a function that opens a client with a given prefix (on
/// Redis all on one server; each `memory://` client is its own store).
macro_rules! suite {
    (@shared $module:ident, $url:expr; $($case:ident),*; $($opening:ident),*) => {
        mod $module {
            $(#[test]
            fn $case() {
                // Two modules share each server: a namespace per module and case.
                let prefix = concat!("suite:", stringify!($module), ":", stringify!($case), ":");
                let options = super::Options { key_prefix: prefix.as_bytes().to_vec(), ..super::small_limits() };
                let cache = super::Cache::connect(Some(&$url), options).unwrap();
                super::$case(&cache);
            })*
            $(#[test]
            fn $opening() {
                let url = $url;
                super::$opening(&|prefix: &[u8]| {
                    let prefix = [concat!(stringify!($module), ":").as_bytes(), prefix].concat();
                    let options = super::Options { key_prefix: prefix, ..super::small_limits() };
                    super::Cache::connect(Some(&url), options).unwrap()
                });
            })*
        }
    };
    ($($case:ident),* $(,)?; opening: $($opening:ident),* $(,)?) => {
        mod memory {
            $(#[test]
            fn $case() {
                let cache = super::Cache::connect(Some("memory://"), super::small_limits()).unwrap();
                super::$case(&cache);
            })*
            $(#[test]
            fn $opening() {
                super::$opening(&|prefix: &[u8]| {
                    let options = super::Options { key_prefix: prefix.to_vec(), ..super::small_limits() };
                    super::Cache::connect(Some("memory://"), options).unwrap()
                });
            })*
        }
        mod redis {
            $(#[test]
            fn $case() {
                super::on_redis("", super::$case);
            })*
            $(#[test]
            fn $opening() {
                super::on_redis_opening("", super::$opening);
            })*
        }
        /// Redis with a near cache: every case must read the same.
        mod redis_near {
            $(#[test]
            fn $case() {
                super::on_redis("?near_cache=1000", super::$case);
            })*
            $(#[test]
            fn $opening() {
                super::on_redis_opening("?near_cache=1000", super::$opening);
            })*
        }
        // Every key a script touches is declared in its KEYS.
        mod declared_keys {
            $(#[test]
            fn $case() {
                super::on_redis_checking_declared_keys(super::$case);
            })*
        }
        // As an ACL user allowed only keys under `suite:`: every key rcache
        // touches (tags, locks, hints, sessions) must be in the namespace.
        mod acl {
            $(#[test]
            fn $case() {
                let (_server, url) = super::acl_server();
                let options = super::Options { key_prefix: b"suite:".to_vec(), ..super::small_limits() };
                let cache = super::Cache::connect(Some(&url), options).unwrap();
                super::$case(&cache);
            })*
            $(#[test]
            fn $opening() {
                let (_server, url) = super::acl_server();
                super::$opening(&|prefix: &[u8]| {
                    let options = super::Options { key_prefix: [&b"suite:"[..], prefix].concat(), ..super::small_limits() };
                    super::Cache::connect(Some(&url), options).unwrap()
                });
            })*
        }
        // One cluster (3 primaries, a replica each) and one Sentinel group
        // for the whole suite; each case has a namespace of its own there.
        suite!(@shared cluster, super::RedisCluster::shared().url(); $($case),*; $($opening),*);
        suite!(@shared sentinel, super::SentinelGroup::shared().url(); $($case),*; $($opening),*);
        suite!(@shared cluster_near, format!("{}?near_cache=1000", super::RedisCluster::shared().url()); $($case),*; $($opening),*);
        suite!(@shared sentinel_near, format!("{}?near_cache=1000", super::SentinelGroup::shared().url()); $($case),*; $($opening),*);
    };
}

suite!(
    set_then_get_and_miss,
    keys_and_values_are_binary_safe,
    entries_expire,
    ttl_never_and_default,
    remaining_and_expire,
    delete_and_exists,
    many_at_once,
    counters,
    counter_expires_with_its_ttl,
    bad_arguments_are_refused,
    concurrent_callers_get_their_own_replies,
    tagged_entries_vanish_when_a_tag_is_invalidated,
    tags_can_be_added_to_an_existing_entry,
    an_entry_carries_at_most_max_tags_across_add_tags_calls,
    concurrent_add_tags_never_pass_the_cap,
    tagged_values_are_binary_safe_and_may_be_empty,
    bad_tags_are_refused,
    clear_by_pattern_and_whole_namespace,
    a_write_racing_an_invalidation_never_survives_it,
    get_or_compute_computes_once_then_hits,
    a_failed_computation_stores_nothing_and_frees_the_lock,
    concurrent_misses_compute_once,
    waiters_take_over_from_a_failed_computation,
    a_waiter_gives_up_or_computes_after_its_timeout,
    extending_a_tagged_entry_keeps_its_tags_alive,
    a_plain_value_that_looks_like_a_tagged_entry_reads_back_unchanged,
    early_refresh_recomputes_before_expiry_one_caller_at_a_time,
    stats_count_hits_misses_and_latency,
    sessions_save_with_versions_and_never_lose_an_update,
    a_session_secret_is_never_stored,
    a_lock_owner_that_looks_like_a_tagged_entry_is_refused,
    a_wrong_secret_sees_nothing_and_changes_nothing,
    session_expiry_slides_on_touch_and_on_load_when_asked,
    sessions_are_listed_purged_and_locked,
    bad_session_input_is_refused,
    session_namespaces_never_reach_each_other_or_cache_entries,
    get_with_ttl_reads_value_and_lifetime_at_once,
    keep_ttl_keeps_the_current_expiry_where_a_whole_value_is_replaced,
    compare_and_set_replaces_only_the_expected_value,
    hash_records_merge_fields_and_read_whole,
    hash_set_conditions_decide_whether_anything_is_written,
    records_and_values_are_different_types,
    keys_lists_the_namespace_without_reserved_or_invalidated_keys,
    locks_between_two_owners,
    server_info_describes_the_backend,
    fail_safe_serves_the_last_good_value_marked_stale_and_throttles,
    fail_safe_without_throttle_computes_again_and_a_success_replaces_the_copy,
    invalidations_deletes_and_clears_remove_stale_copies,
    stale_copies_last_only_max_stale_past_expiry,
    a_waiter_that_times_out_gets_the_stale_value,
    negative_results_are_remembered_apart_from_values,
    ttl_jitter_spreads_expiries_below_the_ttl;
    opening:
    keys_and_clear_stay_in_a_namespace_with_glob_characters,
);

#[test]
fn memory_backend_tags_stay_bounded_and_refused_tags_lose_nothing() {
    let limits = MemoryLimits { max_entries: 10, max_bytes: 64 * 1024 };
    let backend = rcache::backend::MemoryBackend::new(limits);
    use rcache::backend::Backend;
    for index in 0..20_000u32 {
        backend
            .set_tagged(format!("k{index}").as_bytes(), b"v", rcache::Expiry::Never, &[format!("tag{index}").into_bytes()])
            .unwrap();
    }
    assert!(backend.tag_count() < 1000, "{} tags remembered for 10 live entries", backend.tag_count());

    let small = rcache::backend::MemoryBackend::new(MemoryLimits { max_entries: 10, max_bytes: 400 });
    small.set(b"k", &[0u8; 200], rcache::WriteExpiry::Set(rcache::Expiry::Never)).unwrap();
    let refused = small.add_tags(b"k", &[vec![b't'; 200]]).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::TooLarge);
    assert_eq!(small.get(b"k").unwrap(), Some(vec![0u8; 200]), "a refused add_tags keeps the entry");
}

#[test]
fn default_ttl_applies_to_entries_stored_without_one() {
    let options = Options { default_ttl: Some(Duration::from_secs(30)), ..Options::default() };
    let cache = Cache::connect(None, options).unwrap();
    ttl_never_and_default(&cache);
}

#[test]
fn memory_backend_stays_within_its_bounds() {
    let limits = MemoryLimits { max_entries: 100, max_bytes: 64 * 1024 };
    let cache = Cache::connect(Some("memory://"), Options { memory_limits: limits, ..Options::default() }).unwrap();
    for index in 0..1000u32 {
        cache.set(format!("key{index}").as_bytes(), &[7u8; 300], Ttl::Never).unwrap();
    }
    let live = (0..1000u32).filter(|index| cache.exists(format!("key{index}").as_bytes()).unwrap()).count();
    assert!(live <= 100, "{live} entries kept");
    assert!(live > 0);
    assert!(cache.exists(b"key999").unwrap(), "the newest entry survives eviction");
    let too_big = cache.set(b"huge", &vec![0u8; 128 * 1024], Ttl::Never).unwrap_err();
    assert_eq!(too_big.kind, ErrorKind::TooLarge);
    assert!(cache.exists(b"key999").unwrap(), "a refused entry evicts nothing");
}

#[test]
fn memory_backend_recently_read_entries_survive_eviction() {
    let limits = MemoryLimits { max_entries: 10, max_bytes: 1 << 20 };
    let cache = Cache::connect(Some("memory://"), Options { memory_limits: limits, ..Options::default() }).unwrap();
    cache.set(b"hot", b"v", Ttl::Never).unwrap();
    for index in 0..100u32 {
        cache.get(b"hot").unwrap();
        cache.set(format!("cold{index}").as_bytes(), b"v", Ttl::Never).unwrap();
    }
    assert!(cache.exists(b"hot").unwrap());
}

#[test]
fn urls_are_checked() {
    let kind = |url: &str| Cache::connect(Some(url), Options::default()).err().map(|e| e.kind);
    assert_eq!(kind("nonsense"), Some(ErrorKind::InvalidArgument));
    assert_eq!(kind("ftp://host"), Some(ErrorKind::InvalidArgument));
    assert_eq!(kind("memory://somewhere"), Some(ErrorKind::InvalidArgument));
    assert_eq!(kind("redis://:notaport"), Some(ErrorKind::InvalidArgument));
    assert_eq!(kind("redis+sentinel://h:26379"), Some(ErrorKind::InvalidArgument), "no service name");
    assert_eq!(kind("redis+cluster://h:7000/1"), Some(ErrorKind::InvalidArgument), "a cluster has database 0 only");
    assert_eq!(kind("redis+cluster://h:7000?tls_ca=/ca.pem"), Some(ErrorKind::InvalidArgument), "TLS files need rediss+");
    assert_eq!(kind("memory://"), None);
    assert_eq!(kind(""), None, "an empty URL means the embedded backend");
}

#[test]
fn options_are_checked() {
    let refused = |options: Options| Cache::connect(None, options).err().map(|e| e.kind);
    assert_eq!(refused(Options { connect_timeout: Duration::ZERO, ..Options::default() }), Some(ErrorKind::InvalidArgument));
    assert_eq!(
        refused(Options { max_value_bytes: rcache::MAX_VALUE_LIMIT + 1, ..Options::default() }),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(refused(Options { default_ttl: Some(Duration::ZERO), ..Options::default() }), Some(ErrorKind::InvalidArgument));
}

#[test]
fn redis_locks_are_the_classic_set_nx_px_protocol() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), Options { key_prefix: b"app:".to_vec(), ..Options::default() }).unwrap();
    assert!(cache.lock(b"job", b"token-1", Duration::from_secs(30)).unwrap());
    assert_eq!(server.command(&["GET", "app:job"]).as_deref(), Some("$7\r\ntoken-1\r\n"), "the key holds the owner as it is");
    let pttl: i64 = server.command(&["PTTL", "app:job"]).unwrap().trim_start_matches(':').trim().parse().unwrap();
    assert!(pttl > 25_000 && pttl <= 30_000, "{pttl}");
    assert_eq!(
        server.command(&["SET", "app:job", "theirs", "NX", "PX", "30000"]).as_deref(),
        Some("$-1\r\n"),
        "another client sees it taken"
    );
    assert!(cache.unlock(b"job", b"token-1").unwrap());

    // A lock another client took the classic way.
    assert_eq!(server.command(&["SET", "app:job", "theirs", "NX", "PX", "30000"]).as_deref(), Some("+OK\r\n"));
    assert!(!cache.lock(b"job", b"token-1", Duration::from_secs(30)).unwrap());
    assert!(cache.extend_lock(b"job", b"theirs", Duration::from_secs(60)).unwrap());
    assert!(cache.unlock(b"job", b"theirs").unwrap());
    assert_eq!(server.command(&["EXISTS", "app:job"]).as_deref(), Some(":0\r\n"));
}

#[test]
fn redis_keys_uses_scan_and_never_keys() {
    let server = RedisServer::start();
    let cache = Cache::connect(Some(&server.url()), Options { key_prefix: b"app:".to_vec(), ..Options::default() }).unwrap();
    for index in 0..2500u32 {
        cache.set(format!("k{index}").as_bytes(), b"v", ttl_secs(60)).unwrap();
    }
    assert_eq!(server.command(&["SET", "elsewhere", "v"]).as_deref(), Some("+OK\r\n"));
    let keys = cache.keys(None).unwrap();
    assert_eq!(keys.len(), 2500, "several SCAN batches, no duplicates, nothing outside the prefix");
    let stats = server.command(&["INFO", "commandstats"]).unwrap();
    assert!(stats.contains("cmdstat_scan:"), "{stats}");
    assert!(!stats.contains("cmdstat_keys:"), "{stats}");
}

#[test]
fn memory_backend_charges_hash_records_exactly() {
    use rcache::backend::Backend;
    use rcache::{Expiry, WriteExpiry};
    let backend = rcache::backend::MemoryBackend::new(MemoryLimits { max_entries: 10, max_bytes: 2000 });
    let forever = WriteExpiry::Set(Expiry::Never);
    assert!(backend.hash_set(b"h", &[(b"a", &[1u8; 100]), (b"b", b"2")], forever, WriteCondition::Always).unwrap());
    let created = backend.bytes_used();
    assert!(backend.hash_set(b"h", &[(b"a", b"1"), (b"c", b"3")], forever, WriteCondition::Always).unwrap());
    assert!(backend.bytes_used() < created, "a shrunk field gives its bytes back");
    let refused = backend.hash_set(b"h", &[(b"d", &[0u8; 2000])], forever, WriteCondition::Always).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::TooLarge);
    let mut fields = backend.hash_get(b"h").unwrap().unwrap();
    fields.sort();
    assert_eq!(
        fields,
        vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec()), (b"c".to_vec(), b"3".to_vec())],
        "a refused merge changes nothing"
    );
    backend.set(b"s", &[0u8; 1800], forever).unwrap();
    assert_eq!(backend.hash_get(b"h").unwrap(), None, "records are evicted like any entry");
    assert!(backend.delete(b"s").unwrap());
    assert_eq!(backend.bytes_used(), 0, "every byte charged was given back");
}
