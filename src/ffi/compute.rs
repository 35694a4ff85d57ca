//! Get-or-compute with a caller-supplied callback.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{CStr, c_char, c_void};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::{Cache, ComputeError, ComputeOptions, Computed, FailSafe, OnWaitTimeout, Timeouts, Ttl};

use super::boundary::{bytes, guard, non_null, out_param, panic_message};
use super::client::{byte_strings, rcache_client};
use super::status::{Failure, rcache_status};
use super::types::{rcache_buffer, rcache_bytes, ttl_from_millis};
use super::worker;

/// Where a compute callback leaves its result: call `rcache_compute_output_set`
/// (success) or `rcache_compute_output_fail` (failure) on it. Owned by the
/// library; valid only during the callback.
#[allow(non_camel_case_types)]
pub struct rcache_compute_output {
    value: Option<Vec<u8>>,
    /// `rcache_compute_output_set_none` was called.
    none: bool,
    failure: Option<String>,
}

impl rcache_compute_output {
    fn new() -> Self {
        rcache_compute_output { value: None, none: false, failure: None }
    }

    /// What the callback produced, given what it returned. `none_allowed`:
    /// the export may answer "no value".
    fn outcome(self, succeeded: bool, none_allowed: bool) -> Result<Option<Vec<u8>>, String> {
        match (succeeded, self.value, self.none, self.failure) {
            (true, Some(value), _, _) => Ok(Some(value)),
            (true, None, true, _) if none_allowed => Ok(None),
            (true, None, true, _) => {
                Err("rcache_compute_output_set_none needs rcache_client_get_or_compute_failsafe".to_string())
            }
            (true, None, false, _) => Err("the compute callback returned true without rcache_compute_output_set".to_string()),
            (false, _, _, Some(message)) => Err(message),
            (false, _, _, None) => Err("the compute callback failed".to_string()),
        }
    }
}

/// Computes the value of a missing key. Runs on the thread that called
/// `rcache_client_get_or_compute` (on a library thread for
/// `rcache_client_get_or_compute_timed`), at most once per call. Return true after
/// `rcache_compute_output_set`; return false (optionally after
/// `rcache_compute_output_fail`) to fail: nothing is stored and the call returns
/// `RCACHE_STATUS_COMPUTE_FAILED`. It may use the client, but must not free it.
/// It may also leave by unwinding (`pthread_exit`, `pthread_cancel`, a C++
/// exception): see `rcache_client_get_or_compute`.
#[allow(non_camel_case_types)]
pub type rcache_compute_fn =
    Option<unsafe extern "C-unwind" fn(user_data: *mut c_void, output: *mut rcache_compute_output) -> bool>;

/// Settings of one `rcache_client_get_or_compute` call. Start from
/// `rcache_compute_options_default()`; in a zeroed struct every field takes
/// its default except `early_refresh_beta`, which 0 turns off.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rcache_compute_options {
    /// TTL of the stored value, as `ttl_ms` of `rcache_client_set`.
    pub ttl_ms: i64,
    /// Tags recorded with the stored value (as `rcache_client_set_tagged`); may be NULL when `tag_count` is 0.
    pub tags: *const rcache_bytes,
    pub tag_count: usize,
    /// Lease of the compute lock, renewed every third of it while the
    /// callback runs; a crashed process frees it after this long. Default 10000.
    pub lock_lease_ms: u32,
    /// Longest a caller waits for another caller's computation. Default 10000.
    pub wait_timeout_ms: u32,
    /// After `wait_timeout_ms`: false computes the value itself, true returns
    /// `RCACHE_STATUS_TIMEOUT`.
    pub fail_on_wait_timeout: bool,
    /// Early refresh (XFetch): a caller recomputes a still-valid value with a
    /// probability that rises as its expiry nears, scaled by how long the
    /// value took to compute, while the others keep getting it. 1.0 by
    /// default; 0 turns it off; larger refreshes earlier.
    pub early_refresh_beta: f64,
}

/// The default compute options: the client's default TTL, no tags, a 10 s
/// lease, a 10 s wait, then compute.
#[unsafe(no_mangle)]
pub extern "C" fn rcache_compute_options_default() -> rcache_compute_options {
    let defaults = ComputeOptions::default();
    rcache_compute_options {
        ttl_ms: 0,
        tags: std::ptr::null(),
        tag_count: 0,
        lock_lease_ms: defaults.lock_lease.as_millis() as u32,
        wait_timeout_ms: defaults.wait_timeout.as_millis() as u32,
        fail_on_wait_timeout: false,
        early_refresh_beta: defaults.early_refresh_beta,
    }
}

