//! The Redis backend: a few "lanes", each one multiplexed, automatically
//! reconnecting connection on its own current-thread tokio runtime.
//!
//! A runtime has no thread of its own: the calling thread inside `block_on`
//! drives its lane's socket, so a lone caller does its own I/O with no hand-off
//! between threads. A call takes an idle lane; lanes are opened on demand up to
//! `MAX_LANES`, so concurrent callers each drive their own socket (as separate
//! clients would) instead of waking one another through a shared one. When all
//! lanes are busy, callers share them, which multiplexing allows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, FromRedisValue, Pipeline, RedisError, Script, ScriptInvocation, Value};
use tokio::runtime::Runtime;

use super::tracking::Tracker;
use super::{
    Backend, Expiry, ForRefresh, HashFields, InvalidationSink, Remaining, SaveOutcome, SessionRecord, TrackedRead, TrackedReads,
    TrackedValue, WriteCondition, WriteExpiry,
};
use crate::error::{Error, ErrorKind, Result};

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// A `redis://`, `rediss://` or `unix://` URL as the `redis` crate reads it.
    pub url: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

/// Most connections one handle opens.
pub const MAX_LANES: usize = 16;

/// One connection and the runtime that drives it.
struct Lane {
    connection: ConnectionManager,
    /// Declared after the connection so it is dropped last.
    runtime: Runtime,
}

pub struct RedisBackend {
    /// Opened on demand; lane 0 at connect time.
    lanes: Box<[OnceLock<Lane>]>,
    /// Lanes opened and not in use.
    idle: Mutex<Vec<usize>>,
    /// Lanes opened (or being opened) so far.
    opened: AtomicUsize,
    /// Picks the lane to share when all are busy.
    next_shared: AtomicUsize,
    client: Client,
    config: ConnectionManagerConfig,
    /// The most one call may take, its retry included.
    call_deadline: Duration,
    connect_timeout: Duration,
    response_timeout: Duration,
    breaker: Breaker,
    /// The server, for error messages; never carries a password.
    target: String,
    scripts: Scripts,
    /// The near cache's connection, once `track` has started it.
    tracker: OnceLock<Tracker>,
}

/// Whether a command may be sent again after the connection dropped under it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Once,
    Never,
}

enum Request<'a> {
    Command(&'a Cmd),
    Pipeline(&'a Pipeline),
    Script(&'a ScriptInvocation<'a>),
}

/// The Lua scripts behind tags; each is the shared prelude plus its body.
struct Scripts {
    read: Script,
    write: Script,
    hash: Script,
    set_tagged: Script,
    add_tags: Script,
    key_ops: Script,
    session: Script,
    session_purge: Script,
    session_list: Script,
    extend_lock: Script,
    unlock: Script,
}

macro_rules! lua {
    ($body:literal) => {
        Script::new(concat!(include_str!("lua/envelope.lua"), include_str!("lua/tag.lua"), include_str!($body)))
    };
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            read: lua!("lua/read.lua"),
            write: lua!("lua/write.lua"),
            hash: lua!("lua/hash.lua"),
            set_tagged: lua!("lua/set_tagged.lua"),
            add_tags: lua!("lua/add_tags.lua"),
            key_ops: lua!("lua/key_ops.lua"),
            session: Script::new(include_str!("lua/session.lua")),
            session_purge: Script::new(include_str!("lua/session_purge.lua")),
            session_list: Script::new(SESSION_LIST_LUA),
            extend_lock: Script::new(EXTEND_LOCK_LUA),
            unlock: Script::new(UNLOCK_LUA),
        }
    }
}

/// HGETALL of each key; a key of another type reads as empty (no session).
pub(super) const SESSION_LIST_LUA: &str = "local out = {} for i, key in ipairs(KEYS) do local fields = redis.pcall('HGETALL', key) \
     if fields.err then out[i] = {} else out[i] = fields end end return out";
/// The classic compare-then-act lock scripts; a key of another type is not a lock.
pub(super) const EXTEND_LOCK_LUA: &str =
    "if redis.pcall('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
