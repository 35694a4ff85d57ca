//! A completion queue for event loops (asyncio, libuv, Tokio, Ruby's):
//! calls are submitted without blocking, run by a fixed pool of library
//! threads on the blocking engine, and collected by the caller once a file
//! descriptor becomes readable.
//!
//! The pool is fixed so that a thousand pending calls cost a thousand queued
//! jobs, not a thousand threads: a worker runs one call at a time, and calls
//! beyond the pool wait their turn in submission order. The descriptor is an
//! eventfd on Linux and a pipe elsewhere; it is readable while finished
//! calls wait to be collected, so level- and edge-triggered watchers both
//! work. The lock between workers and the caller of `rcache_queue_poll`
//! guards a queue push or drain only: no worker makes a system call while
//! holding it.
#![allow(clippy::missing_safety_doc)]

use std::collections::VecDeque;
use std::ffi::{CString, c_char, c_int};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::{Cache, NewSession, SessionRecord, Ttl};

use super::boundary::{bytes, guard, guard_or, guard_void, non_null, out_param, panic_message};
use super::client::{byte_pairs, byte_strings, found, rcache_client};
use super::fork;
use super::session::{
    RCACHE_SESSION_NO_SLIDE, rcache_session_new, rcache_session_record, rcache_session_record_free, saved_version,
};
use super::status::{Failure, rcache_status};
use super::types::{rcache_buffer, rcache_bytes, ttl_from_millis};

use rcache_status::{RCACHE_STATUS_MISS as MISS, RCACHE_STATUS_OK as OK};

/// Worker threads of a queue made with `workers` = 0.
pub const RCACHE_QUEUE_DEFAULT_WORKERS: u32 = 8;
/// Most worker threads one queue may have.
pub const RCACHE_QUEUE_MAX_WORKERS: u32 = 256;

/// A completion queue over one client, for event loops: submit calls with
/// the `rcache_queue_submit_*` functions (each returns at once, with a
/// token of the caller's choosing), watch `rcache_queue_fd` for readability
/// (epoll, kqueue, uv_poll, Tokio's AsyncFd, IO.select...), and when it is
/// readable collect finished calls with `rcache_queue_poll`, releasing each
/// with `rcache_completion_free`. A fixed pool of library threads runs the
/// calls on the blocking engine: no thread is made per call. Opaque; create
/// it with `rcache_queue_new`, release it with `rcache_queue_free`.
/// Submitting and polling may happen from any thread. Get-or-compute is not
/// offered: on a miss, compute in the loop and submit a set.
#[allow(non_camel_case_types)]
pub struct rcache_queue {
    shared: Arc<Shared>,
    /// Dropping it (in `rcache_queue_free`) lets the workers finish and exit.
    jobs: Sender<Job>,
    /// The process the queue was created in, by fork generation.
    generation: u64,
}

/// The result of one submitted call, filled in by `rcache_queue_poll`.
/// Fields the call does not produce are zero or NULL. Release what it holds
/// with `rcache_completion_free`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug)]
pub struct rcache_completion {
    /// The token passed when the call was submitted.
    pub token: u64,
    /// The call's status, as the blocking function of the same name returns it.
    pub status: rcache_status,
    /// Get on `RCACHE_STATUS_OK`: the value, owned by the completion.
    pub value: rcache_buffer,
    /// Session load on `RCACHE_STATUS_OK`: the session, owned by the
    /// completion; read it with the `rcache_session_record_*` functions. To
    /// keep it past `rcache_completion_free`, copy the pointer and set this
    /// field to NULL; then release it with `rcache_session_record_free`.
    pub record: *mut rcache_session_record,
    /// Session create on `RCACHE_STATUS_OK`: the new session's id and secret.
    pub session: rcache_session_new,
    /// Session save on `RCACHE_STATUS_OK`: the session's new version.
    pub version: u64,
    /// On an error status: why, as NUL-terminated text owned by the
    /// completion (`rcache_last_error` does not carry it: the call ran on
    /// another thread). NULL on `RCACHE_STATUS_OK` and `RCACHE_STATUS_MISS`.
    pub message: *mut c_char,
}

impl rcache_completion {
    fn new(token: u64, status: rcache_status) -> Self {
        rcache_completion {
            token,
            status,
            value: rcache_buffer::EMPTY,
            record: std::ptr::null_mut(),
            session: rcache_session_new { id: [0; 33], secret: [0; 33] },
            version: 0,
            message: std::ptr::null_mut(),
        }
    }
}

