//! The Redis Cluster backend, on the `redis` crate's async cluster client
//! (slot routing, MOVED/ASK redirects, topology refresh, reconnects).
//!
//! Connections are lanes (`conn::lanes`) as in the standalone backend: each
//! lane is a pair of cluster connections (a socket per node each). A lane
//! whose call ran out of time while sending a large value is dropped with all
//! its sockets, and the next call discovers the Cluster again on a new one.
//!
//! What changes from one server, because a Cluster runs a script or a
//! transaction only on keys of one hash slot:
//! - Tag keys live in other slots than their entries. Reads fetch the entry,
//!   then the tokens of its tag keys (a second request), and compare. Scripts
//!   that must know whether a tagged entry is valid get the tokens from the
//!   caller (`lua/tags.lua`): the first attempt passes none, and a
//!   tagged entry makes it stop, before writing anything, naming the tag keys
//!   to read. Writing a tagged entry reads or creates each tag's token first
//!   (one script per tag, in its slot), then stores the entry. Tokens only
//!   ever change to new random values, so an invalidation racing with any of
//!   this leaves the entry carrying an old token: invalid, the safe direction.
//! - Multi-key calls are split by slot and the parts sent at once: set-many
//!   is atomic per slot, invalidating several tags is one write per tag.
//! - Key listing, clear, session listing and purge scan every primary.
//!
//! Sending again follows the retry table (`conn::retry`). redis-rs's cluster
//! client resends a request after a redirect and after a dropped connection
//! alike, with one `retries` setting for both; with `retries(0)` it returns
//! `MOVED`, `ASK`, `TRYAGAIN` and lost connections to the caller (still
//! refreshing its slot map after a `MOVED`). So each lane holds two cluster
//! connections: one with redis-rs's retries, for calls the table lets be sent
//! again, and one with none, for the others, on which rcache follows
//! redirects itself (`Link::send_once`: `MOVED` to the named node, `ASK` as
//! `ASKING` plus the command on that node, `TRYAGAIN`, `CLUSTERDOWN`,
//! `LOADING`, `READONLY` and refused connections after a short wait) and a
//! lost reply ends the call with an unknown outcome. The reads such a call
//! makes (tag tokens) go through the first connection.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, RedisError, RedisResult, TlsCertificates};

use super::cluster_near::{ClusterNear, Node, NodeAccess, slot_ranges};
use super::conn;
use super::conn::breaker::Breaker;
use super::conn::envelope::{Envelope, KnownTags, Stored, TOKEN_LEN, Tokens, corrupt};
use super::conn::lanes::Lanes;
use super::conn::retry::{Call, not_run, reply_lost};
use super::conn::script::{Args, ScriptTags, TAG_ROUNDS, tokens_tail};
use super::conn::wire::{
    CLEAR_BATCH, TAG_LIMIT, fresh_token, install_tls_provider, listed_sessions, remaining_of, session_record, set_command,
    stored_form, ttl_arg, with_expiry, write_ttl_arg,
};
use super::slots::slot;
use super::{
    Backend, Expiry, ForRefresh, HashFields, InvalidationSink, MAX_TAGS, Remaining, SaveOutcome, SessionRecord, SessionSave,
    TrackedRead, TrackedReads, WriteCondition, WriteExpiry,
};
use crate::error::{Error, ErrorKind, Result};

/// Where and how to reach a Cluster.
pub struct ClusterSettings {
    /// `redis://host:port` or `rediss://host:port[#insecure]` of the nodes to
    /// discover the Cluster from; any one reachable node is enough.
    pub nodes: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A CA and client certificate for TLS, when the URL names them.
    pub certificates: Option<TlsCertificates>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// Where this handle's tag keys live (`<prefix>__rcache_tag:`).
    pub tag_space: Vec<u8>,
}

/// The two cluster connections of a lane.
struct Pair {
    /// redis-rs resends after redirects and dropped connections: for calls that may be sent again.
    resend: ClusterConnection,
    /// redis-rs never resends: rcache follows redirects itself.
    once: ClusterConnection,
}

type Lane = conn::lanes::Lane<Pair>;

/// The two cluster clients a lane connects with.
struct Clients {
    resend: ClusterClient,
    once: ClusterClient,
    /// The timeouts the clients were built with, for lanes opened later.
    config: ClusterConfig,
}

impl Clients {
    /// The first lane, connected now: fails when no node answers in `timeout`.
    fn connect(&self, timeout: Duration, target: &str) -> Result<Lane> {
        Lane::connect(target, timeout, || async {
            let (resend, once) =
                futures_util::future::try_join(self.resend.get_async_connection(), self.once.get_async_connection()).await?;
            Ok(Pair { resend, once })
        })
    }

    /// A lane opened after the first (by concurrent callers, or after one was
    /// dropped): its connections discover the Cluster while its first call
    /// waits, within that call's deadline. Discovery waits up to the connect
    /// timeout for a node that does not answer (twice for a seed: as the
    /// seed, then as a node of the slot map) and goes on without it; if that
    /// runs the first call out of time, the lane stays for the next call,
    /// which does not wait for that node again.
    fn open(&self) -> Result<Lane> {
        let runtime = conn::wire::new_runtime()?;
        // Inside the runtime: each connection starts its task there.
        let connection = runtime.block_on(async {
            Pair {
                resend: self.resend.get_pending_async_connection_with_config(self.config.clone()),
                once: self.once.get_pending_async_connection_with_config(self.config.clone()),
            }
        });
        Ok(Lane { connection, runtime })
    }
}

