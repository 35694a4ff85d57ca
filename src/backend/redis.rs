//! The Redis backend: blocking connections to one server (`conn::pool`),
//! each call sent and answered on the caller's own thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::{Client, Cmd, FromRedisValue, Pipeline, RedisError, RedisResult, Script, ScriptInvocation, Value};

use super::conn::breaker::Breaker;
use super::conn::envelope::{KnownTags, Stored, Tokens};
use super::conn::pool::{Checkout, CutOff, Pool};
use super::conn::retry::Call;
use super::conn::script::{Args, ScriptTags};
use super::conn::wire::{
    CLEAR_BATCH, TAG_MARKER, connection_dropped, convert_error, fresh_token, install_tls_provider, listed_sessions, remaining_of,
    session_record, set_command, stored_form, ttl_arg, write_ttl_arg,
};
use super::tracking::{Tracker, TrackerSettings, broadcast_barrier};
use super::{
    Backend, Expiry, ForRefresh, HashFields, InvalidationSink, MAX_TAGS, Remaining, SaveOutcome, SessionRecord, SessionSave,
    TrackedRead, TrackedReads, TrackedValue, WriteCondition, WriteExpiry,
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
    /// Where this handle's tag keys live (`<prefix>__rcache_tag:`): a stored
    /// entry naming another tag key is corrupt and never followed.
    pub tag_space: Vec<u8>,
}

pub struct RedisBackend {
    pool: Pool,
    /// For the near cache's tracking connection.
    client: Client,
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
    tag_space: Vec<u8>,
    /// Tag keys of tagged entries read or written lately (see `conn::envelope`).
    known_tags: KnownTags,
}

#[derive(Clone, Copy)]
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