/// Gives the computed value (copied) to the library. Call it from the callback only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_compute_output_set(
    output: *mut rcache_compute_output,
    value: *const u8,
    value_len: usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: the library passed `output` to the callback; value points to value_len bytes.
        let (output, value) = unsafe { (out_param(output, "output")?, bytes(value, value_len, "value")?) };
        output.value = Some(value.to_vec());
        Ok(rcache_status::RCACHE_STATUS_OK)
    })
}

/// Records why the computation failed (a NUL-terminated message, copied; may
/// be NULL). The callback then returns false.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_compute_output_fail(output: *mut rcache_compute_output, message: *const c_char) -> rcache_status {
    guard(|| {
        // SAFETY: the library passed `output` to the callback.
        let output = unsafe { out_param(output, "output") }?;
        let message = match message.is_null() {
            true => "the compute callback failed".to_string(),
            // SAFETY: a non-NULL message is NUL-terminated.
            false => unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned(),
        };
        output.failure = Some(message);
        Ok(rcache_status::RCACHE_STATUS_OK)
    })
}

/// Says that the value does not exist (for
/// `rcache_client_get_or_compute_failsafe` with `negative_ttl_ms`); the
/// callback then returns true. Call it from the callback only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_compute_output_set_none(output: *mut rcache_compute_output) -> rcache_status {
    guard(|| {
        // SAFETY: the library passed `output` to the callback.
        let output = unsafe { out_param(output, "output") }?;
        output.none = true;
        Ok(rcache_status::RCACHE_STATUS_OK)
    })
}

/// Reads `key`; on a miss calls `compute` to produce the value, stores it with
/// the options' TTL and tags, and returns it. Concurrent callers that miss the
/// same key, in any thread or process sharing the backend, wait while one of
/// them computes (a lock with a unique owner token, renewed while the
/// callback runs) and then get its value. If the callback fails, nothing is
/// stored, the lock is released and a waiting caller computes instead.
/// `options` may be NULL for the defaults. On `RCACHE_STATUS_OK` the value is
/// in `*value_out` (free it with `rcache_buffer_free`); `RCACHE_STATUS_COMPUTE_FAILED`
/// when the callback failed (its message in `rcache_last_error()`). Never
/// serves a stale value (see `rcache_client_get_or_compute_failsafe`).
///
/// The callback runs on the calling thread, and may leave it: when it ends
/// the thread (`pthread_exit`), is cancelled (`pthread_cancel`) or throws a
/// foreign exception, the unwind passes through the library to the caller's
/// frames, the computation counts as failed (nothing is stored, the lock is
/// released) and this function does not return.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn rcache_client_get_or_compute(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    options: *const rcache_compute_options,
    compute: rcache_compute_fn,
    user_data: *mut c_void,
    value_out: *mut rcache_buffer,
) -> rcache_status {
    // SAFETY: forwarded to the caller's promises, documented on this function.
    unsafe { get_or_compute(client, key, key_len, options, None, compute, user_data, value_out) }
}

/// Fail-safe and negative caching settings of one
/// `rcache_client_get_or_compute_failsafe` call. All zero turns both off.
/// (Kept apart from `rcache_compute_options` and `rcache_options` so that
/// their sizes, part of the ABI, stay as they are.)
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct rcache_failsafe_options {
    /// How long past its expiry a stored value is kept as a stale copy and
    /// may be returned with `RCACHE_STATUS_STALE`; 0 turns fail-safe off.
    pub max_stale_ms: u32,
    /// After a failure answered with the stale value, how long every caller
    /// of the key (in any process) gets the stale value without computing; 0 for none.
    pub throttle_ms: u32,
    /// When the callback calls `rcache_compute_output_set_none`, remember
    /// "no value" for this long (`RCACHE_STATUS_NO_VALUE` meanwhile); 0
    /// returns `RCACHE_STATUS_NO_VALUE` once and remembers nothing.
    pub negative_ttl_ms: u32,
}