pub(super) const UNLOCK_LUA: &str =
    "if redis.pcall('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Batch size of the SCAN loops behind `clear` and the session walks: small
/// enough that no single step blocks the server for long.
pub(super) const CLEAR_BATCH: usize = 1000;

/// The first bytes of a stored tagged entry (see `lua/envelope.lua`).
pub(super) const TAG_MARKER: &[u8] = b"\0rcache-tags\0";

/// A plain value as stored: one that happens to start with the tag marker is
/// wrapped as an entry with no tags, so reads return it unchanged.
pub(super) fn stored_form(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if value.starts_with(TAG_MARKER) {
        std::borrow::Cow::Owned([TAG_MARKER, b"0:", value].concat())
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// TTL argument of the scripts: milliseconds, 0 for none.
pub(super) fn ttl_arg(expiry: Expiry) -> u64 {
    match expiry {
        Expiry::Never => 0,
        Expiry::After(ttl) => ttl.as_millis().max(1) as u64,
    }
}

/// TTL argument of the write and hash scripts: `ttl_arg`, or -1 to keep the current expiry.
pub(super) fn write_ttl_arg(expiry: WriteExpiry) -> i64 {
    match expiry {
        WriteExpiry::Set(expiry) => ttl_arg(expiry) as i64,
        WriteExpiry::Keep => -1,
    }
}

/// A PTTL reply of a key known to exist.
pub(super) fn remaining_of(millis: i64) -> Remaining {
    match millis {
        -1 => Remaining::Forever,
        left => Remaining::Left(Duration::from_millis(left.max(0) as u64)),
    }
}

/// A session hash as HGETALL returns it, reserved fields taken out.
pub(super) fn session_record(flat: Vec<Vec<u8>>) -> SessionRecord {
    let mut record = SessionRecord::default();
    let number = |value: &[u8]| std::str::from_utf8(value).ok().and_then(|text| text.parse().ok()).unwrap_or(0);
    let mut pairs = flat.into_iter();
    while let (Some(name), Some(value)) = (pairs.next(), pairs.next()) {
        match name.as_slice() {
            b"__version" => record.version = number(&value),
            b"__touched" => record.touched_ms = number(&value),
            b"__secret" => {}
            _ => record.fields.push((name, value)),
        }
    }
    record.fields.sort();
    record
}

/// A random token for a tag: 16 lowercase hex characters (64 bits).
pub(super) fn fresh_token() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(super) fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Another library in the process may have installed one already; either serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl RedisBackend {
    /// Connects and waits for the first connection, at most `connect_timeout`.
    pub fn connect(settings: &RedisSettings) -> Result<Self> {
        install_tls_provider();
        let client = Client::open(settings.url.as_str()).map_err(|e| Error::invalid(format!("invalid Redis URL: {e}")))?;
        Self::with_client(client, settings)
    }

    /// Connects through `client`, made elsewhere (with TLS files, or for the
    /// primary Sentinel named); `settings.url` is not used.
    pub fn with_client(client: Client, settings: &RedisSettings) -> Result<Self> {
        install_tls_provider();
        let target = client.get_connection_info().addr().to_string();
        // Failures surface at once and the next call reconnects, so a call never
        // waits through a backoff schedule while the server is down.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout));
        let first = Lane::connect(&client, &config, &target, settings.connect_timeout)?;
        let lanes: Box<[OnceLock<Lane>]> = (0..MAX_LANES).map(|_| OnceLock::new()).collect();
        let _ = lanes[0].set(first);
        Ok(RedisBackend {
            lanes,
            idle: Mutex::new(vec![0]),
            opened: AtomicUsize::new(1),
            next_shared: AtomicUsize::new(0),
            client,
            config,
            call_deadline: settings.connect_timeout + settings.response_timeout,
            connect_timeout: settings.connect_timeout,
            response_timeout: settings.response_timeout,
            breaker: Breaker::new(settings.breaker_threshold, settings.breaker_cooldown),
            target,
            scripts: Scripts::new(),
            tracker: OnceLock::new(),
        })
    }

    /// Runs `work` on an idle lane, opening one if allowed, else on a shared one.
    fn with_lane<T>(&self, work: impl FnOnce(&Lane) -> Result<T>) -> Result<T> {
        let claimed = self.idle.lock().pop().or_else(|| {
            let index = self.opened.fetch_add(1, Ordering::Relaxed);
            (index < MAX_LANES).then_some(index)
        });
        let Some(index) = claimed else {
            // Lanes may still be opening out of order: share the next one that exists (lane 0 always does).
            let start = self.next_shared.fetch_add(1, Ordering::Relaxed);
            let lane = (0..MAX_LANES).find_map(|step| self.lanes[(start + step) % MAX_LANES].get());
            return work(lane.expect("lane 0 opens at connect"));
        };
        // Give the lane back even if `work` panics.
        struct Return<'a>(&'a Mutex<Vec<usize>>, usize);
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                self.0.lock().push(self.1);
            }
        }
        let lane = match self.lanes[index].get() {
            Some(lane) => lane,
            None => match Lane::open(&self.client, &self.config, &self.target) {
                Ok(lane) => self.lanes[index].get_or_init(|| lane),
                Err(error) => {
                    // Give the number back so a later call can open it.
                    self.opened.fetch_sub(1, Ordering::Relaxed);
                    return Err(error);
                }
            },
        };
        let _return = Return(&self.idle, index);
        work(lane)
    }

    fn query<T: FromRedisValue>(&self, cmd: &Cmd, retry: Retry) -> Result<T> {
        self.execute(Request::Command(cmd), retry)
    }

    fn query_pipeline<T: FromRedisValue>(&self, pipeline: &Pipeline, retry: Retry) -> Result<T> {
        self.execute(Request::Pipeline(pipeline), retry)
    }

    fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>, retry: Retry) -> Result<T> {
        self.execute(Request::Script(invocation), retry)
    }

    fn execute<T: FromRedisValue>(&self, request: Request<'_>, retry: Retry) -> Result<T> {
        self.breaker.admit(&self.target)?;
        let result = self.with_lane(|lane| self.execute_on(lane, request, retry));
        self.breaker.record(&result);
        result
    }

    fn execute_on<T: FromRedisValue>(&self, lane: &Lane, request: Request<'_>, retry: Retry) -> Result<T> {
        let send = || async {
            let mut connection = lane.connection.clone();
            match request {
                Request::Command(cmd) => cmd.query_async::<T>(&mut connection).await,
                Request::Pipeline(pipeline) => pipeline.query_async::<T>(&mut connection).await,
                Request::Script(invocation) => invocation.invoke_async::<T>(&mut connection).await,
            }
        };
        let attempts = async {
            match send().await {
                // A timed-out command may still run on the server; only a
                // dropped connection is worth a second attempt.
                Err(e) if retry == Retry::Once && connection_dropped(&e) => send().await,
                result => result,
            }
        };
        lane.runtime
            .block_on(async { tokio::time::timeout(self.call_deadline, attempts).await })
            .map_err(|_| {
                Error::new(ErrorKind::Timeout, format!("{}: no reply within {} ms", self.target, self.call_deadline.as_millis()))
            })?
            .map_err(|e| convert_error(&self.target, e))
    }
}

