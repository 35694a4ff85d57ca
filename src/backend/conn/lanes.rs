//! The connection pool of the Cluster backend: a few "lanes", each one
//! connection (of any kind) on its own current-thread tokio runtime. (One
//! server, standalone or a Sentinel's primary, uses blocking connections
//! instead: `conn::pool`.)
//!
//! A runtime has no thread of its own: the calling thread inside `block_on`
//! drives its lane's socket, so a lone caller does its own I/O with no hand-off
//! between threads. A call takes an idle lane; lanes are opened on demand up to
//! `MAX_LANES`, so concurrent callers each drive their own socket (as separate
//! clients would) instead of waking one another through a shared one. When all
//! lanes are busy, callers share them, which multiplexing allows.
//!
//! A lane whose connection may be left in the middle of a request or a reply
//! (its call ran out of time) is dropped, and the next call on that slot
//! opens a new one: closing the socket makes the server discard a request it
//! received only in part, and no later call waits behind the rest of it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::RedisResult;
use tokio::runtime::Runtime;

use super::wire::{convert_error, new_runtime};
use crate::error::{Error, ErrorKind, Result};

/// Most connections one handle opens.
pub const MAX_LANES: usize = 16;

/// One connection and the runtime that drives it.
pub(crate) struct Lane<C> {
    pub(crate) connection: C,
    /// Declared after the connection so it is dropped last.
    pub(crate) runtime: Runtime,
}

impl<C> Lane<C> {
    /// A lane whose connection `connecting` makes now, waiting at most
    /// `timeout`; nothing is left behind when it fails.
    pub(crate) fn connect<F>(target: &str, timeout: Duration, connecting: impl FnOnce() -> F) -> Result<Lane<C>>
    where
        F: Future<Output = RedisResult<C>>,
    {
        let runtime = new_runtime()?;
        let connection = runtime
            .block_on(async { tokio::time::timeout(timeout, connecting()).await })
            .map_err(|_| Error::new(ErrorKind::Timeout, format!("{target}: no connection within {} ms", timeout.as_millis())))?
            .map_err(|e| convert_error(target, e))?;
        Ok(Lane { connection, runtime })
    }
}

/// Lanes opened on demand; lane 0 at connect time.
pub(crate) struct Lanes<L> {
    /// `None` until opened, and again once dropped.
    lanes: Box<[Mutex<Option<Arc<L>>>]>,
    /// Lanes opened and not in use.
    idle: Mutex<Vec<usize>>,
    /// Lanes opened (or being opened) so far.
    opened: AtomicUsize,
    /// Picks the lane to share when all are busy.
    next_shared: AtomicUsize,
}

impl<L> Lanes<L> {
    pub(crate) fn new(first: L) -> Self {
        let lanes: Box<[Mutex<Option<Arc<L>>>]> = (0..MAX_LANES).map(|_| Mutex::new(None)).collect();
        *lanes[0].lock() = Some(Arc::new(first));
        Lanes { lanes, idle: Mutex::new(vec![0]), opened: AtomicUsize::new(1), next_shared: AtomicUsize::new(0) }
    }

    /// Runs `work` on an idle lane, opening one with `open` if allowed, else
    /// on a shared one; then drops the lane when `spoiled` says so of the result
    /// (its connection may be in the middle of a request or a reply): it
    /// closes once no other caller shares it, and a later call opens a new one.
    pub(crate) fn with_lane_dropped_if<T>(
        &self,
        open: impl FnOnce() -> Result<L>,
        work: impl FnOnce(&L) -> Result<T>,
        spoiled: impl FnOnce(&Result<T>) -> bool,
    ) -> Result<T> {
        let claimed = self.idle.lock().pop().map(|index| (index, true)).or_else(|| {
            let index = self.opened.fetch_add(1, Ordering::Relaxed);
            (index < MAX_LANES).then_some((index, false))
        });
        let Some((index, reused)) = claimed else {
            // Lanes may still be opening out of order: share the next one that exists.
            let start = self.next_shared.fetch_add(1, Ordering::Relaxed);
            let lane = (0..MAX_LANES).find_map(|step| self.lanes[(start + step) % MAX_LANES].lock().clone());
            let lane = match lane {
                Some(lane) => lane,
                None => Arc::new(open()?),
            };
            return self.run(&lane, work, spoiled);
        };
        // Give the lane back even if `work` panics.
        struct Return<'a>(&'a Mutex<Vec<usize>>, usize);
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                self.0.lock().push(self.1);
            }
        }
        let existing = self.lanes[index].lock().clone();
        let lane = match existing {
            Some(lane) => lane,
            None => match open() {
                Ok(lane) => self.lanes[index].lock().get_or_insert(Arc::new(lane)).clone(),
                Err(error) => {
                    // Give the slot back so a later call can open it.
                    if reused {
                        self.idle.lock().push(index);
                    } else {
                        self.opened.fetch_sub(1, Ordering::Relaxed);
                    }
                    return Err(error);
                }
            },
        };
        let _return = Return(&self.idle, index);
        self.run(&lane, work, spoiled)
    }

    fn run<T>(&self, lane: &Arc<L>, work: impl FnOnce(&L) -> Result<T>, spoiled: impl FnOnce(&Result<T>) -> bool) -> Result<T> {
        let result = work(lane);
        if spoiled(&result) {
            for slot in self.lanes.iter() {
                let mut slot = slot.lock();
                if slot.as_ref().is_some_and(|held| Arc::ptr_eq(held, lane)) {
                    *slot = None;
                }
            }
        }
        result
    }
}