/// `rcache_client_get_or_compute` with fail-safe and negative caching.
///
/// Returns `RCACHE_STATUS_OK` with a value computed or read fresh,
/// `RCACHE_STATUS_STALE` with the last good value (in `*value_out` as well)
/// when the callback failed, the wait for another caller's computation
/// timed out, or the server could not be reached, and
/// `RCACHE_STATUS_NO_VALUE` (`*value_out` untouched) when the callback said
/// there is no value, now or within `negative_ttl_ms`. Both are successes.
/// With fail-safe each value stored is also kept, for `max_stale_ms` past
/// its expiry, on the server (tagged as the value: tag invalidations,
/// deletes and clears remove it) and in process memory (used only while
/// the server is unreachable). A plain read never returns a stale copy.
/// `failsafe` may be NULL: fail-safe off, no negative caching. The callback
/// may leave by unwinding, as for `rcache_client_get_or_compute`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C-unwind" fn rcache_client_get_or_compute_failsafe(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    options: *const rcache_compute_options,
    failsafe: *const rcache_failsafe_options,
    compute: rcache_compute_fn,
    user_data: *mut c_void,
    value_out: *mut rcache_buffer,
) -> rcache_status {
    // SAFETY: a non-NULL failsafe points to an rcache_failsafe_options.
    let failsafe = Some(unsafe { failsafe_settings(failsafe) });
    // SAFETY: forwarded to the caller's promises, documented on this function.
    unsafe { get_or_compute(client, key, key_len, options, failsafe, compute, user_data, value_out) }
}

/// Both exports: the C options and callback checked, the engine run on a
/// worker while this thread runs the callback. `failsafe` (fail-safe,
/// negative TTL) is `None` for the plain export, where a callback may not say
/// "no value".
///
/// # Safety
/// As documented on `rcache_client_get_or_compute`.
#[allow(clippy::too_many_arguments)]
unsafe fn get_or_compute(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    options: *const rcache_compute_options,
    failsafe: Option<(FailSafe, Option<Duration>)>,
    compute: rcache_compute_fn,
    user_data: *mut c_void,
    value_out: *mut rcache_buffer,
) -> rcache_status {
    let mut checked = None;
    let status = guard(|| {
        // SAFETY: as documented on the function.
        let request = unsafe { Request::check(client, key, key_len, options, failsafe, value_out) }?;
        checked = Some((request, compute.ok_or_else(|| Failure::invalid("compute is NULL"))?));
        Ok(rcache_status::RCACHE_STATUS_OK)
    });
    let Some((request, compute)) = checked else { return status };
    let none_allowed = failsafe.is_some();
    // Outside the panic boundary: see `worker`.
    let outcome = request.run_elsewhere(|| {
        let _computing = Computing::enter(client);
        let mut output = rcache_compute_output::new();
        // SAFETY: the caller supplies a callback that follows rcache_compute_fn's contract.
        let succeeded = unsafe { compute(user_data, &mut output) };
        output.outcome(succeeded, none_allowed)
    });
    // SAFETY: value_out checked above; writable as documented on the function.
    guard(|| unsafe { write_computed(outcome?, value_out) })
}

/// `*value_out` and the status for what get-or-compute returned.
///
/// # Safety
/// `value_out` is non-NULL and writable.
unsafe fn write_computed(computed: Computed, value_out: *mut rcache_buffer) -> Result<rcache_status, Failure> {
    match computed {
        Computed { value: Some(value), stale } => {
            // SAFETY: as documented on the function.
            *unsafe { out_param(value_out, "value_out") }? = rcache_buffer::from_vec(value);
            Ok(if stale { rcache_status::RCACHE_STATUS_STALE } else { rcache_status::RCACHE_STATUS_OK })
        }
        Computed { value: None, .. } => Ok(rcache_status::RCACHE_STATUS_NO_VALUE),
    }
}

/// Soft and hard timeouts of one `rcache_client_get_or_compute_timed` call,
/// counted from the start of the call. 0 turns one off.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct rcache_timeout_options {
    /// After this, a caller that has a stale copy (fail-safe must be on:
    /// `max_stale_ms` above 0) returns it with `RCACHE_STATUS_STALE` while the
    /// computation goes on and stores its value when it ends. Callers
    /// waiting for another caller's computation, in any thread or process,
    /// do the same.
    pub soft_timeout_ms: u32,
    /// After this, the call returns `RCACHE_STATUS_TIMEOUT`, or the stale
    /// copy with `RCACHE_STATUS_STALE` under fail-safe. The computation
    /// still goes on and stores its value when it ends. Longer than the soft timeout.
    pub hard_timeout_ms: u32,
}