/// A circuit breaker: after `threshold` consecutive connection failures or
/// timeouts, calls fail at once for `cooldown`; then calls go through again,
/// and one more failure opens it anew.
pub(super) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: std::sync::atomic::AtomicU32,
    /// Milliseconds after `epoch` until which calls are turned away.
    open_until: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
    pub(super) trips: std::sync::atomic::AtomicU64,
    pub(super) skipped: std::sync::atomic::AtomicU64,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold,
            cooldown,
            failures: Default::default(),
            open_until: Default::default(),
            epoch: std::time::Instant::now(),
            trips: Default::default(),
            skipped: Default::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(super) fn admit(&self, target: &str) -> Result<()> {
        let open_until = self.open_until.load(Ordering::Relaxed);
        if open_until > self.now_ms() {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "{target}: not tried: {} consecutive failures opened the circuit breaker for {} ms",
                    self.failures.load(Ordering::Relaxed),
                    self.cooldown.as_millis()
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn record<T>(&self, result: &Result<T>) {
        match result {
            Err(error) if matches!(error.kind, ErrorKind::Connection | ErrorKind::Timeout) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= self.threshold {
                    self.open_until.store(self.now_ms() + self.cooldown.as_millis() as u64, Ordering::Relaxed);
                    self.trips.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => self.failures.store(0, Ordering::Relaxed),
        }
    }
}

pub(super) fn new_runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Connection, format!("cannot start the I/O runtime: {e}")))
}