struct Shared {
    cache: Arc<Cache>,
    finished: Mutex<VecDeque<Finished>>,
    signal: Signal,
    /// Set by `rcache_queue_free`: calls not started are dropped, results discarded.
    closed: AtomicBool,
}

struct Job {
    token: u64,
    call: Call,
}

/// A submitted call, its arguments copied so the caller's buffers are free at once.
enum Call {
    Get { key: Vec<u8> },
    Set { key: Vec<u8>, value: Vec<u8>, ttl: Ttl },
    SetTagged { key: Vec<u8>, value: Vec<u8>, ttl: Ttl, tags: Vec<Vec<u8>> },
    InvalidateTags { tags: Vec<Vec<u8>> },
    Delete { key: Vec<u8> },
    SessionCreate { namespace: Vec<u8>, fields: Vec<(Vec<u8>, Vec<u8>)>, ttl: Ttl },
    SessionLoad { namespace: Vec<u8>, id: Vec<u8>, secret: Vec<u8>, slide: Option<Ttl> },
    SessionSave(Box<SessionSave>),
    SessionDestroy { namespace: Vec<u8>, id: Vec<u8>, secret: Vec<u8> },
}

struct SessionSave {
    namespace: Vec<u8>,
    id: Vec<u8>,
    secret: Vec<u8>,
    expected_version: u64,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    deleted: Vec<Vec<u8>>,
    ttl: Ttl,
}

/// What a successful call produced.
enum Output {
    Status(rcache_status),
    Value(Vec<u8>),
    Session(NewSession),
    Record(SessionRecord),
    Version(u64),
}

struct Finished {
    token: u64,
    result: Result<Output, Failure>,
}

fn borrowed(items: &[Vec<u8>]) -> Vec<&[u8]> {
    items.iter().map(Vec::as_slice).collect()
}

fn borrowed_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
    pairs.iter().map(|(name, value)| (name.as_slice(), value.as_slice())).collect()
}

fn owned(items: Vec<&[u8]>) -> Vec<Vec<u8>> {
    items.into_iter().map(<[u8]>::to_vec).collect()
}

fn owned_pairs(pairs: Vec<(&[u8], &[u8])>) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs.into_iter().map(|(name, value)| (name.to_vec(), value.to_vec())).collect()
}

impl Call {
    fn run(self, cache: &Cache) -> Result<Output, Failure> {
        let status = |hit: bool| Output::Status(found(hit));
        Ok(match self {
            Call::Get { key } => cache.get(&key)?.map_or(Output::Status(MISS), Output::Value),
            Call::Set { key, value, ttl } => {
                cache.set(&key, &value, ttl)?;
                Output::Status(OK)
            }
            Call::SetTagged { key, value, ttl, tags } => {
                cache.set_with_tags(&key, &value, ttl, &borrowed(&tags))?;
                Output::Status(OK)
            }
            Call::InvalidateTags { tags } => {
                cache.invalidate_tags(&borrowed(&tags))?;
                Output::Status(OK)
            }
            Call::Delete { key } => status(cache.delete(&key)?),
            Call::SessionCreate { namespace, fields, ttl } => {
                Output::Session(cache.sessions(&namespace).create(&borrowed_pairs(&fields), ttl)?)
            }
            Call::SessionLoad { namespace, id, secret, slide } => {
                cache.sessions(&namespace).load(&id, &secret, slide)?.map_or(Output::Status(MISS), Output::Record)
            }
            Call::SessionSave(save) => {
                let expected = (save.expected_version != 0).then_some(save.expected_version);
                let sessions = cache.sessions(&save.namespace);
                let outcome = sessions.save(
                    &save.id,
                    &save.secret,
                    expected,
                    &borrowed_pairs(&save.fields),
                    &borrowed(&save.deleted),
                    save.ttl,
                )?;
                saved_version(outcome, save.expected_version)?.map_or(Output::Status(MISS), Output::Version)
            }
            Call::SessionDestroy { namespace, id, secret } => status(cache.sessions(&namespace).destroy(&id, &secret)?),
        })
    }
}

impl Finished {
    fn into_completion(self) -> rcache_completion {
        let mut completion = rcache_completion::new(self.token, OK);
        match self.result {
            Ok(Output::Status(status)) => completion.status = status,
            Ok(Output::Value(value)) => completion.value = rcache_buffer::from_vec(value),
            Ok(Output::Session(new)) => completion.session = rcache_session_new::from_new(&new),
            Ok(Output::Record(record)) => completion.record = rcache_session_record::into_raw(record),
            Ok(Output::Version(version)) => completion.version = version,
            Err(failure) => {
                completion.status = failure.status;
                let text = CString::new(failure.message.replace('\0', "\\0")).unwrap_or_default();
                completion.message = text.into_raw();
            }
        }
        completion
    }
}