/// Releases `user_data` once the library no longer needs it.
#[allow(non_camel_case_types)]
pub type rcache_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// `rcache_client_get_or_compute_failsafe` with soft and hard timeouts of the
/// computation (`timeouts` may be NULL: none).
///
/// The callback runs on a thread of the library, never on the calling
/// thread, and may still run after this function has returned (a timeout
/// passed): when it ends, its value is stored (over whatever a plain write
/// stored meanwhile) and the key's lock released, so one computation per key
/// runs at a time. It must return normally (no `pthread_exit`, cancellation
/// or exception), must not free the client, and must be safe to run on
/// another thread. `free_user_data` (may be NULL) is called exactly once
/// with `user_data` when the library no longer needs it: after the callback
/// ran (on the library's thread, possibly after this function returned), or
/// before this function returns when the callback was not called (a hit,
/// bad arguments). The client may be freed meanwhile (a computation still
/// running keeps the connection until it ends), but then the callback must
/// not use it: free a client its callback uses only after `free_user_data` ran.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rcache_client_get_or_compute_timed(
    client: *const rcache_client,
    key: *const u8,
    key_len: usize,
    options: *const rcache_compute_options,
    failsafe: *const rcache_failsafe_options,
    timeouts: *const rcache_timeout_options,
    compute: rcache_compute_fn,
    user_data: *mut c_void,
    free_user_data: rcache_free_fn,
    value_out: *mut rcache_buffer,
) -> rcache_status {
    let callback = Callback { client: client as usize, compute, user_data, free_user_data };
    guard(|| {
        // SAFETY: a non-NULL failsafe points to an rcache_failsafe_options.
        let failsafe = unsafe { failsafe_settings(failsafe) };
        // SAFETY: as documented on the function.
        let request = unsafe { Request::check(client, key, key_len, options, Some(failsafe), value_out) }?;
        if callback.compute.is_none() {
            return Err(Failure::invalid("compute is NULL"));
        }
        let timeouts = match timeouts.is_null() {
            true => rcache_timeout_options::default(),
            // SAFETY: a non-NULL timeouts points to an rcache_timeout_options.
            false => unsafe { *timeouts },
        };
        let millis = |value: u32| (value > 0).then(|| Duration::from_millis(value.into()));
        let timeouts = Timeouts { soft: millis(timeouts.soft_timeout_ms), hard: millis(timeouts.hard_timeout_ms) };
        let computed = request.run_timed(timeouts, move || callback.call())?;
        // SAFETY: value_out checked above; writable as documented on the function.
        unsafe { write_computed(computed, value_out) }
    })
}

/// The callback of `rcache_client_get_or_compute_timed` with its user data,
/// released (`free_user_data`) when dropped.
struct Callback {
    client: usize,
    compute: rcache_compute_fn,
    user_data: *mut c_void,
    free_user_data: rcache_free_fn,
}

// SAFETY: the caller of rcache_client_get_or_compute_timed promises that the
// callback and its user data may be used from another thread.
unsafe impl Send for Callback {}

impl Callback {
    fn call(self) -> Result<Option<Vec<u8>>, String> {
        let Some(compute) = self.compute else { return Err("compute is NULL".to_string()) };
        let _computing = Computing::enter(self.client as *const rcache_client);
        let mut output = rcache_compute_output::new();
        // SAFETY: the caller supplies a callback that follows rcache_compute_fn's
        // contract and returns normally, as documented on the export.
        let succeeded = unsafe { compute(self.user_data, &mut output) };
        output.outcome(succeeded, true)
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        if let Some(free_user_data) = self.free_user_data {
            // SAFETY: called once, with the user data the caller gave for it.
            unsafe { free_user_data(self.user_data) };
        }
    }
}

/// The engine's fail-safe settings and negative TTL for `rcache_failsafe_options`
/// (NULL: both off).
///
/// # Safety
/// `failsafe` is NULL or points to an `rcache_failsafe_options`.
unsafe fn failsafe_settings(failsafe: *const rcache_failsafe_options) -> (FailSafe, Option<Duration>) {
    let failsafe = match failsafe.is_null() {
        true => rcache_failsafe_options::default(),
        // SAFETY: as documented on the function.
        false => unsafe { *failsafe },
    };
    let millis = |value: u32| Duration::from_millis(value.into());
    let fail_safe = FailSafe { max_stale: millis(failsafe.max_stale_ms), throttle: millis(failsafe.throttle_ms) };
    let negative_ttl = (failsafe.negative_ttl_ms > 0).then(|| millis(failsafe.negative_ttl_ms));
    (fail_safe, negative_ttl)
}