impl Lane {
    /// A lane connected now, waiting at most `timeout`; nothing is left
    /// behind when it fails.
    fn connect(client: &Client, config: &ConnectionManagerConfig, target: &str, timeout: Duration) -> Result<Lane> {
        let runtime = new_runtime()?;
        let connecting = ConnectionManager::new_with_config(client.clone(), config.clone());
        let connection = runtime
            .block_on(async { tokio::time::timeout(timeout, connecting).await })
            .map_err(|_| Error::new(ErrorKind::Timeout, format!("{target}: no connection within {} ms", timeout.as_millis())))?
            .map_err(|e| convert_error(target, e))?;
        Ok(Lane { connection, runtime })
    }

    /// A lane whose connection is made on first use.
    fn open(client: &Client, config: &ConnectionManagerConfig, target: &str) -> Result<Lane> {
        let runtime = new_runtime()?;
        let connection = {
            let _context = runtime.enter();
            ConnectionManager::new_lazy_with_config(client.clone(), config.clone()).map_err(|e| convert_error(target, e))?
        };
        Ok(Lane { connection, runtime })
    }
}

impl RedisBackend {
    /// Walks the keys matching `pattern` with SCAN, handing each non-empty batch to `visit`.
    fn scan(&self, pattern: &[u8], mut visit: impl FnMut(&[Vec<u8>]) -> Result<()>) -> Result<()> {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) =
                self.query(redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(CLEAR_BATCH), Retry::Once)?;
            if !keys.is_empty() {
                visit(&keys)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

pub(super) fn connection_dropped(error: &RedisError) -> bool {
    !error.is_timeout() && (error.is_connection_dropped() || error.is_io_error())
}

pub(super) fn convert_error(target: &str, error: RedisError) -> Error {
    let text = error.to_string();
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
        ErrorKind::Connection
    } else if text.contains("WRONGTYPE") || text.contains("not an integer") {
        ErrorKind::WrongType
    } else if text.contains("CORRUPT") && text.contains("rcache entry") {
        ErrorKind::Corrupt
    } else if text.contains("would overflow") {
        ErrorKind::InvalidArgument
    } else {
        match error.kind() {
            redis::ErrorKind::AuthenticationFailed => ErrorKind::Connection,
            redis::ErrorKind::InvalidClientConfig => ErrorKind::InvalidArgument,
            _ => ErrorKind::Server,
        }
    };
    if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) {
        let detail = error.detail().unwrap_or("no permission");
        return Error::new(kind, format!("{target}: refused by the server's ACL (NOPERM): {detail}"));
    }
    Error::new(kind, format!("{target}: {text}"))
}

impl RedisBackend {
    /// One call of the read script's `near` mode on the tracking connection:
    /// each group is a value key and the tag keys declared with it. A value
    /// is `tracked` when all its tag keys were declared.
    async fn read_near(
        &self,
        connection: &mut redis::aio::MultiplexedConnection,
        groups: &[(&[u8], &[Vec<u8>])],
        read: TrackedRead<'_>,
    ) -> redis::RedisResult<TrackedReads> {
        let mut invocation = self.scripts.read.prepare_invoke();
        invocation.arg("near").arg(match read {
            TrackedRead::One => "one",
            TrackedRead::Many => "many",
            TrackedRead::Refresh(_) => "refresh",
        });
        for (key, tags) in groups {
            invocation.key(*key);
            if let TrackedRead::Refresh(meta_key) = read {
                invocation.key(meta_key);
            }
            invocation.key(*tags).arg(tags.len());
        }
        let reply: Value = invocation.invoke_async(connection).await?;
        let mut reads = tracked_reads(reply, read)?;
        for (found, (_, declared)) in reads.values.iter_mut().zip(groups) {
            if let Some(found) = found {
                found.tracked = found.tags.iter().all(|tag| declared.contains(tag));
            }
        }
        Ok(reads)
    }
}

