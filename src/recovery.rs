//! Auto-recovery: deletes, tag invalidations and clears that failed because
//! the server could not be reached are queued (bounded, without duplicates,
//! in order) and replayed once it answers again, before the handle sends it
//! anything else.
//!
//! Replay happens on the next call of the handle and, so that other
//! processes stop seeing the removed entries even while this one is idle,
//! from a background thread that retries until the queue is empty. The
//! queue lives in process memory: it is lost if the process ends first.
//! On overflow the queue is replaced by one clear of the whole namespace.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::backend::Backend;
use crate::error::Result;
use crate::near::NearCache;

/// A removal the server did not take. Keys and patterns are full (prefixed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    Delete(Vec<u8>),
    InvalidateTags(Vec<Vec<u8>>),
    /// Deletes the keys matching this glob.
    Clear(Vec<u8>),
}

impl Removal {
    fn apply(&self, backend: &dyn Backend) -> Result<()> {
        match self {
            Removal::Delete(key) => backend.delete(key).map(drop),
            Removal::InvalidateTags(tags) => backend.invalidate_tags(tags),
            Removal::Clear(pattern) => backend.clear(pattern).map(drop),
        }
    }
}

#[derive(Default)]
struct Queue {
    removals: VecDeque<Removal>,
    /// Set on overflow: the glob of the whole namespace, cleared before anything else.
    overflow: Option<Vec<u8>>,
}

/// The queue of one handle, and its counters.
pub(crate) struct Recovery {
    limit: usize,
    queue: Mutex<Queue>,
    /// True while anything is queued: the fast path of every call reads only this.
    pending: AtomicBool,
    /// True while a background thread replays.
    replaying: AtomicBool,
    pub replayed: AtomicU64,
    pub overflows: AtomicU64,
}

impl Recovery {
    pub fn new(limit: usize) -> Recovery {
        Recovery {
            limit,
            queue: Mutex::new(Queue::default()),
            pending: AtomicBool::new(false),
            replaying: AtomicBool::new(false),
            replayed: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
        }
    }

    /// Removals waiting (an overflow counts as one).
    pub fn len(&self) -> usize {
        let queue = self.queue.lock();
        queue.removals.len() + usize::from(queue.overflow.is_some())
    }

    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Queues `removal` unless an equal one waits already; when the queue is
    /// full, it gives way to one clear of `namespace` (the glob of every key
    /// of the handle). False when queueing is off.
    pub fn push(&self, removal: Removal, namespace: impl FnOnce() -> Vec<u8>) -> bool {
        if self.limit == 0 {
            return false;
        }
        let mut queue = self.queue.lock();
        if queue.overflow.is_some() || queue.removals.contains(&removal) {
            return true;
        }
        if queue.removals.len() >= self.limit {
            queue.removals.clear();
            queue.overflow = Some(namespace());
            self.overflows.fetch_add(1, Ordering::Relaxed);
        } else {
            queue.removals.push_back(removal);
        }
        self.pending.store(true, Ordering::Release);
        true
    }

    /// Replays the queue in order, stopping at the first failure to reach
    /// the server (returned). A removal the server refuses for another
    /// reason is dropped: sending it again would not help. True when
    /// anything was replayed.
    pub fn replay(&self, backend: &dyn Backend) -> Result<bool> {
        if !self.is_pending() {
            return Ok(false);
        }
        // Held throughout: other callers wait rather than read before the replay.
        let mut queue = self.queue.lock();
        let mut replayed = false;
        if let Some(namespace) = &queue.overflow {
            match backend.clear(namespace) {
                Err(error) if error.is_unreachable() => return Err(error),
                _ => {
                    queue.overflow = None;
                    replayed = true;
                }
            }
        }
        while let Some(removal) = queue.removals.front() {
            match removal.apply(backend) {
                Err(error) if error.is_unreachable() => return Err(error),
                _ => {
                    queue.removals.pop_front();
                    self.replayed.fetch_add(1, Ordering::Relaxed);
                    replayed = true;
                }
            }
        }
        self.pending.store(false, Ordering::Release);
        Ok(replayed)
    }

    /// Starts a thread that replays every `interval` until the queue is
    /// empty, unless one runs; it also ends when the handle is dropped.
    pub fn replay_in_background(
        recovery: &Arc<Recovery>,
        backend: &Arc<dyn Backend>,
        near: Option<&Arc<NearCache>>,
        interval: Duration,
    ) {
        if recovery.replaying.swap(true, Ordering::AcqRel) {
            return;
        }
        let (weak, backend): (Weak<Recovery>, Weak<dyn Backend>) = (Arc::downgrade(recovery), Arc::downgrade(backend));
        let near = near.map(Arc::downgrade);
        let spawned = std::thread::Builder::new().name("rcache-recovery".into()).spawn(move || {
            loop {
                std::thread::sleep(interval);
                let (Some(recovery), Some(backend)) = (weak.upgrade(), backend.upgrade()) else { return };
                if let Ok(true) = recovery.replay(&*backend) {
                    if let Some(near) = near.as_ref().and_then(Weak::upgrade) {
                        near.flush(None);
                    }
                }
                if !recovery.is_pending() {
                    recovery.replaying.store(false, Ordering::Release);
                    // A removal queued between the two loads needs a thread: stay it.
                    if !recovery.is_pending() || recovery.replaying.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
            }
        });
        if spawned.is_err() {
            // No thread: replay happens on the handle's next call.
            recovery.replaying.store(false, Ordering::Release);
        }
    }
}