/// A script that checks tagged entries declares their tag keys (`lua/tags.lua`).
macro_rules! checked {
    ($body:literal) => {
        Script::new(concat!(
            include_str!("lua/envelope.lua"),
            include_str!("lua/tags.lua"),
            include_str!("lua/tag.lua"),
            include_str!($body)
        ))
    };
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            read: checked!("lua/read.lua"),
            write: checked!("lua/write.lua"),
            hash: checked!("lua/hash.lua"),
            set_tagged: Script::new(concat!(
                include_str!("lua/envelope.lua"),
                include_str!("lua/tag.lua"),
                include_str!("lua/set_tagged.lua")
            )),
            add_tags: checked!("lua/add_tags.lua"),
            key_ops: checked!("lua/key_ops.lua"),
            session: Script::new(include_str!("lua/session.lua")),
            session_purge: Script::new(include_str!("lua/session_purge.lua")),
            session_list: Script::new(include_str!("lua/session_list.lua")),
            extend_lock: Script::new(include_str!("lua/extend_lock.lua")),
            unlock: Script::new(include_str!("lua/unlock.lua")),
        }
    }
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
        let pool = Pool::connect(client.clone(), target.clone(), settings.connect_timeout, settings.response_timeout)?;
        Ok(RedisBackend {
            pool,
            client,
            call_deadline: settings.connect_timeout + settings.response_timeout,
            connect_timeout: settings.connect_timeout,
            response_timeout: settings.response_timeout,
            breaker: Breaker::new(settings.breaker_threshold, settings.breaker_cooldown),
            target,
            scripts: Scripts::new(),
            tracker: OnceLock::new(),
            tag_space: settings.tag_space.clone(),
            known_tags: KnownTags::default(),
        })
    }

    fn query<T: FromRedisValue>(&self, cmd: &Cmd, call: Call) -> Result<T> {
        self.execute(Request::Command(cmd), call, Instant::now())
    }

    fn query_pipeline<T: FromRedisValue>(&self, pipeline: &Pipeline, call: Call) -> Result<T> {
        self.execute(Request::Pipeline(pipeline), call, Instant::now())
    }

    fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>, call: Call) -> Result<T> {
        self.execute(Request::Script(invocation), call, Instant::now())
    }

    fn execute<T: FromRedisValue>(&self, request: Request<'_>, call: Call, started: Instant) -> Result<T> {
        self.run(call, started, |connection| send_once(connection, request))
    }

    /// Runs a script that checks tagged entries (`conn::script`): the tag
    /// keys it asks for are declared at the end of KEYS in its next run.
    /// `keys` and `args` are the script's own; returns its reply and the tag
    /// keys declared.
    fn invoke_checked<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&[u8]],
        args: &Args,
        call: Call,
        started: Instant,
    ) -> Result<(T, Vec<Vec<u8>>)> {
        self.run(call, started, |connection| {
            let mut tags = ScriptTags::default();
            loop {
                let mut invocation = script.prepare_invoke();
                invocation.key(keys).key(&tags.keys).arg(&args.0).arg(&tags.declared_tail()[..]);
                match invocation.invoke::<T>(connection) {
                    Err(e) => {
                        if !tags.asked(&e, &self.tag_space)? {
                            return Err(e);
                        }
                    }
                    Ok(reply) => return Ok((reply, tags.keys)),
                }
            }
        })
    }

    /// Runs `work` on a connection of the pool, on this thread, until the
    /// call deadline counted from `started` (before the request was encoded,
    /// for calls that carry a value). After a dropped connection `work` runs
    /// once more on a new connection when the retry table allows; never after
    /// a timeout, which may leave the request running on the server. A
    /// connection whose call did not end cleanly is closed, and a large
    /// request is not sent past the deadline (`conn::pool`).
    fn run<T>(&self, call: Call, started: Instant, mut work: impl FnMut(&mut Checkout<'_>) -> RedisResult<T>) -> Result<T> {
        self.breaker.admit(&self.target)?;
        let result = self.attempt(call, started + self.call_deadline, &mut work);
        self.breaker.record(&result);
        result
    }

    fn attempt<T>(&self, call: Call, deadline: Instant, work: &mut impl FnMut(&mut Checkout<'_>) -> RedisResult<T>) -> Result<T> {
        let mut resent = false;
        loop {
            let mut checkout = self.pool.checkout(deadline)?;
            match checkout.arm() {
                Ok(true) => {}
                Ok(false) => {
                    checkout.give_back();
                    return Err(call.expired_before_sending(&self.target, self.call_deadline));
                }
                Err(e) => return Err(convert_error(&self.target, e)),
            }
            match work(&mut checkout) {
                Ok(reply) => {
                    checkout.give_back();
                    return Ok(reply);
                }
                Err(e) if e.is_timeout() => {
                    return Err(match checkout.cut_off() {
                        Some(CutOff::Unsent) => {
                            checkout.give_back();
                            call.expired_before_sending(&self.target, self.call_deadline)
                        }
                        Some(CutOff::Sent) => call.timed_out(&self.target, self.call_deadline),
                        None => call.timed_out(&self.target, checkout.wait()),
                    });
                }
                Err(e) if connection_dropped(&e) => {
                    drop(checkout);
                    self.pool.close_idle();
                    if call.resendable() && !resent {
                        resent = true;
                        continue;
                    }
                    return Err(call.failed(&self.target, e));
                }
                // The server answered: the connection is ready for the next call.
                Err(e) => {
                    checkout.give_back();
                    return Err(call.failed(&self.target, e));
                }
            }
        }
    }
}

fn send_once<T: FromRedisValue>(connection: &mut Checkout<'_>, request: Request<'_>) -> RedisResult<T> {
    match request {
        Request::Command(cmd) => cmd.query(connection),
        Request::Pipeline(pipeline) => pipeline.query(connection),
        Request::Script(invocation) => invocation.invoke(connection),
    }
}

impl RedisBackend {
    /// The payloads of the strings stored at `keys` as rcache reads them (see
    /// `conn::envelope`), given the tokens `read` with them: one `MGET` of the
    /// tokens still missing when any is tagged.
    fn payloads(
        &self,
        keys: &[&[u8]],
        stored: Vec<Option<Vec<u8>>>,
        mut read: Tokens,
        call: Call,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        if !stored.iter().flatten().any(|value| value.starts_with(TAG_MARKER)) {
            if !read.is_empty() {
                keys.iter().for_each(|key| self.known_tags.forget(key));
            }
            return Ok(stored); // plain values are their own payloads
        }
        let stored = Stored::parse(&stored, &self.tag_space).map_err(|e| convert_error(&self.target, e))?;
        stored.remember(keys, &self.known_tags);
        let missing = stored.missing(&read);
        if !missing.is_empty() {
            let tokens: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(&missing), call)?;
            read.extend(missing, tokens);
        }
        Ok(stored.payloads_from(&read))
    }

    /// `payloads` of the string stored at `key`.
    fn payload(&self, key: &[u8], stored: Option<Vec<u8>>, read: Tokens, call: Call) -> Result<Option<Vec<u8>>> {
        Ok(self.payloads(&[key], vec![stored], read, call)?.pop().flatten())
    }

    /// `get_with_ttl`'s answer from the stored string and its `PTTL`.
    fn with_remaining(
        &self,
        key: &[u8],
        stored: Option<Vec<u8>>,
        millis: i64,
        read: Tokens,
    ) -> Result<Option<(Vec<u8>, Remaining)>> {
        // -2: the key expired between the two commands.
        let stored = stored.filter(|_| millis != -2);
        let payload = self.payload(key, stored, read, Call::GetWithTtl)?;
        Ok(payload.map(|payload| (payload, remaining_of(millis))))
    }

    /// `MGET` of `keys` and `tag_keys`: the stored strings and those tags'
    /// tokens, read at one instant.
    fn read_with_tags(&self, keys: &[&[u8]], tag_keys: Vec<Vec<u8>>, call: Call) -> Result<(Vec<Option<Vec<u8>>>, Tokens)> {
        let mut stored: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(keys).arg(&tag_keys), call)?;
        let tokens = stored.split_off(keys.len());
        Ok((stored, Tokens::new(tag_keys, tokens)))
    }

    /// Walks the keys matching `pattern` with SCAN, handing each non-empty batch to `visit`.
    fn scan(&self, pattern: &[u8], mut visit: impl FnMut(&[Vec<u8>]) -> Result<()>) -> Result<()> {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) =
                self.query(redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(CLEAR_BATCH), Call::Scan)?;
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