impl Shared {
    /// Queues a finished call and raises the signal if the queue was empty.
    /// The signal is raised after the lock is released: raising wakes the
    /// event loop, whose `rcache_queue_poll` takes the same lock, and a
    /// worker preempted while holding it would make the loop wait.
    fn finish(&self, finished: Finished) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let was_empty = {
            let mut queue = self.finished.lock();
            queue.push_back(finished);
            queue.len() == 1
        };
        // A raise that lands after `take` emptied the queue and cleared the
        // signal only makes the descriptor readable with nothing to collect:
        // the next poll gives 0 and clears it. A clear never follows a push
        // without the push's own raise after it, so no finished call is missed.
        if was_empty {
            self.signal.raise();
        }
    }

    /// Up to `most` finished calls, oldest first; clears the signal when none are left.
    fn take(&self, most: usize) -> Vec<Finished> {
        let mut queue = self.finished.lock();
        let count = most.min(queue.len());
        let taken: Vec<Finished> = queue.drain(..count).collect();
        if queue.is_empty() {
            self.signal.clear();
        }
        taken
    }
}

fn work(shared: Arc<Shared>, jobs: Receiver<Job>) {
    for Job { token, call } in jobs {
        if shared.closed.load(Ordering::Acquire) {
            continue;
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.run(&shared.cache)))
            .unwrap_or_else(|payload| Err(Failure::new(rcache_status::RCACHE_STATUS_PANIC, panic_message(&*payload))));
        shared.finish(Finished { token, result });
    }
}

/// The descriptor an event loop watches: an eventfd on Linux (read and
/// written through the same descriptor), the two ends of a pipe elsewhere.
struct Signal {
    read: c_int,
    write: c_int,
}

impl Signal {
    #[cfg(target_os = "linux")]
    fn new() -> std::io::Result<Signal> {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Signal { read: fd, write: fd })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> std::io::Result<Signal> {
        let mut ends = [0 as c_int; 2];
        // SAFETY: `ends` has room for the two descriptors pipe() writes.
        if unsafe { libc::pipe(ends.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let signal = Signal { read: ends[0], write: ends[1] };
        for fd in ends {
            // SAFETY: fcntl on descriptors this function just opened.
            unsafe {
                libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(signal)
    }

    /// Makes the descriptor readable. An eventfd takes exactly 8 bytes; a pipe any.
    fn raise(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to a descriptor the signal owns.
        unsafe { libc::write(self.write, (&raw const one).cast(), size_of::<u64>()) };
    }

    /// Makes the descriptor unreadable again.
    fn clear(&self) {
        let mut sink = [0u8; 64];
        loop {
            // SAFETY: reads into a live local buffer from a non-blocking descriptor the signal owns.
            let read = unsafe { libc::read(self.read, sink.as_mut_ptr().cast(), sink.len()) };
            if read < sink.len() as isize {
                break;
            }
        }
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        // SAFETY: the signal owns its descriptors and closes each once.
        unsafe {
            libc::close(self.read);
            if self.write != self.read {
                libc::close(self.write);
            }
        }
    }
}

impl rcache_queue {
    /// # Safety
    /// A non-NULL `queue` must come from `rcache_queue_new` and not be freed.
    unsafe fn checked<'a>(queue: *const rcache_queue) -> Result<&'a rcache_queue, Failure> {
        // SAFETY: forwarded to the caller's promise.
        let queue = unsafe { non_null(queue, "queue") }?;
        if queue.generation != fork::generation() {
            return Err(Failure::new(
                rcache_status::RCACHE_STATUS_FORKED,
                "this queue was created before fork(); create a client and a queue in the child process",
            ));
        }
        Ok(queue)
    }

    /// # Safety
    /// As `checked`.
    unsafe fn submit(queue: *const rcache_queue, token: u64, call: impl FnOnce() -> Result<Call, Failure>) -> rcache_status {
        guard(|| {
            // SAFETY: forwarded to the caller's promise.
            let queue = unsafe { Self::checked(queue) }?;
            let job = Job { token, call: call()? };
            queue
                .jobs
                .send(job)
                .map_err(|_| Failure::new(rcache_status::RCACHE_STATUS_PANIC, "the queue's workers have stopped"))?;
            Ok(OK)
        })
    }
}

/// Makes a queue for `client` with `workers` threads (0 for
/// `RCACHE_QUEUE_DEFAULT_WORKERS`, at most `RCACHE_QUEUE_MAX_WORKERS`) and
/// stores it in `*queue_out` (written only on `RCACHE_STATUS_OK`). The queue
/// holds the client's engine by reference count: the client may be freed
/// first, and the connection then stays open until the queue is freed too.
/// Up to `workers` calls run at once; more wait in submission order.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_new(
    client: *const rcache_client,
    workers: u32,
    queue_out: *mut *mut rcache_queue,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, queue_out) = unsafe { (Arc::clone(rcache_client::shared(client)?), out_param(queue_out, "queue_out")?) };
        let workers = match workers {
            0 => RCACHE_QUEUE_DEFAULT_WORKERS,
            1..=RCACHE_QUEUE_MAX_WORKERS => workers,
            _ => return Err(Failure::invalid(format!("workers {workers} is over the limit of {RCACHE_QUEUE_MAX_WORKERS}"))),
        };
        let cannot_start = |what: &str, error: std::io::Error| {
            Failure::new(rcache_status::RCACHE_STATUS_CONNECTION, format!("cannot start the queue's {what}: {error}"))
        };
        let signal = Signal::new().map_err(|error| cannot_start("descriptor", error))?;
        let shared = Arc::new(Shared { cache, finished: Mutex::new(VecDeque::new()), signal, closed: AtomicBool::new(false) });
        let (sender, receiver) = crossbeam_channel::unbounded();
        for index in 0..workers {
            let (shared, receiver) = (Arc::clone(&shared), receiver.clone());
            // On failure the sender drops with this scope, ending the workers already started.
            std::thread::Builder::new()
                .name(format!("rcache-queue-{index}"))
                .spawn(move || work(shared, receiver))
                .map_err(|error| cannot_start("worker threads", error))?;
        }
        *queue_out = Box::into_raw(Box::new(rcache_queue { shared, jobs: sender, generation: fork::generation() }));
        Ok(OK)
    })
}