pub struct ClusterBackend {
    lanes: Lanes<Lane>,
    clients: Clients,
    /// The most one call may take, redirects and retries included.
    call_deadline: Duration,
    breaker: Breaker,
    /// The seed nodes, for error messages; never carries a password.
    target: String,
    scripts: Scripts,
    tag_space: Vec<u8>,
    /// How the near cache reaches each node.
    access: NodeAccess,
    /// The near cache's tracking connections, once `track` started them.
    near: OnceLock<ClusterNear>,
    /// Tag keys of tagged entries read or written lately (see `conn::envelope`).
    known_tags: KnownTags,
}

/// A script and its SHA1, sent as EVALSHA, and as EVAL when a node lacks it
/// (a freshly promoted replica): never `SCRIPT LOAD`, which goes to every node
/// and fails while one is down.
struct Lua {
    code: String,
    hash: String,
}

impl Lua {
    fn new(code: impl Into<String>) -> Lua {
        let code = code.into();
        let hash = redis::Script::new(&code).get_hash().to_string();
        Lua { code, hash }
    }
}

/// Scripts that honour tags get their tokens from the caller (`lua/tags.lua`).
macro_rules! checked {
    ($body:literal) => {
        Lua::new(concat!(
            include_str!("lua/envelope.lua"),
            include_str!("lua/tags.lua"),
            include_str!("lua/tag_cluster.lua"),
            include_str!($body)
        ))
    };
}

struct Scripts {
    read: Lua,
    write: Lua,
    hash: Lua,
    key_ops: Lua,
    ensure_tag: Lua,
    raw: Lua,
    swap: Lua,
    increment: Lua,
    set_many: Lua,
    session: Lua,
    session_purge: Lua,
    session_list: Lua,
    extend_lock: Lua,
    unlock: Lua,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            read: checked!("lua/read.lua"),
            write: checked!("lua/write.lua"),
            hash: checked!("lua/hash.lua"),
            key_ops: checked!("lua/key_ops.lua"),
            ensure_tag: Lua::new(concat!(include_str!("lua/tag.lua"), include_str!("lua/ensure_tag_cluster.lua"))),
            raw: Lua::new(include_str!("lua/raw_cluster.lua")),
            swap: Lua::new(include_str!("lua/swap_cluster.lua")),
            increment: Lua::new(include_str!("lua/increment_cluster.lua")),
            set_many: Lua::new(include_str!("lua/set_many_cluster.lua")),
            session: Lua::new(include_str!("lua/session.lua")),
            session_purge: Lua::new(include_str!("lua/session_purge.lua")),
            session_list: Lua::new(include_str!("lua/session_list.lua")),
            extend_lock: Lua::new(include_str!("lua/extend_lock.lua")),
            unlock: Lua::new(include_str!("lua/unlock.lua")),
        }
    }
}

/// A hash as HGETALL returns it: names and values in turn.
type Flat = Vec<Vec<u8>>;

/// One call's view of the Cluster: its lane's connection handles (cloned
/// for each concurrent request), what the call is, and the scripts.
struct Link<'s> {
    resend: ClusterConnection,
    once: ClusterConnection,
    call: Call,
    /// Set while a request of a call that is never sent again may be on the
    /// server with its reply still to come.
    in_flight: Arc<AtomicBool>,
    scripts: &'s Scripts,
    /// `<prefix>__rcache_tag:`: stored entries naming other tag keys are corrupt.
    tag_space: &'s [u8],
    known_tags: &'s KnownTags,
}

/// Longest wait between two attempts after a reply saying the request did not run.
const MAX_RETRY_WAIT: Duration = Duration::from_millis(250);

/// Values this large may be left half-sent by a call that runs out of time
/// (more than socket buffers take at once): see `ClusterBackend::run_sending`.
const LARGE_REQUEST: usize = 64 * 1024;