thread_local! {
    /// The clients whose compute callback runs on this thread, innermost last.
    static COMPUTING: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks `client` as computing on this thread while it lives (also when the
/// callback leaves by unwinding).
struct Computing(usize);

impl Computing {
    fn enter(client: *const rcache_client) -> Self {
        COMPUTING.with(|computing| computing.borrow_mut().push(client as usize));
        Computing(client as usize)
    }
}

impl Drop for Computing {
    fn drop(&mut self) {
        COMPUTING.with(|computing| {
            let mut computing = computing.borrow_mut();
            if let Some(index) = computing.iter().rposition(|client| *client == self.0) {
                computing.remove(index);
            }
        });
    }
}

/// True while a compute callback of `client` runs on this thread.
pub(super) fn is_computing(client: *const rcache_client) -> bool {
    COMPUTING.with(|computing| computing.borrow().contains(&(client as usize)))
}

/// A checked get-or-compute call, owning its arguments so a worker can run it.
struct Request {
    cache: Arc<Cache>,
    key: Vec<u8>,
    tags: Vec<Vec<u8>>,
    ttl: Ttl,
    lock_lease: Duration,
    wait_timeout: Duration,
    on_wait_timeout: OnWaitTimeout,
    early_refresh_beta: f64,
    fail_safe: FailSafe,
    negative_ttl: Option<Duration>,
}

/// The calling thread's end of a computation. Dropped unfinished (the
/// callback left by unwinding), it waits for the engine to give up (the lock
/// released) so that the thread ends only after its computation has.
struct Engine {
    from_engine: mpsc::Receiver<FromEngine>,
    done: bool,
}

impl Engine {
    fn finish(mut self, result: Result<Computed, Failure>) -> Result<Computed, Failure> {
        self.done = true;
        result
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // A request for the value is answered by dropping its reply channel.
        while let Ok(FromEngine::Compute(_)) = self.from_engine.recv() {}
    }
}

/// What the worker running the engine tells the calling thread.
enum FromEngine {
    /// Run the callback and send its outcome back.
    Compute(mpsc::Sender<Result<Option<Vec<u8>>, String>>),
    Done(Result<Computed, Failure>),
}

impl Request {
    /// The C arguments of a get-or-compute call, checked; `failsafe` (fail-safe,
    /// negative TTL) is `None` for the plain export.
    ///
    /// # Safety
    /// As documented on `rcache_client_get_or_compute`.
    unsafe fn check(
        client: *const rcache_client,
        key: *const u8,
        key_len: usize,
        options: *const rcache_compute_options,
        failsafe: Option<(FailSafe, Option<Duration>)>,
        value_out: *mut rcache_buffer,
    ) -> Result<Request, Failure> {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, key) = unsafe { (rcache_client::shared(client)?, bytes(key, key_len, "key")?) };
        // SAFETY: as documented on the function.
        unsafe { out_param(value_out, "value_out") }?;
        let defaults = rcache_compute_options_default();
        let options = match options.is_null() {
            true => &defaults,
            // SAFETY: a non-NULL options points to an rcache_compute_options.
            false => unsafe { non_null(options, "options") }?,
        };
        // SAFETY: tags points to tag_count rcache_bytes, as documented on the struct.
        let tags = unsafe { byte_strings(options.tags, options.tag_count, "options.tags") }?;
        let millis_or = |value: u32, default: u32| Duration::from_millis(u64::from(if value == 0 { default } else { value }));
        let (fail_safe, negative_ttl) = failsafe.unwrap_or((FailSafe::OFF, None));
        Ok(Request {
            cache: Arc::clone(cache),
            key: key.to_vec(),
            tags: tags.iter().map(|tag| tag.to_vec()).collect(),
            ttl: ttl_from_millis(options.ttl_ms)?,
            lock_lease: millis_or(options.lock_lease_ms, defaults.lock_lease_ms),
            wait_timeout: millis_or(options.wait_timeout_ms, defaults.wait_timeout_ms),
            on_wait_timeout: if options.fail_on_wait_timeout { OnWaitTimeout::Fail } else { OnWaitTimeout::Compute },
            early_refresh_beta: options.early_refresh_beta,
            fail_safe,
            negative_ttl,
        })
    }

    /// Runs the engine's get-or-compute on a worker (inside a panic boundary)
    /// while this thread runs `callback` whenever the engine asks for the value.
    fn run_elsewhere(self, mut callback: impl FnMut() -> Result<Option<Vec<u8>>, String>) -> Result<Computed, Failure> {
        let (to_caller, from_engine) = mpsc::channel();
        worker::run(Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(&to_caller)));
            let result = match outcome {
                Ok(computed) => computed.map_err(compute_failure),
                Err(payload) => Err(Failure::new(rcache_status::RCACHE_STATUS_PANIC, panic_message(&*payload))),
            };
            let _ = to_caller.send(FromEngine::Done(result));
        }));
        let engine = Engine { from_engine, done: false };
        loop {
            match engine.from_engine.recv() {
                Ok(FromEngine::Compute(reply)) => {
                    let _ = reply.send(callback());
                }
                Ok(FromEngine::Done(result)) => return engine.finish(result),
                Err(_) => {
                    return engine
                        .finish(Err(Failure::new(rcache_status::RCACHE_STATUS_PANIC, "no thread could run the computation")));
                }
            }
        }
    }

    fn run(&self, to_caller: &mpsc::Sender<FromEngine>) -> Result<Computed, ComputeError<String>> {
        self.with_options(|options| {
            self.cache.get_or_compute_with(&self.key, options, || {
                let (reply, outcome) = mpsc::channel();
                let gone = || "the thread that called get-or-compute left the compute callback without returning".to_string();
                to_caller.send(FromEngine::Compute(reply)).map_err(|_| gone())?;
                outcome.recv().unwrap_or_else(|_| Err(gone()))
            })
        })
    }

    /// The engine's get-or-compute with timeouts, `compute` running on a thread of the engine's.
    fn run_timed(
        &self,
        timeouts: Timeouts,
        compute: impl FnOnce() -> Result<Option<Vec<u8>>, String> + Send + 'static,
    ) -> Result<Computed, Failure> {
        let computed = self.with_options(|options| self.cache.get_or_compute_timed(&self.key, options, timeouts, compute));
        computed.map_err(compute_failure)
    }

    fn with_options<T>(&self, body: impl FnOnce(&ComputeOptions<'_>) -> T) -> T {
        let tags: Vec<&[u8]> = self.tags.iter().map(Vec::as_slice).collect();
        body(&ComputeOptions {
            ttl: self.ttl,
            tags: &tags,
            lock_lease: self.lock_lease,
            wait_timeout: self.wait_timeout,
            on_wait_timeout: self.on_wait_timeout,
            early_refresh_beta: self.early_refresh_beta,
            fail_safe: Some(self.fail_safe),
            negative_ttl: self.negative_ttl,
        })
    }
}