/// The descriptor to watch for readability: readable while finished calls
/// wait for `rcache_queue_poll`. A caller that polls again without waiting
/// for readability (as an edge-triggered loop does) may see it readable
/// once more with nothing to collect: that poll gives 0 and clears it.
/// Owned by the queue: never read, write or close it. -1 for NULL, and for
/// a queue inherited through fork().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_fd(queue: *const rcache_queue) -> c_int {
    // SAFETY: a non-NULL queue comes from rcache_queue_new and is not freed.
    guard_or(-1, || unsafe { rcache_queue::checked(queue) }.map_or(-1, |queue| queue.shared.signal.read))
}

/// Moves up to `capacity` finished calls, oldest first, into
/// `completions_out[0..*count_out]` (`*count_out` may be 0); the caller
/// releases each with `rcache_completion_free`. When no finished call is
/// left, the descriptor stops being readable. Never blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_poll(
    queue: *const rcache_queue,
    completions_out: *mut rcache_completion,
    capacity: usize,
    count_out: *mut usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (queue, count_out) = unsafe { (rcache_queue::checked(queue)?, out_param(count_out, "count_out")?) };
        if completions_out.is_null() && capacity > 0 {
            return Err(Failure::invalid("completions_out is NULL"));
        }
        let finished = queue.shared.take(capacity);
        *count_out = finished.len();
        for (index, finished) in finished.into_iter().enumerate() {
            // SAFETY: completions_out has room for `capacity` completions; index < capacity.
            unsafe { completions_out.add(index).write(finished.into_completion()) };
        }
        Ok(OK)
    })
}

/// Releases what a completion holds (its value, record and message) and
/// zeroes those fields. NULL is a no-op; so is a completion already freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_completion_free(completion: *mut rcache_completion) {
    guard_void(|| {
        // SAFETY: a non-NULL completion was filled by rcache_queue_poll.
        let Some(completion) = (unsafe { completion.as_mut() }) else { return Ok(OK) };
        // SAFETY: the value buffer and the record come from this library, each released once.
        unsafe {
            super::client::rcache_buffer_free(&mut completion.value);
            rcache_session_record_free(completion.record);
        }
        completion.record = std::ptr::null_mut();
        if !completion.message.is_null() {
            // SAFETY: the message comes from CString::into_raw in this module and is released once.
            drop(unsafe { CString::from_raw(completion.message) });
            completion.message = std::ptr::null_mut();
        }
        Ok(OK)
    });
}