impl Link<'_> {
    /// Sends `cmd` as the retry table allows for this call.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        if self.call.resendable() {
            return cmd.query_async(&mut self.resend.clone()).await;
        }
        Ok(T::from_redis_value(self.send_once(cmd).await?)?)
    }

    /// A read made on behalf of any call: sent again as redis-rs sees fit.
    async fn read<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        cmd.query_async(&mut self.resend.clone()).await
    }

    /// Sends `cmd` (keys of one slot) on the connection redis-rs never
    /// resends on, following redirects and waiting out `TRYAGAIN` and the
    /// like, which say it did not run. Any other failure ends the call.
    async fn send_once(&self, cmd: &Cmd) -> RedisResult<redis::Value> {
        let mut connection = self.once.clone();
        let mut redirect: Option<(bool, Node)> = None;
        let mut wait = Duration::from_millis(10);
        loop {
            self.in_flight.store(true, Ordering::Relaxed);
            let result = match &redirect {
                None => cmd.query_async::<redis::Value>(&mut connection).await,
                Some((false, node)) => connection.route_command(cmd.clone(), by_address(node)).await,
                Some((true, node)) => {
                    let mut pipeline = redis::pipe();
                    pipeline.cmd("ASKING").add_command(cmd.clone());
                    let route = SingleNodeRoutingInfo::ByAddress { host: node.0.clone(), port: node.1 };
                    match connection.route_pipeline(pipeline, 1, 1, route).await {
                        Ok(mut values) => values.pop().map_or(Ok(redis::Value::Nil), redis::Value::extract_error),
                        Err(e) => Err(e),
                    }
                }
            };
            // A server error may come back as a value: make it an error.
            match result.and_then(redis::Value::extract_error) {
                Err(e) if not_run(&e) => {
                    self.in_flight.store(false, Ordering::Relaxed);
                    let ask = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Ask);
                    redirect = redirect_target(&e).map(|node| (ask, node));
                    if redirect.is_none() {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_RETRY_WAIT);
                    }
                }
                Err(e) if reply_lost(&e) => return Err(e),
                result => {
                    self.in_flight.store(false, Ordering::Relaxed);
                    return result;
                }
            }
        }
    }

    async fn on_node<T: FromRedisValue>(&self, node: &Node, cmd: Cmd) -> RedisResult<T> {
        let value = self.resend.clone().route_command(cmd, by_address(node)).await?.extract_error()?;
        Ok(T::from_redis_value(value)?)
    }

    /// Runs `script` on the slot of `keys` (all in one slot).
    async fn eval<T: FromRedisValue>(&self, script: &Lua, keys: &[&[u8]], args: &[Vec<u8>]) -> RedisResult<T> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&script.hash).arg(keys.len()).arg(keys).arg(args);
        match self.query(&cmd).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(&script.code).arg(keys.len()).arg(keys).arg(args);
                self.query(&cmd).await
            }
            result => result,
        }
    }

    /// Runs a script that honours tags (`lua/tags.lua`, `conn::script`),
    /// reading the tag tokens it asks for and running it again. Returns its
    /// reply and the tag keys it needed (those of the entries in `keys`).
    async fn eval_checked<T: FromRedisValue>(&self, script: &Lua, keys: &[&[u8]], args: &Args) -> RedisResult<(T, Vec<Vec<u8>>)> {
        let mut tags = ScriptTags::default();
        let mut known: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            let mut full = args.0.clone();
            full.extend(tokens_tail(&known));
            match self.eval::<T>(script, keys, &full).await {
                Err(e) => {
                    if !tags.asked(&e, self.tag_space)? {
                        return Err(e);
                    }
                    let new: Vec<Vec<u8>> =
                        tags.keys.iter().filter(|tag_key| !known.iter().any(|(known, _)| known == *tag_key)).cloned().collect();
                    let tokens = self.tokens(&new).await?;
                    known.extend(new.into_iter().zip(tokens.into_iter().map(Option::unwrap_or_default)));
                }
                Ok(reply) => return Ok((reply, tags.keys)),
            }
        }
    }

    /// The current tokens of `tag_keys` (MGET, split by slot by the client).
    async fn tokens(&self, tag_keys: &[Vec<u8>]) -> RedisResult<Vec<Option<Vec<u8>>>> {
        if tag_keys.is_empty() {
            return Ok(Vec::new());
        }
        self.read(redis::cmd("MGET").arg(tag_keys)).await
    }

    /// The payloads of the values stored at `keys` as rcache reads them:
    /// plain values as they are, tagged ones when every tag still holds its
    /// recorded token. `read`: tokens read with the values; one MGET reads
    /// those of the other tags of all of them.
    async fn payloads(
        &self,
        keys: &[&[u8]],
        stored: Vec<Option<Vec<u8>>>,
        mut read: Tokens,
    ) -> RedisResult<Vec<Option<Vec<u8>>>> {
        let stored = Stored::parse(&stored, self.tag_space)?;
        stored.remember(keys, self.known_tags);
        let missing = stored.missing(&read);
        let tokens = self.tokens(&missing).await?;
        read.extend(missing, tokens);
        Ok(stored.payloads_from(&read))
    }

    /// `read` of the values of `keys`, and at the same time the tokens of the
    /// tag keys known for them: tagged entries whose tags are known cost one
    /// wait instead of two. Their tokens may be read before the values: a
    /// token only ever changes to a new random value, so an entry matching a
    /// token read before it was valid then, and a read that starts after an
    /// invalidation sees only the new token.
    async fn read_with_known_tags<T>(
        &self,
        keys: &[&[u8]],
        read: impl Future<Output = RedisResult<T>>,
    ) -> RedisResult<(T, Tokens)> {
        let tag_keys = self.known_tags.of(keys);
        let (values, tokens) = futures_util::future::try_join(read, self.tokens(&tag_keys)).await?;
        Ok((values, Tokens::new(tag_keys, tokens)))
    }

    /// Reads with `commands` (keys of one slot) in one pipeline. redis-rs
    /// follows no redirect for a pipeline: this follows `MOVED` and `ASK` to
    /// the node named, and waits out `TRYAGAIN` and the like.
    async fn read_pipeline<T: FromRedisValue>(&self, commands: &[Cmd]) -> RedisResult<T> {
        let mut connection = self.resend.clone();
        let mut redirect: Option<(bool, Node)> = None;
        let mut wait = Duration::from_millis(10);
        loop {
            let mut pipeline = redis::pipe();
            if let Some((true, _)) = &redirect {
                pipeline.cmd("ASKING");
            }
            for cmd in commands {
                pipeline.add_command(cmd.clone());
            }
            let result = match &redirect {
                None => pipeline.query_async::<T>(&mut connection).await,
                Some((ask, node)) => {
                    let route = SingleNodeRoutingInfo::ByAddress { host: node.0.clone(), port: node.1 };
                    match connection.route_pipeline(pipeline, usize::from(*ask), commands.len(), route).await {
                        Ok(values) => {
                            let values = values.into_iter().map(redis::Value::extract_error).collect::<RedisResult<Vec<_>>>()?;
                            Ok(T::from_redis_value(redis::Value::Array(values))?)
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match result {
                Err(e) if not_run(&e) => {
                    let ask = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Ask);
                    redirect = redirect_target(&e).map(|node| (ask, node));
                    if redirect.is_none() {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_RETRY_WAIT);
                    }
                }
                result => return result,
            }
        }
    }

    /// The payload at `key` and its PTTL: `GET` and `PTTL` in one pipeline,
    /// then the tokens when the entry is tagged.
    async fn with_ttl(&self, key: &[u8]) -> RedisResult<Option<(Vec<u8>, i64)>> {
        let commands = [redis::cmd("GET").arg(key).clone(), redis::cmd("PTTL").arg(key).clone()];
        let ((stored, millis), read): ((Option<Vec<u8>>, i64), _) =
            self.read_with_known_tags(&[key], self.read_pipeline(&commands)).await?;
        // -2: the key expired between the two commands.
        let stored = stored.filter(|_| millis != -2);
        Ok(self.payloads(&[key], vec![stored], read).await?.pop().flatten().map(|payload| (payload, millis)))
    }

    /// Reads or creates each tag's token, making it outlive an entry of `ttl` ms (0: forever).
    async fn ensure_tags(&self, tag_keys: &[Vec<u8>], ttl: u64) -> RedisResult<Vec<Vec<u8>>> {
        let ensure = tag_keys.iter().map(|tag_key| async move {
            let args = Args::default().with(fresh_token()).with(ttl);
            self.eval::<Vec<u8>>(&self.scripts.ensure_tag, &[tag_key], &args.0).await
        });
        let tokens = try_join_all(ensure).await?;
        match tokens.iter().find(|token| token.len() != TOKEN_LEN) {
            Some(_) => Err(corrupt("a tag key holds a token of the wrong size")),
            None => Ok(tokens),
        }
    }

    /// The primaries serving slots now.
    async fn primaries(&self) -> RedisResult<Vec<Node>> {
        // Asked of a primary the client knows: after a failover a random node
        // may be the dead former primary, which only fails.
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
        let reply = self.resend.clone().route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), route).await?;
        let mut nodes: Vec<Node> = slot_ranges(reply.extract_error()?)?.into_iter().map(|(_, _, node)| node).collect();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    async fn scan_step(&self, node: &Node, cursor: u64, pattern: &[u8]) -> RedisResult<(u64, Vec<Vec<u8>>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(CLEAR_BATCH);
        self.on_node(node, cmd).await
    }

    /// Runs `per_slot` on the keys of each slot at once, in slot groups; the
    /// results in group order.
    async fn per_slot<'k, T, F, Fut>(&self, keys: &'k [Vec<u8>], per_slot: F) -> RedisResult<Vec<T>>
    where
        F: Fn(Vec<&'k [u8]>) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        try_join_all(by_slot(keys.iter().map(Vec::as_slice)).into_iter().map(per_slot)).await
    }
}