/// The reply of the read script's `near` mode (`tracked` still to be decided).
fn tracked_reads(reply: Value, read: TrackedRead<'_>) -> std::result::Result<TrackedReads, redis::ParsingError> {
    let mut items: Vec<Value> = redis::from_redis_value(reply)?;
    let meta = match read {
        TrackedRead::Refresh(_) => items.pop().map(redis::from_redis_value::<Option<Vec<u8>>>).transpose()?.flatten(),
        _ => None,
    };
    let values = items
        .into_iter()
        .map(|item| {
            let found: Option<(Vec<u8>, i64, Vec<Vec<u8>>)> = redis::from_redis_value(item)?;
            Ok(found.map(|(value, pttl, tags)| TrackedValue {
                value,
                ttl: u64::try_from(pttl).ok().map(Duration::from_millis),
                tracked: false,
                tags,
            }))
        })
        .collect::<std::result::Result<_, redis::ParsingError>>()?;
    Ok(TrackedReads { values, meta })
}

/// Appends `PX <ms>` for a finite expiry; the server keeps the key forever otherwise.
pub(super) fn with_expiry(cmd: &mut Cmd, expiry: Expiry) {
    if let Expiry::After(ttl) = expiry {
        cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
    }
}

impl Backend for RedisBackend {
    fn breaker_counts(&self) -> (u64, u64) {
        (self.breaker.trips.load(Ordering::Relaxed), self.breaker.skipped.load(Ordering::Relaxed))
    }

    fn track(&self, sink: std::sync::Arc<dyn InvalidationSink>) -> Result<()> {
        let tracker = Tracker::start(&self.client, self.connect_timeout, self.response_timeout, &self.target, sink)?;
        self.tracker.set(tracker).map_err(|_| Error::invalid("changes are reported already"))
    }