/// Releases the queue without waiting: calls not started are dropped, calls
/// running finish on their worker (each is bounded by the client's
/// timeouts) and their results are discarded, as are results not yet
/// polled. Remove the descriptor from your event loop first; it is closed
/// once the last running call ends. NULL is a no-op. No other call on the
/// queue may run or follow. In a child process after fork() the inherited
/// queue is not touched (its workers exist only in the parent): its memory
/// is left allocated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_free(queue: *mut rcache_queue) {
    guard_void(|| {
        if queue.is_null() {
            return Ok(OK);
        }
        // SAFETY: a non-NULL queue comes from rcache_queue_new and is freed once.
        let queue = unsafe { Box::from_raw(queue) };
        if queue.generation != fork::generation() {
            std::mem::forget(queue);
            return Ok(OK);
        }
        queue.shared.closed.store(true, Ordering::Release);
        queue.shared.finished.lock().clear();
        Ok(OK)
    });
}

/// Submits `rcache_client_get`: the completion's `value` holds the value on
/// `RCACHE_STATUS_OK`. Every `rcache_queue_submit_*` function copies its
/// arguments (the caller's buffers are free again when it returns), never
/// blocks on I/O, and returns `RCACHE_STATUS_OK` once the call is queued;
/// `token` comes back in the call's completion. NULL pointers and TTLs
/// outside the conventions are refused at once with
/// `RCACHE_STATUS_INVALID_ARGUMENT` and nothing is queued; the engine's own
/// checks (an empty or reserved key, too many tags) come back in the completion.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_submit_get(
    queue: *const rcache_queue,
    token: u64,
    key: *const u8,
    key_len: usize,
) -> rcache_status {
    // SAFETY: pointer arguments as documented on rcache_queue_submit_get.
    unsafe { rcache_queue::submit(queue, token, || Ok(Call::Get { key: bytes(key, key_len, "key")?.to_vec() })) }
}

/// Submits `rcache_client_set` (same TTL conventions); see `rcache_queue_submit_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_submit_set(
    queue: *const rcache_queue,
    token: u64,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: i64,
) -> rcache_status {
    // SAFETY: pointer arguments as documented on rcache_queue_submit_get.
    unsafe {
        rcache_queue::submit(queue, token, || {
            Ok(Call::Set {
                key: bytes(key, key_len, "key")?.to_vec(),
                value: bytes(value, value_len, "value")?.to_vec(),
                ttl: ttl_from_millis(ttl_ms)?,
            })
        })
    }
}

/// Submits `rcache_client_set_tagged`; see `rcache_queue_submit_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_submit_set_tagged(
    queue: *const rcache_queue,
    token: u64,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: i64,
    tags: *const rcache_bytes,
    tag_count: usize,
) -> rcache_status {
    // SAFETY: pointer arguments as documented on rcache_queue_submit_get.
    unsafe {
        rcache_queue::submit(queue, token, || {
            Ok(Call::SetTagged {
                key: bytes(key, key_len, "key")?.to_vec(),
                value: bytes(value, value_len, "value")?.to_vec(),
                ttl: ttl_from_millis(ttl_ms)?,
                tags: owned(byte_strings(tags, tag_count, "tags")?),
            })
        })
    }
}

/// Submits `rcache_client_invalidate_tags`; see `rcache_queue_submit_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_submit_invalidate_tags(
    queue: *const rcache_queue,
    token: u64,
    tags: *const rcache_bytes,
    tag_count: usize,
) -> rcache_status {
    // SAFETY: pointer arguments as documented on rcache_queue_submit_get.
    unsafe {
        rcache_queue::submit(queue, token, || Ok(Call::InvalidateTags { tags: owned(byte_strings(tags, tag_count, "tags")?) }))
    }
}

/// Submits `rcache_client_delete`: `RCACHE_STATUS_OK` if the key existed,
/// `RCACHE_STATUS_MISS` if not; see `rcache_queue_submit_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_submit_delete(
    queue: *const rcache_queue,
    token: u64,
    key: *const u8,
    key_len: usize,
) -> rcache_status {
    // SAFETY: pointer arguments as documented on rcache_queue_submit_get.
    unsafe { rcache_queue::submit(queue, token, || Ok(Call::Delete { key: bytes(key, key_len, "key")?.to_vec() })) }
}