/// The node a `MOVED` or `ASK` reply names.
fn redirect_target(error: &RedisError) -> Option<Node> {
    let (address, _) = error.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

fn by_address(node: &Node) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: node.0.clone(), port: node.1 })
}

/// Keys grouped by slot, in order of first appearance.
fn by_slot<'k>(keys: impl Iterator<Item = &'k [u8]>) -> Vec<Vec<&'k [u8]>> {
    let mut groups: Vec<(u16, Vec<&[u8]>)> = Vec::new();
    for key in keys {
        let key_slot = slot(key);
        match groups.iter_mut().find(|(group_slot, _)| *group_slot == key_slot) {
            Some((_, group)) => group.push(key),
            None => groups.push((key_slot, vec![key])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

impl ClusterBackend {
    /// Discovers the Cluster from `settings.nodes` and waits for the first
    /// connection, at most `connect_timeout`.
    pub fn connect(settings: ClusterSettings) -> Result<Self> {
        install_tls_provider();
        let target = format!(
            "cluster {}",
            settings
                .nodes
                .iter()
                .map(|node| node.split("://").nth(1).unwrap_or(node).trim_end_matches("#insecure"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let call_deadline = settings.connect_timeout + settings.response_timeout;
        // A request that timed out is not sent again: its timeout is the call's.
        let build = |retries: u32| {
            let mut builder = ClusterClientBuilder::new(settings.nodes.clone())
                .connection_timeout(settings.connect_timeout)
                .response_timeout(call_deadline)
                .overall_response_timeout(Some(call_deadline))
                .retries(retries)
                .min_retry_wait(10)
                .max_retry_wait(MAX_RETRY_WAIT.as_millis() as u64)
                .retry_wait_formula(10, 2);
            if let Some(username) = &settings.username {
                builder = builder.username(username);
            }
            if let Some(password) = &settings.password {
                builder = builder.password(password);
            }
            if let Some(certificates) = &settings.certificates {
                builder = builder.certs(certificates.clone());
            }
            builder.build().map_err(|e| Error::invalid(format!("invalid Cluster URL: {e}")))
        };
        // Redirects during a resharding and reconnects after a failover are
        // followed quickly; the call deadline bounds the whole.
        let config = ClusterConfig::new().set_connection_timeout(settings.connect_timeout).set_response_timeout(call_deadline);
        let clients = Clients { resend: build(12)?, once: build(0)?, config };
        let first = clients.connect(settings.connect_timeout, &target)?;
        Ok(ClusterBackend {
            lanes: Lanes::new(first),
            clients,
            call_deadline,
            breaker: Breaker::new(settings.breaker_threshold, settings.breaker_cooldown),
            target,
            scripts: Scripts::new(),
            tag_space: settings.tag_space,
            access: NodeAccess {
                seeds: settings.nodes,
                username: settings.username,
                password: settings.password,
                certificates: settings.certificates,
                connect_timeout: settings.connect_timeout,
                response_timeout: settings.response_timeout,
            },
            near: OnceLock::new(),
            known_tags: KnownTags::default(),
        })
    }

    /// Runs one call: `work` gets this call's view of the Cluster; the whole
    /// of it is bounded by the call deadline.
    fn run<'s, T, F, Fut>(&'s self, call: Call, work: F) -> Result<T>
    where
        F: FnOnce(Link<'s>) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_sending(call, Instant::now(), 0, work)
    }

    /// `run` for a call that sends `value_bytes` of values, with the call
    /// deadline counted from `started` (before they were encoded). When such
    /// a call of at least `LARGE_REQUEST` bytes runs out of time, its lane is
    /// dropped with its connections to every node: closing them makes a node
    /// discard a request it received only in part, and no later call waits
    /// behind the rest of it (the next lane waits out a stalled node once,
    /// `Clients::open`). Other calls that run out of time keep their lane: a
    /// smaller request leaves little or nothing unsent.
    fn run_sending<'s, T, F, Fut>(&'s self, call: Call, started: Instant, value_bytes: usize, work: F) -> Result<T>
    where
        F: FnOnce(Link<'s>) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.breaker.admit(&self.target)?;
        let in_flight = Arc::new(AtomicBool::new(false));
        let cut_off = Cell::new(false);
        let open = || self.clients.open();
        let result = self.lanes.with_lane_dropped_if(
            open,
            |lane| {
                let deadline = started + self.call_deadline;
                if Instant::now() >= deadline {
                    return Err(call.expired_before_sending(&self.target, self.call_deadline));
                }
                let link = Link {
                    resend: lane.connection.resend.clone(),
                    once: lane.connection.once.clone(),
                    call,
                    in_flight: in_flight.clone(),
                    scripts: &self.scripts,
                    tag_space: &self.tag_space,
                    known_tags: &self.known_tags,
                };
                let reply = lane.runtime.block_on(async { tokio::time::timeout_at(deadline.into(), work(link)).await });
                let timed_out = reply.as_ref().map_or(true, |result| result.as_ref().is_err_and(RedisError::is_timeout));
                cut_off.set(timed_out && value_bytes >= LARGE_REQUEST);
                reply
                    .map_err(|_| match call.resendable() || in_flight.load(Ordering::Relaxed) {
                        true => call.timed_out(&self.target, self.call_deadline),
                        // A call never sent again whose own request had not left: nothing it was to change ran.
                        false => Error::new(
                            ErrorKind::Timeout,
                            format!("{}: no reply within {} ms", self.target, self.call_deadline.as_millis()),
                        ),
                    })?
                    .map_err(|e| call.failed(&self.target, e))
            },
            |_| cut_off.get(),
        );
        self.breaker.record(&result);
        result
    }

    /// Walks every primary's keys matching `pattern`, one SCAN step per call,
    /// handing each non-empty batch to `visit`. A key that moves between
    /// primaries during the walk may be seen twice or not at all.
    fn scan(&self, pattern: &[u8], mut visit: impl FnMut(Vec<Vec<u8>>) -> Result<()>) -> Result<()> {
        let primaries = self.run(Call::Scan, |link| async move { link.primaries().await })?;
        for node in &primaries {
            let mut cursor = 0;
            loop {
                let (next, keys) = self.run(Call::Scan, |link| async move { link.scan_step(node, cursor, pattern).await })?;
                if !keys.is_empty() {
                    visit(keys)?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }
}

impl Backend for ClusterBackend {
    fn breaker_counts(&self) -> (u64, u64) {
        (self.breaker.trips.load(Ordering::Relaxed), self.breaker.skipped.load(Ordering::Relaxed))
    }

    fn track(&self, sink: Arc<dyn InvalidationSink>) -> Result<()> {
        let near = ClusterNear::start(self.access.clone(), &self.target, sink)?;
        self.near.set(near).map_err(|_| Error::invalid("changes are reported already"))
    }

    fn read_tracked(&self, keys: &[Vec<u8>], read: TrackedRead<'_>) -> Result<Option<TrackedReads>> {
        let Some(near) = self.near.get() else { return Ok(None) };
        self.breaker.admit(&self.target)?;
        let result = near.read(keys, read, &self.tag_space, self.call_deadline);
        self.breaker.record(&result);
        result
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.run(Call::Get, |link| async move {
            let (stored, read) = link.read_with_known_tags(&[key], link.query(redis::cmd("GET").arg(key))).await?;
            Ok(link.payloads(&[key], vec![stored], read).await?.pop().flatten())
        })
    }

    fn get_with_ttl(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Remaining)>> {
        let found = self.run(Call::GetWithTtl, |link| async move { link.with_ttl(key).await })?;
        Ok(found.map(|(value, millis)| (value, remaining_of(millis))))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.run(Call::GetMany, |link| async move {
            // MGET reads keys of another type as nil, as the 'many' read does.
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let (stored, read) = link.read_with_known_tags(&keys, link.query(redis::cmd("MGET").arg(&keys))).await?;
            link.payloads(&keys, stored, read).await
        })
    }

    fn set(&self, key: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<()> {
        let started = Instant::now();
        match expiry {
            WriteExpiry::Set(expiry) => {
                let cmd = &set_command(key, value, expiry);
                self.run_sending(Call::Set, started, value.len(), |link| async move { link.query(cmd).await })
            }
            WriteExpiry::Keep => {
                let args = &Args::default().with("set").with(&*stored_form(value)).with(-1);
                self.run_sending(Call::Set, started, value.len(), |link| async move {
                    link.eval_checked::<i64>(&link.scripts.write, &[key], args).await.map(drop)
                })
            }
        }
    }

    fn compare_and_set(&self, key: &[u8], expected: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<bool> {
        let started = Instant::now();
        let args = &Args::default().with("cas").with(&*stored_form(value)).with(write_ttl_arg(expiry)).with(expected);
        self.run_sending(Call::CompareAndSet, started, value.len(), |link| async move {
            let (stored, _) = link.eval_checked::<i64>(&link.scripts.write, &[key], args).await?;
            Ok(stored > 0)
        })
    }

    /// All or nothing per hash slot: each slot's entries are one script,
    /// the slots' scripts run at once.
    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let values: HashMap<&[u8], &[u8]> = entries.iter().map(|(key, value)| (key.as_slice(), *value)).collect();
        let slots: Vec<(Vec<&[u8]>, Args)> = by_slot(entries.iter().map(|(key, _)| key.as_slice()))
            .into_iter()
            .map(|group| {
                let args =
                    group.iter().fold(Args::default().with(ttl_arg(expiry)), |args, key| args.with(&*stored_form(values[key])));
                (group, args)
            })
            .collect();
        let slots = &slots;
        let value_bytes = entries.iter().map(|(_, value)| value.len()).sum();
        self.run_sending(Call::SetMany, started, value_bytes, |link| async move {
            let link = &link;
            let writes = slots.iter().map(|(group, args)| link.eval::<i64>(&link.scripts.set_many, group, &args.0));
            try_join_all(writes).await.map(drop)
        })
    }

    fn set_tagged(&self, key: &[u8], value: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()> {
        self.run_sending(Call::SetTagged, Instant::now(), value.len(), |link| async move {
            let tokens = link.ensure_tags(tags, ttl_arg(expiry)).await?;
            let records: Vec<(&[u8], &[u8])> = tags.iter().map(Vec::as_slice).zip(tokens.iter().map(Vec::as_slice)).collect();
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(Envelope::build(&[], 0, &records, value));
            with_expiry(&mut cmd, expiry);
            link.query::<()>(&cmd).await
        })?;
        self.known_tags.learn(key, tags.to_vec());
        Ok(())
    }

    fn add_tags(&self, key: &[u8], tags: &[Vec<u8>]) -> Result<bool> {
        self.run(Call::AddTags, |link| async move {
            for _ in 0..TAG_ROUNDS {
                let Some((stored, millis)): Option<(Vec<u8>, i64)> = link.eval(&link.scripts.raw, &[key], &[]).await? else {
                    return Ok(false);
                };
                let envelope = Envelope::parse_in(&stored, link.tag_space)?;
                if link.payloads(&[key], vec![Some(stored.clone())], Tokens::default()).await?.pop().flatten().is_none() {
                    return Ok(false);
                }
                let new: Vec<Vec<u8>> =
                    tags.iter().filter(|tag| !envelope.tags.iter().any(|(present, _)| present == tag)).cloned().collect();
                // The swap below fails if the entry changed since it was
                // read, so this count holds against concurrent calls.
                let count = envelope.tags.len() + new.len();
                if count > MAX_TAGS {
                    return Err(redis::make_extension_error(TAG_LIMIT.to_string(), Some(count.to_string())));
                }
                let tokens = link.ensure_tags(&new, millis.max(0) as u64).await?;
                let records: Vec<(&[u8], &[u8])> = new.iter().map(Vec::as_slice).zip(tokens.iter().map(Vec::as_slice)).collect();
                let updated = Envelope::build(envelope.records, envelope.tags.len(), &records, envelope.payload);
                let swapped: i64 = link.eval(&link.scripts.swap, &[key], &[stored.clone(), updated]).await?;
                if swapped > 0 {
                    return Ok(true);
                }
            }
            Err(corrupt("the entry kept changing while tags were added"))
        })
    }

    /// One write per tag, all sent at once: not atomic across tags, but every
    /// tag is invalidated before this returns.
    fn invalidate_tags(&self, tags: &[Vec<u8>]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        self.run(Call::InvalidateTags, |link| async move {
            let link = &link;
            let writes = tags.iter().map(|tag| async move {
                let cmd = redis::cmd("SET").arg(tag).arg(fresh_token()).arg("XX").arg("KEEPTTL").clone();
                link.query::<Option<String>>(&cmd).await
            });
            try_join_all(writes).await.map(drop)
        })
    }

    fn clear(&self, pattern: &[u8]) -> Result<u64> {
        let mut deleted = 0;
        self.scan(pattern, |keys| {
            // One UNLINK per slot: a call that is never sent again follows redirects per slot.
            let removed: Vec<u64> = self.run(Call::Clear, |link| async move {
                let link = &link;
                link.per_slot(&keys, move |group| async move { link.query(redis::cmd("UNLINK").arg(&group)).await }).await
            })?;
            deleted += removed.iter().sum::<u64>();
            Ok(())
        })?;
        Ok(deleted)
    }

    fn keys(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut found = Vec::new();
        self.scan(pattern, |keys| {
            let live: Vec<Vec<Vec<u8>>> = self.run(Call::Scan, |link| async move {
                let args = Args::default().with("live");
                let (link, args) = (&link, &args);
                link.per_slot(&keys, move |group| async move {
                    Ok(link.eval_checked::<Vec<Vec<u8>>>(&link.scripts.read, &group, args).await?.0)
                })
                .await
            })?;
            found.extend(live.into_iter().flatten());
            Ok(())
        })?;
        Ok(found)
    }

    fn hash_get(&self, key: &[u8]) -> Result<Option<HashFields>> {
        let flat: Option<Vec<Vec<u8>>> = self.run(Call::HashGet, |link| async move {
            Ok(link.eval_checked(&link.scripts.hash, &[key], &Args::default().with("get")).await?.0)
        })?;
        Ok(flat.map(|flat| {
            let mut pairs = flat.into_iter();
            std::iter::from_fn(|| Some((pairs.next()?, pairs.next()?))).collect()
        }))
    }

    fn hash_set(&self, key: &[u8], fields: &[(&[u8], &[u8])], expiry: WriteExpiry, condition: WriteCondition) -> Result<bool> {
        let call = Call::hash_set(condition);
        let condition = condition.script_arg();
        let value_bytes = fields.iter().map(|(_, value)| value.len()).sum();
        self.run_sending(call, Instant::now(), value_bytes, |link| async move {
            let mut args = Args::default().with("set").with(condition).with(write_ttl_arg(expiry));
            for (name, value) in fields {
                args = args.with(*name).with(*value);
            }
            let (written, _) = link.eval_checked::<i64>(&link.scripts.hash, &[key], &args).await?;
            Ok(written > 0)
        })
    }

    /// Every primary's `INFO`, each after a `# Node` section naming it
    /// (`rcache_node:host:port`), then a `# Totals` section: `used_memory` and
    /// `db0` summed over the primaries (so a reader that keeps the last value
    /// of each field sees the Cluster's totals).
    fn server_info(&self) -> Result<Vec<u8>> {
        let infos: Vec<(Node, String)> = self.run(Call::ServerInfo, |link| async move {
            let primaries = link.primaries().await?;
            let infos = try_join_all(primaries.iter().map(|node| link.on_node::<String>(node, redis::cmd("INFO")))).await?;
            Ok(primaries.into_iter().zip(infos).collect())
        })?;
        let mut text = String::new();
        let (mut memory, mut keys, mut expires) = (0u64, 0u64, 0u64);
        for ((host, port), info) in &infos {
            text.push_str(&format!("# Node\r\nrcache_node:{host}:{port}\r\n\r\n"));
            text.push_str(info.trim_end_matches("\r\n"));
            text.push_str("\r\n\r\n");
            for line in info.split("\r\n") {
                if let Some(bytes) = line.strip_prefix("used_memory:") {
                    memory += bytes.parse::<u64>().unwrap_or(0);
                } else if let Some(counts) = line.strip_prefix("db0:") {
                    for field in counts.split(',') {
                        match field.split_once('=') {
                            Some(("keys", n)) => keys += n.parse::<u64>().unwrap_or(0),
                            Some(("expires", n)) => expires += n.parse::<u64>().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
            }
        }
        text.push_str(&format!(
            "# Totals\r\nrcache_backend:cluster\r\ncluster_primaries:{}\r\nused_memory:{memory}\r\ndb0:keys={keys},expires={expires},avg_ttl=0\r\n",
            infos.len()
        ));
        Ok(text.into_bytes())
    }

    /// The entry as `get_with_ttl` reads it, then its metadata (another
    /// request: the two keys may sit in different slots).
    fn get_for_refresh(&self, key: &[u8], meta_key: &[u8]) -> Result<Option<ForRefresh>> {
        let found = self.run(Call::GetForRefresh, |link| async move {
            let Some((value, millis)) = link.with_ttl(key).await? else { return Ok(None) };
            // MGET: a key of another type reads as none.
            let mut meta: Vec<Option<Vec<u8>>> = link.read(redis::cmd("MGET").arg(meta_key)).await?;
            Ok(Some((value, meta.pop().flatten(), millis)))
        })?;
        Ok(found.map(|(value, meta, millis)| (value, meta, remaining_of(millis))))
    }

    fn lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let millis = lease.as_millis().max(1) as u64;
        let reply: Option<String> = self.run(Call::Lock, |link| async move {
            link.query(redis::cmd("SET").arg(key).arg(owner).arg("NX").arg("PX").arg(millis)).await
        })?;
        Ok(reply.is_some())
    }

    fn extend_lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        let millis = lease.as_millis().max(1) as u64;
        let extended: i64 = self.run(Call::ExtendLock, |link| async move {
            link.eval(&link.scripts.extend_lock, &[key], &Args::default().with(owner).with(millis).0).await
        })?;
        Ok(extended > 0)
    }

    fn unlock(&self, key: &[u8], owner: &[u8]) -> Result<bool> {
        let released: i64 = self.run(Call::Unlock, |link| async move {
            link.eval(&link.scripts.unlock, &[key], &Args::default().with(owner).0).await
        })?;
        Ok(released > 0)
    }

    fn session_create(&self, key: &[u8], secret: &[u8], fields: &[(&[u8], &[u8])], expiry: Expiry, now_ms: u64) -> Result<bool> {
        let mut args = Args::default().with("create").with(secret).with(now_ms).with(ttl_arg(expiry));
        for (name, value) in fields {
            args = args.with(*name).with(*value);
        }
        let created: i64 =
            self.run(Call::SessionCreate, |link| async move { link.eval(&link.scripts.session, &[key], &args.0).await })?;
        Ok(created > 0)
    }

    fn session_load(&self, key: &[u8], secret: &[u8], touch: Option<Expiry>, now_ms: u64) -> Result<Option<SessionRecord>> {
        let slide: i64 = touch.map_or(-1, |expiry| ttl_arg(expiry) as i64);
        let args = Args::default().with("load").with(secret).with(now_ms).with(slide);
        let flat: Option<Vec<Vec<u8>>> =
            self.run(Call::SessionLoad, |link| async move { link.eval(&link.scripts.session, &[key], &args.0).await })?;
        Ok(flat.filter(|flat| !flat.is_empty()).map(session_record))
    }

    fn session_save(&self, save: SessionSave<'_>) -> Result<SaveOutcome> {
        let SessionSave { key, secret, expected, set, delete, expiry, now_ms } = save;
        let mut args = Args::default()
            .with("save")
            .with(secret)
            .with(now_ms)
            .with(expected.unwrap_or(0))
            .with(ttl_arg(expiry))
            .with(delete.len());
        for name in delete {
            args = args.with(*name);
        }
        for (name, value) in set {
            args = args.with(*name).with(*value);
        }
        let outcome: Option<(String, u64)> =
            self.run(Call::SessionSave, |link| async move { link.eval(&link.scripts.session, &[key], &args.0).await })?;
        Ok(match outcome {
            None => SaveOutcome::Missing,
            Some((kind, version)) if kind == "conflict" => SaveOutcome::Conflict(version),
            Some((_, version)) => SaveOutcome::Saved(version),
        })
    }

    fn session_touch(&self, key: &[u8], secret: &[u8], expiry: Expiry, now_ms: u64) -> Result<bool> {
        let args = Args::default().with("touch").with(secret).with(now_ms).with(ttl_arg(expiry));
        let touched: Option<i64> =
            self.run(Call::SessionTouch, |link| async move { link.eval(&link.scripts.session, &[key], &args.0).await })?;
        Ok(touched.is_some())
    }

    fn session_destroy(&self, key: &[u8], secret: &[u8]) -> Result<bool> {
        let args = Args::default().with("destroy").with(secret).with(0);
        let destroyed: Option<i64> =
            self.run(Call::SessionDestroy, |link| async move { link.eval(&link.scripts.session, &[key], &args.0).await })?;
        Ok(destroyed.is_some())
    }

    fn session_list(&self, pattern: &[u8]) -> Result<Vec<(Vec<u8>, SessionRecord)>> {
        let mut sessions = Vec::new();
        self.scan(pattern, |keys| {
            let keys = &keys;
            let groups: Vec<(Vec<&[u8]>, Vec<Flat>)> = self.run(Call::SessionList, |link| async move {
                let link = &link;
                try_join_all(by_slot(keys.iter().map(Vec::as_slice)).into_iter().map(|group| async move {
                    let hashes = link.eval(&link.scripts.session_list, &group, &[]).await?;
                    Ok::<_, RedisError>((group, hashes))
                }))
                .await
            })?;
            for (group, hashes) in groups {
                sessions.extend(listed_sessions(group, hashes));
            }
            Ok(())
        })?;
        Ok(sessions)
    }

    fn session_purge(&self, pattern: &[u8], idle_since_ms: u64) -> Result<u64> {
        let mut purged = 0;
        self.scan(pattern, |keys| {
            let counts: Vec<u64> = self.run(Call::SessionPurge, |link| async move {
                let args = Args::default().with(idle_since_ms);
                let (link, args) = (&link, &args);
                link.per_slot(
                    &keys,
                    move |group| async move { link.eval::<u64>(&link.scripts.session_purge, &group, &args.0).await },
                )
                .await
            })?;
            purged += counts.iter().sum::<u64>();
            Ok(())
        })?;
        Ok(purged)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let deleted: i64 = self.run(Call::Delete, |link| async move {
            Ok(link.eval_checked(&link.scripts.key_ops, &[key], &Args::default().with("delete")).await?.0)
        })?;
        Ok(deleted > 0)
    }

    fn exists(&self, key: &[u8]) -> Result<bool> {
        let found: u64 = self.run(Call::Exists, |link| async move {
            Ok(link.eval_checked(&link.scripts.read, &[key], &Args::default().with("exists")).await?.0)
        })?;
        Ok(found > 0)
    }

    fn remaining(&self, key: &[u8]) -> Result<Remaining> {
        let millis: i64 = self.run(Call::Remaining, |link| async move {
            Ok(link.eval_checked(&link.scripts.key_ops, &[key], &Args::default().with("ttl")).await?.0)
        })?;
        Ok(match millis {
            -2 => Remaining::Missing,
            millis => remaining_of(millis),
        })
    }

    /// Then extends the entry's tags to outlive it (a second step, in their
    /// slots: until it lands, a tag that expires first only makes the entry a miss).
    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool> {
        self.run(Call::Expire, |link| async move {
            let args = Args::default().with("expire").with(ttl_arg(expiry));
            let (done, tag_keys) = link.eval_checked::<i64>(&link.scripts.key_ops, &[key], &args).await?;
            if done > 0 {
                link.ensure_tags(&tag_keys, ttl_arg(expiry)).await?;
            }
            Ok(done > 0)
        })
    }

    fn increment(&self, key: &[u8], delta: i64, expiry_if_new: Expiry) -> Result<i64> {
        let args = Args::default().with(delta).with(ttl_arg(expiry_if_new));
        self.run(Call::Increment, |link| async move { link.eval(&link.scripts.increment, &[key], &args.0).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_by_slot_in_order() {
        let groups = by_slot([&b"{a}1"[..], b"b", b"{a}2"].into_iter());
        assert_eq!(groups, vec![vec![&b"{a}1"[..], b"{a}2"], vec![&b"b"[..]]]);
    }
}