fn compute_failure(error: ComputeError<String>) -> Failure {
    match error {
        ComputeError::Cache(error) => error.into(),
        ComputeError::Compute(message) => Failure::new(rcache_status::RCACHE_STATUS_COMPUTE_FAILED, message),
    }
}

/// Counters of fail-safe, negative caching and auto-recovery, from
/// `rcache_client_failsafe_stats` (kept apart from `rcache_stats`, whose size
/// is part of the ABI).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct rcache_failsafe_stats {
    /// Get-or-compute calls answered with `RCACHE_STATUS_STALE`.
    pub stale_served: u64,
    /// Failed computations after which the key was throttled.
    pub throttles: u64,
    /// Get-or-compute calls answered `RCACHE_STATUS_NO_VALUE` from a remembered "no value".
    pub negative_hits: u64,
    /// Deletes, tag invalidations and clears that failed because the server
    /// could not be reached, waiting to be replayed when it answers again
    /// (an overflow counts as one).
    pub recovery_queue: u64,
    /// Removals replayed so far.
    pub recovery_replays: u64,
    /// Times the queue overflowed and gave way to a clear of the whole namespace.
    pub recovery_overflows: u64,
}

/// The client's fail-safe counters so far, in `*stats_out`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_failsafe_stats(
    client: *const rcache_client,
    stats_out: *mut rcache_failsafe_stats,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, stats_out) = unsafe { (rcache_client::cache(client)?, out_param(stats_out, "stats_out")?) };
        let stats = cache.stats();
        *stats_out = rcache_failsafe_stats {
            stale_served: stats.stale_served,
            throttles: stats.throttles,
            negative_hits: stats.negative_hits,
            recovery_queue: stats.recovery_queue,
            recovery_replays: stats.recovery_replays,
            recovery_overflows: stats.recovery_overflows,
        };
        Ok(rcache_status::RCACHE_STATUS_OK)
    })
}