/// Submits `rcache_session_create` on the session store `namespace` (as
/// `rcache_session_store_open` names it): the completion's `session` holds
/// the id and secret on `RCACHE_STATUS_OK`; see `rcache_queue_submit_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_submit_session_create(
    queue: *const rcache_queue,
    token: u64,
    namespace: *const u8,
    namespace_len: usize,
    names: *const rcache_bytes,
    values: *const rcache_bytes,
    count: usize,
    ttl_ms: i64,
) -> rcache_status {
    // SAFETY: pointer arguments as documented on rcache_queue_submit_get.
    unsafe {
        rcache_queue::submit(queue, token, || {
            Ok(Call::SessionCreate {
                namespace: bytes(namespace, namespace_len, "namespace")?.to_vec(),
                fields: owned_pairs(byte_pairs(names, values, count)?),
                ttl: ttl_from_millis(ttl_ms)?,
            })
        })
    }
}

/// Submits `rcache_session_load` (`slide_ttl_ms` as there, with
/// `RCACHE_SESSION_NO_SLIDE`): the completion's `record` holds the session
/// on `RCACHE_STATUS_OK`; see `rcache_queue_submit_session_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_submit_session_load(
    queue: *const rcache_queue,
    token: u64,
    namespace: *const u8,
    namespace_len: usize,
    id: *const u8,
    id_len: usize,
    secret: *const u8,
    secret_len: usize,
    slide_ttl_ms: i64,
) -> rcache_status {
    // SAFETY: pointer arguments as documented on rcache_queue_submit_get.
    unsafe {
        rcache_queue::submit(queue, token, || {
            Ok(Call::SessionLoad {
                namespace: bytes(namespace, namespace_len, "namespace")?.to_vec(),
                id: bytes(id, id_len, "id")?.to_vec(),
                secret: bytes(secret, secret_len, "secret")?.to_vec(),
                slide: match slide_ttl_ms {
                    RCACHE_SESSION_NO_SLIDE => None,
                    ttl_ms => Some(ttl_from_millis(ttl_ms)?),
                },
            })
        })
    }
}

/// Submits `rcache_session_save` (arguments as there): the completion's
/// `version` holds the new version on `RCACHE_STATUS_OK`, and a stale
/// `expected_version` gives `RCACHE_STATUS_CONFLICT`; see
/// `rcache_queue_submit_session_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_submit_session_save(
    queue: *const rcache_queue,
    token: u64,
    namespace: *const u8,
    namespace_len: usize,
    id: *const u8,
    id_len: usize,
    secret: *const u8,
    secret_len: usize,
    expected_version: u64,
    names: *const rcache_bytes,
    values: *const rcache_bytes,
    count: usize,
    deleted: *const rcache_bytes,
    deleted_count: usize,
    ttl_ms: i64,
) -> rcache_status {
    // SAFETY: pointer arguments as documented on rcache_queue_submit_get.
    unsafe {
        rcache_queue::submit(queue, token, || {
            Ok(Call::SessionSave(Box::new(SessionSave {
                namespace: bytes(namespace, namespace_len, "namespace")?.to_vec(),
                id: bytes(id, id_len, "id")?.to_vec(),
                secret: bytes(secret, secret_len, "secret")?.to_vec(),
                expected_version,
                fields: owned_pairs(byte_pairs(names, values, count)?),
                deleted: owned(byte_strings(deleted, deleted_count, "deleted")?),
                ttl: ttl_from_millis(ttl_ms)?,
            })))
        })
    }
}

/// Submits `rcache_session_destroy`: `RCACHE_STATUS_OK` when deleted,
/// `RCACHE_STATUS_MISS` when the id or secret is wrong; see
/// `rcache_queue_submit_session_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_queue_submit_session_destroy(
    queue: *const rcache_queue,
    token: u64,
    namespace: *const u8,
    namespace_len: usize,
    id: *const u8,
    id_len: usize,
    secret: *const u8,
    secret_len: usize,
) -> rcache_status {
    // SAFETY: pointer arguments as documented on rcache_queue_submit_get.
    unsafe {
        rcache_queue::submit(queue, token, || {
            Ok(Call::SessionDestroy {
                namespace: bytes(namespace, namespace_len, "namespace")?.to_vec(),
                id: bytes(id, id_len, "id")?.to_vec(),
                secret: bytes(secret, secret_len, "secret")?.to_vec(),
            })
        })
    }
}