impl RedisBackend {
    /// `Backend::track`; with `primary_only`, only while the server is a
    /// primary (see `TrackerSettings::primary_only`).
    pub(super) fn track_with(&self, sink: Arc<dyn InvalidationSink>, primary_only: Option<Arc<AtomicBool>>) -> Result<()> {
        let settings = TrackerSettings {
            client: &self.client,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            target: &self.target,
            primary_only,
        };
        let tracker = Tracker::start(settings, sink)?;
        self.tracker.set(tracker).map_err(|_| Error::invalid("changes are reported already"))
    }

    /// The read script's `near` mode on the tracking connection: the tag
    /// keys of the values read are declared (`conn::script`), so the server
    /// tracks them with the values.
    async fn read_near(
        &self,
        connection: &mut redis::aio::MultiplexedConnection,
        keys: &[Vec<u8>],
        read: TrackedRead<'_>,
    ) -> RedisResult<TrackedReads> {
        let how = match read {
            TrackedRead::One => "one",
            TrackedRead::Many => "many",
            TrackedRead::Refresh(_) => "refresh",
        };
        let mut tags = ScriptTags::default();
        loop {
            let mut invocation = self.scripts.read.prepare_invoke();
            invocation.key(keys);
            if let TrackedRead::Refresh(meta_key) = read {
                invocation.key(meta_key);
            }
            invocation.key(&tags.keys).arg("near").arg(how).arg(&tags.declared_tail()[..]);
            match invocation.invoke_async::<Value>(connection).await {
                Err(e) => {
                    if !tags.asked(&e, &self.tag_space)? {
                        return Err(e);
                    }
                }
                Ok(reply) => {
                    let mut reads = tracked_reads(reply, read)?;
                    for found in reads.values.iter_mut().flatten() {
                        found.tracked = found.tags.iter().all(|tag| tags.keys.contains(tag));
                    }
                    return Ok(reads);
                }
            }
        }
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

impl Backend for RedisBackend {
    fn breaker_counts(&self) -> (u64, u64) {
        (self.breaker.trips.load(Ordering::Relaxed), self.breaker.skipped.load(Ordering::Relaxed))
    }

    fn track(&self, sink: Arc<dyn InvalidationSink>) -> Result<()> {
        self.track_with(sink, None)
    }

    fn read_tracked(&self, keys: &[Vec<u8>], read: TrackedRead<'_>) -> Result<Option<TrackedReads>> {
        let Some(tracker) = self.tracker.get() else { return Ok(None) };
        let Some(mut connection) = tracker.connection() else { return Ok(None) };
        self.breaker.admit(&self.target)?;
        let reading = async {
            let mut reads = self.read_near(&mut connection, keys, read).await?;
            if tracker.broadcast() {
                // Every change under the prefix, tag keys included, is reported whatever was declared.
                reads.values.iter_mut().flatten().for_each(|found| found.tracked = true);
                broadcast_barrier(&mut connection).await?;
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

    /// One `GET`; a tagged entry adds one `MGET` of its tokens, or, when its
    /// tag keys are known from an earlier read or write, is one `MGET` of the
    /// entry and its tokens.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let tag_keys = self.known_tags.of(&[key]);
        if !tag_keys.is_empty() {
            let (mut stored, read) = self.read_with_tags(&[key], tag_keys, Call::Get)?;
            if let Some(stored) = stored.pop().flatten() {
                return self.payload(key, Some(stored), read, Call::Get);
            }
            // Absent, or of another type, which GET reports as an error.
            self.known_tags.forget(key);
        }
        let stored: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(key), Call::Get)?;
        self.payload(key, stored, Tokens::default(), Call::Get)
    }

    /// `GET` and `PTTL` in one round trip; a tagged entry adds one `MGET` of
    /// its tokens, or, when its tag keys are known, reads them with the entry.
    fn get_with_ttl(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Remaining)>> {
        let tag_keys = self.known_tags.of(&[key]);
        if !tag_keys.is_empty() {
            let mut pipeline = redis::pipe();
            pipeline.cmd("MGET").arg(key).arg(&tag_keys).cmd("PTTL").arg(key);
            let (mut stored, millis): (Vec<Option<Vec<u8>>>, i64) = self.query_pipeline(&pipeline, Call::GetWithTtl)?;
            let tokens = stored.split_off(1);
            if let Some(stored) = stored.pop().flatten() {
                return self.with_remaining(key, Some(stored), millis, Tokens::new(tag_keys, tokens));
            }
            // Absent, or of another type, which GET reports as an error.
            self.known_tags.forget(key);
        }
        let (stored, millis): (Option<Vec<u8>>, i64) =
            self.query_pipeline(redis::pipe().cmd("GET").arg(key).cmd("PTTL").arg(key), Call::GetWithTtl)?;
        self.with_remaining(key, stored, millis, Tokens::default())
    }

    /// One `MGET`, naming the tag keys known for the keys read; tagged
    /// entries whose tag keys were not known add one `MGET` of their tokens.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let (stored, read) = self.read_with_tags(&keys, self.known_tags.of(&keys), Call::GetMany)?;
        self.payloads(&keys, stored, read, Call::GetMany)
    }

    fn set(&self, key: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<()> {
        let started = Instant::now();
        match expiry {
            WriteExpiry::Set(expiry) => self.execute(Request::Command(&set_command(key, value, expiry)), Call::Set, started),
            // A script rather than SET KEEPTTL: an entry whose tag was
            // invalidated is missing, and a missing key gets no expiry.
            WriteExpiry::Keep => {
                let args = Args::default().with("set").with(&*stored_form(value)).with(-1);
                let _: (i64, _) = self.invoke_checked(&self.scripts.write, &[key], &args, Call::Set, started)?;
                Ok(())
            }
        }
    }

    fn compare_and_set(&self, key: &[u8], expected: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<bool> {
        let started = Instant::now();
        let args = Args::default().with("cas").with(&*stored_form(value)).with(write_ttl_arg(expiry)).with(expected);
        // Not retried: after a lost reply a second attempt would find its own value and report a mismatch.
        let (stored, _): (i64, _) = self.invoke_checked(&self.scripts.write, &[key], &args, Call::CompareAndSet, started)?;
        Ok(stored > 0)
    }

    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for (key, value) in entries {
            pipeline.add_command(set_command(key, value, expiry)).ignore();
        }
        self.execute(Request::Pipeline(&pipeline), Call::SetMany, started)
    }

    fn set_tagged(&self, key: &[u8], value: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()> {
        let started = Instant::now();
        let mut invocation = self.scripts.set_tagged.key(key);
        invocation.key(tags).arg(value).arg(ttl_arg(expiry));
        for _ in tags {
            invocation.arg(fresh_token());
        }
        let _: i64 = self.execute(Request::Script(&invocation), Call::SetTagged, started)?;
        self.known_tags.learn(key, tags.to_vec());
        Ok(())
    }

    fn add_tags(&self, key: &[u8], tags: &[Vec<u8>]) -> Result<bool> {
        let mut keys: Vec<&[u8]> = vec![key];
        keys.extend(tags.iter().map(Vec::as_slice));
        let args = tags.iter().fold(Args::default().with(MAX_TAGS), |args, _| args.with(fresh_token()));
        let (added, _): (i64, _) = self.invoke_checked(&self.scripts.add_tags, &keys, &args, Call::AddTags, Instant::now())?;
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
        self.query_pipeline(&pipeline, Call::InvalidateTags)
    }

    fn clear(&self, pattern: &[u8]) -> Result<u64> {
        let mut deleted = 0;
        self.scan(pattern, |keys| {
            let removed: u64 = self.query(redis::cmd("UNLINK").arg(keys), Call::Clear)?;
            deleted += removed;
            Ok(())
        })?;
        Ok(deleted)
    }

    fn keys(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut found = Vec::new();
        self.scan(pattern, |keys| {
            // Entries whose tags were invalidated are still keys to SCAN, not to rcache.
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let (live, _): (Vec<Vec<u8>>, _) =
                self.invoke_checked(&self.scripts.read, &keys, &Args::default().with("live"), Call::Scan, Instant::now())?;
            found.extend(live);
            Ok(())
        })?;
        Ok(found)
    }

    fn hash_get(&self, key: &[u8]) -> Result<Option<HashFields>> {
        let (flat, _): (Option<Vec<Vec<u8>>>, _) =
            self.invoke_checked(&self.scripts.hash, &[key], &Args::default().with("get"), Call::HashGet, Instant::now())?;
        Ok(flat.map(|flat| {
            let mut pairs = flat.into_iter();
            std::iter::from_fn(|| Some((pairs.next()?, pairs.next()?))).collect()
        }))
    }

    fn hash_set(&self, key: &[u8], fields: &[(&[u8], &[u8])], expiry: WriteExpiry, condition: WriteCondition) -> Result<bool> {
        let call = Call::hash_set(condition);
        let condition = condition.script_arg();
        let mut args = Args::default().with("set").with(condition).with(write_ttl_arg(expiry));
        for (name, value) in fields {
            args = args.with(*name).with(*value);
        }
        // Not retried: after a lost reply a conditional write would see its own record.
        let (written, _): (i64, _) = self.invoke_checked(&self.scripts.hash, &[key], &args, call, Instant::now())?;
        Ok(written > 0)
    }

    fn server_info(&self) -> Result<Vec<u8>> {
        self.query(&redis::cmd("INFO"), Call::ServerInfo)
    }

    /// `GET`, `PTTL` and the metadata (`MGET`, so another type reads as none)
    /// in one round trip; a tagged entry adds one `MGET` of its tokens, unless
    /// its tag keys are known: then that `MGET` reads them with the metadata.
    fn get_for_refresh(&self, key: &[u8], meta_key: &[u8]) -> Result<Option<ForRefresh>> {
        // The tokens of the tag keys known for the entry come with the hint,
        // read after the entry.
        let tag_keys = self.known_tags.of(&[key]);
        let mut pipeline = redis::pipe();
        pipeline.cmd("GET").arg(key).cmd("PTTL").arg(key).cmd("MGET").arg(meta_key).arg(&tag_keys);
        type Reply = (Option<Vec<u8>>, i64, Vec<Option<Vec<u8>>>);
        let (stored, millis, mut meta): Reply = self.query_pipeline(&pipeline, Call::GetForRefresh)?;
        let tokens = meta.split_off(1);
        let stored = stored.filter(|_| millis != -2);
        let payload = self.payload(key, stored, Tokens::new(tag_keys, tokens), Call::GetForRefresh)?;
        Ok(payload.map(|payload| (payload, meta.pop().flatten(), remaining_of(millis))))
    }

    fn lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let millis = lease.as_millis().max(1) as u64;
        // Not retried: a lost reply would make our own lock look taken by someone else.
        let reply: Option<String> =
            self.query(redis::cmd("SET").arg(key).arg(owner).arg("NX").arg("PX").arg(millis), Call::Lock)?;
        Ok(reply.is_some())
    }

    fn extend_lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let millis = lease.as_millis().max(1) as u64;
        let extended: i64 = self.invoke(self.scripts.extend_lock.key(key).arg(owner).arg(millis), Call::ExtendLock)?;
        Ok(extended > 0)
    }

    fn unlock(&self, key: &[u8], owner: &[u8]) -> Result<bool> {
        let released: i64 = self.invoke(self.scripts.unlock.key(key).arg(owner), Call::Unlock)?;
        Ok(released > 0)
    }

    fn session_create(&self, key: &[u8], secret: &[u8], fields: &[(&[u8], &[u8])], expiry: Expiry, now_ms: u64) -> Result<bool> {
        let mut invocation = self.scripts.session.key(key);
        invocation.arg("create").arg(secret).arg(now_ms).arg(ttl_arg(expiry));
        for (name, value) in fields {
            invocation.arg(*name).arg(*value);
        }
        let created: i64 = self.invoke(&invocation, Call::SessionCreate)?;
        Ok(created > 0)
    }

    fn session_load(&self, key: &[u8], secret: &[u8], touch: Option<Expiry>, now_ms: u64) -> Result<Option<SessionRecord>> {
        let slide: i64 = touch.map_or(-1, |expiry| ttl_arg(expiry) as i64);
        let flat: Option<Vec<Vec<u8>>> =
            self.invoke(self.scripts.session.key(key).arg("load").arg(secret).arg(now_ms).arg(slide), Call::SessionLoad)?;
        Ok(flat.filter(|flat| !flat.is_empty()).map(session_record))
    }

    fn session_save(&self, save: SessionSave<'_>) -> Result<SaveOutcome> {
        let SessionSave { key, secret, expected, set, delete, expiry, now_ms } = save;
        let mut invocation = self.scripts.session.key(key);
        invocation.arg("save").arg(secret).arg(now_ms).arg(expected.unwrap_or(0)).arg(ttl_arg(expiry)).arg(delete.len());
        for name in delete {
            invocation.arg(*name);
        }
        for (name, value) in set {
            invocation.arg(*name).arg(*value);
        }
        // Not retried: a second attempt after a lost reply would see its own save as a conflict.
        let outcome: Option<(String, u64)> = self.invoke(&invocation, Call::SessionSave)?;
        Ok(match outcome {
            None => SaveOutcome::Missing,
            Some((kind, version)) if kind == "conflict" => SaveOutcome::Conflict(version),
            Some((_, version)) => SaveOutcome::Saved(version),
        })
    }

    fn session_touch(&self, key: &[u8], secret: &[u8], expiry: Expiry, now_ms: u64) -> Result<bool> {
        let touched: Option<i64> = self.invoke(
            self.scripts.session.key(key).arg("touch").arg(secret).arg(now_ms).arg(ttl_arg(expiry)),
            Call::SessionTouch,
        )?;
        Ok(touched.is_some())
    }

    fn session_destroy(&self, key: &[u8], secret: &[u8]) -> Result<bool> {
        let destroyed: Option<i64> =
            self.invoke(self.scripts.session.key(key).arg("destroy").arg(secret).arg(0), Call::SessionDestroy)?;
        Ok(destroyed.is_some())
    }

    fn session_list(&self, pattern: &[u8]) -> Result<Vec<(Vec<u8>, SessionRecord)>> {
        let mut sessions = Vec::new();
        self.scan(pattern, |keys| {
            let mut invocation = self.scripts.session_list.prepare_invoke();
            invocation.key(keys);
            let hashes: Vec<Vec<Vec<u8>>> = self.invoke(&invocation, Call::SessionList)?;
            sessions.extend(listed_sessions(keys, hashes));
            Ok(())
        })?;
        Ok(sessions)
    }

    fn session_purge(&self, pattern: &[u8], idle_since_ms: u64) -> Result<u64> {
        let mut purged = 0;
        self.scan(pattern, |keys| {
            let mut invocation = self.scripts.session_purge.prepare_invoke();
            invocation.key(keys).arg(idle_since_ms);
            let count: u64 = self.invoke(&invocation, Call::SessionPurge)?;
            purged += count;
            Ok(())
        })?;
        Ok(purged)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let (deleted, _): (i64, _) =
            self.invoke_checked(&self.scripts.key_ops, &[key], &Args::default().with("delete"), Call::Delete, Instant::now())?;
        Ok(deleted > 0)
    }

    fn exists(&self, key: &[u8]) -> Result<bool> {
        let (found, _): (u64, _) =
            self.invoke_checked(&self.scripts.read, &[key], &Args::default().with("exists"), Call::Exists, Instant::now())?;
        Ok(found > 0)
    }

    fn remaining(&self, key: &[u8]) -> Result<Remaining> {
        let (millis, _): (i64, _) =
            self.invoke_checked(&self.scripts.key_ops, &[key], &Args::default().with("ttl"), Call::Remaining, Instant::now())?;
        Ok(match millis {
            -2 => Remaining::Missing,
            millis => remaining_of(millis),
        })
    }

    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool> {
        let args = Args::default().with("expire").with(ttl_arg(expiry));
        let (done, _): (i64, _) = self.invoke_checked(&self.scripts.key_ops, &[key], &args, Call::Expire, Instant::now())?;
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
        let (value,): (i64,) = self.query_pipeline(&pipeline, Call::Increment)?;
        Ok(value)
    }
}
