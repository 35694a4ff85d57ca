//! A near-cache reader that reads one key without pause while a fault
//! happens and another handle writes, checking every read against the
//! writes acknowledged (see `read_through`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rcache::{Cache, ErrorKind, Ttl};

use super::wait_until;

const MINUTE: Ttl = Ttl::After(Duration::from_secs(60));

/// N of a value "after-N" written by `read_through`.
fn round_of(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value).ok()?.strip_prefix("after-")?.parse().ok()
}

/// What the fault and the writes are, for `read_through`.
pub struct Scenario<'a> {
    /// The fault, run while the reader reads.
    pub fault: &'a mut dyn FnMut(),
    /// True once the value just written is where the reader must find it
    /// (the writer may follow a failover later than the sentinels).
    pub landed: &'a dyn Fn(&[u8]) -> bool,
    /// True once the reader may track again after the fault.
    pub tracking_back: &'a dyn Fn() -> bool,
}

/// `reader` (with a near cache) reads `key` without pause while `fault`
/// runs and then `writer` stores "after-1", "after-2", "after-3". Each value
/// is rewritten until the reader has returned it, then read it a hundred
/// times more with at least one near hit (tracking works again after the
/// fault). Throughout, the reader never returns a value older than one it
/// returned before: a copy left from before a write it has seen would.
/// Panics on any failure; returns how many reads followed the first of each
/// value and how many of them were near hits.
pub fn read_through(reader: &Cache, writer: &Cache, key: &[u8], scenario: Scenario<'_>) -> (u64, u64) {
    // The newest round the reader returned; reads after it, and near hits among them.
    let (seen, after, after_near) = (AtomicU32::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let violations = Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let before = reader.stats().near_hits;
                match reader.get(key) {
                    Ok(value) => {
                        let near = reader.stats().near_hits > before;
                        let round = value.as_deref().and_then(round_of).unwrap_or(0);
                        let newest = seen.load(Ordering::SeqCst);
                        if round < newest {
                            violations.lock().unwrap().push(format!(
                                "read {:?} (near hit: {near}) after after-{newest}",
                                value.map(|value| String::from_utf8_lossy(&value).into_owned())
                            ));
                        } else if round > newest {
                            seen.store(round, Ordering::SeqCst);
                            after.store(0, Ordering::SeqCst);
                            after_near.store(0, Ordering::SeqCst);
                        }
                        after.fetch_add(1, Ordering::SeqCst);
                        after_near.fetch_add(u64::from(near), Ordering::SeqCst);
                    }
                    // During a failover, as the backends report it (a Cluster
                    // may answer a redirect while its nodes disagree).
                    Err(error) => {
                        assert!(matches!(error.kind, ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Server), "{error}");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        });
        let steps = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (scenario.fault)();
            for round in 1..=3 {
                let value = format!("after-{round}").into_bytes();
                let written =
                    wait_until(Duration::from_secs(30), || writer.set(key, &value, MINUTE).is_ok() && (scenario.landed)(&value));
                assert!(written, "round {round}: the writer's value did not land");
                assert!(wait_until(Duration::from_secs(30), scenario.tracking_back), "round {round}: tracking did not come back");
                // Rewritten meanwhile: a reader that missed a report would still see a change.
                let done = wait_until(Duration::from_secs(30), || {
                    let _ = writer.set(key, &value, MINUTE);
                    std::thread::sleep(Duration::from_millis(20));
                    seen.load(Ordering::SeqCst) == round
                        && after.load(Ordering::SeqCst) > 100
                        && after_near.load(Ordering::SeqCst) > 0
                });
                assert!(done, "round {round}: the reader did not converge on the value, served from the near cache");
            }
        }));
        stop.store(true, Ordering::SeqCst);
        if let Err(panic) = steps {
            std::panic::resume_unwind(panic);
        }
    });
    let violations = violations.into_inner().unwrap();
    assert!(violations.is_empty(), "{} stale reads, first: {}", violations.len(), violations[0]);
    (after.into_inner(), after_near.into_inner())
}