    fn read_tracked(&self, keys: &[Vec<u8>], read: TrackedRead<'_>) -> Result<Option<TrackedReads>> {
        let Some(tracker) = self.tracker.get() else { return Ok(None) };
        let Some(mut connection) = tracker.connection() else { return Ok(None) };
        self.breaker.admit(&self.target)?;
        let reading = async {
            let groups: Vec<(&[u8], &[Vec<u8>])> = keys.iter().map(|key| (key.as_slice(), &[][..])).collect();
            let mut reads = self.read_near(&mut connection, &groups, read).await?;
            // Redis 7.0 did not track the tag keys of these values (they were
            // read, not declared): read them again with their tags declared.
            let again: Vec<usize> = (0..reads.values.len())
                .filter(|&index| reads.values[index].as_ref().is_some_and(|found| !found.tracked))
                .collect();
            if !again.is_empty() {
                let tags: Vec<Vec<Vec<u8>>> = again
                    .iter()
                    .map(|&index| reads.values[index].as_ref().map(|found| found.tags.clone()).unwrap_or_default())
                    .collect();
                let groups: Vec<(&[u8], &[Vec<u8>])> =
                    again.iter().zip(&tags).map(|(&index, tags)| (keys[index].as_slice(), tags.as_slice())).collect();
                let second = self.read_near(&mut connection, &groups, read).await?;
                for (&index, found) in again.iter().zip(second.values) {
                    reads.values[index] = found;
                }
                if let TrackedRead::Refresh(_) = read {
                    reads.meta = second.meta;
                }
            }
            Ok::<_, RedisError>(reads)
        };
        let reply = tracker.block_on(async { tokio::time::timeout(self.call_deadline, reading).await });
        let result = match reply {
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("{}: no reply within {} ms", self.target, self.call_deadline.as_millis()),
            )),
            // The tracking connection broke under the read: the caller reads untracked.
            Ok(Err(e)) if connection_dropped(&e) => {
                tracker.broken();
                return Ok(None);
            }
            Ok(result) => result.map_err(|e| convert_error(&self.target, e)),
        };
        self.breaker.record(&result);
        result.map(Some)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.invoke(self.scripts.read.key(key).arg("one"), Retry::Once)
    }

    fn get_with_ttl(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Remaining)>> {
        let found: Option<(Vec<u8>, i64)> = self.invoke(self.scripts.read.key(key).arg("ttl"), Retry::Once)?;
        Ok(found.map(|(value, millis)| (value, remaining_of(millis))))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.read.prepare_invoke();
        invocation.key(keys).arg("many");
        self.invoke(&invocation, Retry::Once)
    }

    fn set(&self, key: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<()> {
        match expiry {
            WriteExpiry::Set(expiry) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(&*stored_form(value));
                with_expiry(&mut cmd, expiry);
                self.query(&cmd, Retry::Once)
            }
            // A script rather than SET KEEPTTL: an entry whose tag was
            // invalidated is missing, and a missing key gets no expiry.
            WriteExpiry::Keep => {
                let _: i64 =
                    self.invoke(self.scripts.write.key(key).arg("set").arg(&*stored_form(value)).arg(-1), Retry::Once)?;
                Ok(())
            }
        }
    }

    fn compare_and_set(&self, key: &[u8], expected: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<bool> {
        let mut invocation = self.scripts.write.key(key);
        invocation.arg("cas").arg(&*stored_form(value)).arg(write_ttl_arg(expiry)).arg(expected);
        // Not retried: after a lost reply a second attempt would find its own value and report a mismatch.
        let stored: i64 = self.invoke(&invocation, Retry::Never)?;
        Ok(stored > 0)
    }

    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for (key, value) in entries {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(&*stored_form(value));
            with_expiry(&mut cmd, expiry);
            pipeline.add_command(cmd).ignore();
        }
        self.query_pipeline(&pipeline, Retry::Once)
    }

    fn set_tagged(&self, key: &[u8], value: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()> {
        let mut invocation = self.scripts.set_tagged.key(key);
        invocation.key(tags).arg(value).arg(ttl_arg(expiry));
        for _ in tags {
            invocation.arg(fresh_token());
        }
        let _: i64 = self.invoke(&invocation, Retry::Once)?;
        Ok(())
    }

    fn add_tags(&self, key: &[u8], tags: &[Vec<u8>]) -> Result<bool> {
        let mut invocation = self.scripts.add_tags.key(key);
        invocation.key(tags);
        for _ in tags {
            invocation.arg(fresh_token());
        }
        let added: i64 = self.invoke(&invocation, Retry::Once)?;
        Ok(added > 0)
    }

    fn invalidate_tags(&self, tags: &[Vec<u8>]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        // A missing tag needs nothing: entries recording it are already invalid.
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for tag in tags {
            pipeline.cmd("SET").arg(tag).arg(fresh_token()).arg("XX").arg("KEEPTTL").ignore();
        }
        self.query_pipeline(&pipeline, Retry::Once)
    }

    fn clear(&self, pattern: &[u8]) -> Result<u64> {
        let mut deleted = 0;
        self.scan(pattern, |keys| {
            let removed: u64 = self.query(redis::cmd("UNLINK").arg(keys), Retry::Once)?;
            deleted += removed;
            Ok(())
        })?;
        Ok(deleted)
    }

    fn keys(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut found = Vec::new();
        self.scan(pattern, |keys| {
            // Entries whose tags were invalidated are still keys to SCAN, not to rcache.
            let mut invocation = self.scripts.read.prepare_invoke();
            invocation.key(keys).arg("live");
            let live: Vec<Vec<u8>> = self.invoke(&invocation, Retry::Once)?;
            found.extend(live);
            Ok(())
        })?;
        Ok(found)
    }

    fn hash_get(&self, key: &[u8]) -> Result<Option<HashFields>> {
        let flat: Option<Vec<Vec<u8>>> = self.invoke(self.scripts.hash.key(key).arg("get"), Retry::Once)?;
        Ok(flat.map(|flat| {
            let mut pairs = flat.into_iter();
            std::iter::from_fn(|| Some((pairs.next()?, pairs.next()?))).collect()
        }))
    }

    fn hash_set(&self, key: &[u8], fields: &[(&[u8], &[u8])], expiry: WriteExpiry, condition: WriteCondition) -> Result<bool> {
        let condition = match condition {
            WriteCondition::Always => "always",
            WriteCondition::IfExists => "if_exists",
            WriteCondition::IfAbsent => "if_absent",
        };
        let mut invocation = self.scripts.hash.key(key);
        invocation.arg("set").arg(condition).arg(write_ttl_arg(expiry));
        for (name, value) in fields {
            invocation.arg(*name).arg(*value);
        }
        // Not retried: after a lost reply a conditional write would see its own record.
        let written: i64 = self.invoke(&invocation, Retry::Never)?;
        Ok(written > 0)
    }

    fn server_info(&self) -> Result<Vec<u8>> {
        self.query(&redis::cmd("INFO"), Retry::Once)
    }

    fn get_for_refresh(&self, key: &[u8], meta_key: &[u8]) -> Result<Option<ForRefresh>> {
        let found: Option<(Vec<u8>, Option<Vec<u8>>, i64)> =
            self.invoke(self.scripts.read.key(key).key(meta_key).arg("refresh"), Retry::Once)?;
        Ok(found.map(|(value, meta, millis)| (value, meta, remaining_of(millis))))
    }

    fn lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let millis = lease.as_millis().max(1) as u64;
        // Not retried: a lost reply would make our own lock look taken by someone else.
        let reply: Option<String> =
            self.query(redis::cmd("SET").arg(key).arg(owner).arg("NX").arg("PX").arg(millis), Retry::Never)?;
        Ok(reply.is_some())
    }

    fn extend_lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let millis = lease.as_millis().max(1) as u64;
        let extended: i64 = self.invoke(self.scripts.extend_lock.key(key).arg(owner).arg(millis), Retry::Once)?;
        Ok(extended > 0)
    }

    fn unlock(&self, key: &[u8], owner: &[u8]) -> Result<bool> {
        let released: i64 = self.invoke(self.scripts.unlock.key(key).arg(owner), Retry::Once)?;
        Ok(released > 0)
    }

    fn session_create(&self, key: &[u8], secret: &[u8], fields: &[(&[u8], &[u8])], expiry: Expiry, now_ms: u64) -> Result<bool> {
        let mut invocation = self.scripts.session.key(key);
        invocation.arg("create").arg(secret).arg(now_ms).arg(ttl_arg(expiry));
        for (name, value) in fields {
            invocation.arg(*name).arg(*value);
        }
        let created: i64 = self.invoke(&invocation, Retry::Never)?;
        Ok(created > 0)
    }

    fn session_load(&self, key: &[u8], secret: &[u8], touch: Option<Expiry>, now_ms: u64) -> Result<Option<SessionRecord>> {
        let slide: i64 = touch.map_or(-1, |expiry| ttl_arg(expiry) as i64);
        let flat: Option<Vec<Vec<u8>>> =
            self.invoke(self.scripts.session.key(key).arg("load").arg(secret).arg(now_ms).arg(slide), Retry::Once)?;
        Ok(flat.filter(|flat| !flat.is_empty()).map(session_record))
    }

    fn session_save(
        &self,
        key: &[u8],
        secret: &[u8],
        expected: Option<u64>,
        set: &[(&[u8], &[u8])],
        delete: &[&[u8]],
        expiry: Expiry,
        now_ms: u64,
    ) -> Result<SaveOutcome> {
        let mut invocation = self.scripts.session.key(key);
        invocation.arg("save").arg(secret).arg(now_ms).arg(expected.unwrap_or(0)).arg(ttl_arg(expiry)).arg(delete.len());
        for name in delete {
            invocation.arg(*name);
        }
        for (name, value) in set {
            invocation.arg(*name).arg(*value);
        }
        // Not retried: a second attempt after a lost reply would see its own save as a conflict.
        let outcome: Option<(String, u64)> = self.invoke(&invocation, Retry::Never)?;
        Ok(match outcome {
            None => SaveOutcome::Missing,
            Some((kind, version)) if kind == "conflict" => SaveOutcome::Conflict(version),
            Some((_, version)) => SaveOutcome::Saved(version),
        })
    }

    fn session_touch(&self, key: &[u8], secret: &[u8], expiry: Expiry, now_ms: u64) -> Result<bool> {
        let touched: Option<i64> =
            self.invoke(self.scripts.session.key(key).arg("touch").arg(secret).arg(now_ms).arg(ttl_arg(expiry)), Retry::Once)?;
        Ok(touched.is_some())
    }

    fn session_destroy(&self, key: &[u8], secret: &[u8]) -> Result<bool> {
        let destroyed: Option<i64> = self.invoke(self.scripts.session.key(key).arg("destroy").arg(secret).arg(0), Retry::Once)?;
        Ok(destroyed.is_some())
    }

    fn session_list(&self, pattern: &[u8]) -> Result<Vec<(Vec<u8>, SessionRecord)>> {
        let mut sessions = Vec::new();
        self.scan(pattern, |keys| {
            let mut invocation = self.scripts.session_list.prepare_invoke();
            invocation.key(keys);
            let hashes: Vec<Vec<Vec<u8>>> = self.invoke(&invocation, Retry::Once)?;
            for (key, flat) in keys.iter().zip(hashes) {
                // Gone since the scan, or not a session.
                if flat.chunks(2).any(|pair| pair[0] == b"__secret") {
                    sessions.push((key.clone(), session_record(flat)));
                }
            }
            Ok(())
        })?;
        Ok(sessions)
    }

    fn session_purge(&self, pattern: &[u8], idle_since_ms: u64) -> Result<u64> {
        let mut purged = 0;
        self.scan(pattern, |keys| {
            let mut invocation = self.scripts.session_purge.prepare_invoke();
            invocation.key(keys).arg(idle_since_ms);
            let count: u64 = self.invoke(&invocation, Retry::Once)?;
            purged += count;
            Ok(())
        })?;
        Ok(purged)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let deleted: i64 = self.invoke(self.scripts.key_ops.key(key).arg("delete"), Retry::Once)?;
        Ok(deleted > 0)
    }

    fn exists(&self, key: &[u8]) -> Result<bool> {
        let found: u64 = self.invoke(self.scripts.read.key(key).arg("exists"), Retry::Once)?;
        Ok(found > 0)
    }

    fn remaining(&self, key: &[u8]) -> Result<Remaining> {
        let millis: i64 = self.invoke(self.scripts.key_ops.key(key).arg("ttl"), Retry::Once)?;
        Ok(match millis {
            -2 => Remaining::Missing,
            millis => remaining_of(millis),
        })
    }

    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool> {
        let done: i64 = self.invoke(self.scripts.key_ops.key(key).arg("expire").arg(ttl_arg(expiry)), Retry::Once)?;
        Ok(done > 0)
    }

    fn increment(&self, key: &[u8], delta: i64, expiry_if_new: Expiry) -> Result<i64> {
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        if let Expiry::After(ttl) = expiry_if_new {
            // Creating the counter and giving it a TTL is one step: no racing
            // caller can leave it without one.
            let millis = ttl.as_millis().max(1) as u64;
            pipeline.cmd("SET").arg(key).arg(0).arg("PX").arg(millis).arg("NX").ignore();
        }
        pipeline.cmd("INCRBY").arg(key).arg(delta);
        let (value,): (i64,) = self.query_pipeline(&pipeline, Retry::Never)?;
        Ok(value)
    }
}
