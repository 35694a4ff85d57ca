//! The near cache on a Cluster: a tracking connection (`tracking::Tracker`)
//! per primary, each behind a `Gate` of its own, and a thread that follows
//! the slot map.
//!
//! A near-cache read of key K is made on the tracking connection of the
//! primary that serves K's slot in the slot map held, after the engine took
//! its ticket; so is the read of each tag token a tagged entry records (a
//! tagged value is filled only when every token still matches, and depends
//! on its tag keys, whose changes their own primaries report). Every node's
//! reports reach the same near cache, so a fill races no report on any node.
//!
//! Everything is dropped when the reports may not cover what is held:
//! - a tracking connection breaks (the tracker says `disconnected`);
//! - a read finds its key elsewhere (`MOVED`, `ASK`) or its connection broken;
//! - the slot map changes (polled every `TOPOLOGY_INTERVAL`, and at once after
//!   a redirect): trackers of nodes that no longer serve slots are closed,
//!   new primaries get one, then the near cache is emptied.
//!
//! A key moved by `MIGRATE` is deleted on its old node, which reports it, so
//! a migrating slot ends its copies as its keys leave. A primary demoted by a
//! manual failover keeps its connections: the slot map poll notices within
//! `TOPOLOGY_INTERVAL`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use parking_lot::RwLock;
use redis::aio::MultiplexedConnection;
use redis::{Client, FromRedisValue, IntoConnectionInfo, RedisResult, TlsCertificates, Value};

use super::conn::envelope::Envelope;
use super::conn::wire::connection_dropped;
use super::slots::slot;
use super::tracking::{Gate, Tracker, TrackerSettings, broadcast_barrier};
use super::{InvalidationSink, TrackedRead, TrackedReads, TrackedValue};
use crate::error::{Error, ErrorKind, Result};

/// A primary: host and port as `CLUSTER SLOTS` names it.
pub(super) type Node = (String, u16);

/// Longest time between two looks at the slot map.
const TOPOLOGY_INTERVAL: Duration = Duration::from_millis(500);
/// How often the thread looks at its stop and stale flags.
const TICK: Duration = Duration::from_millis(20);

/// How to reach the Cluster's nodes.
#[derive(Clone)]
pub(super) struct NodeAccess {
    /// The URLs the client was given, to ask for the slot map when no known primary answers.
    pub seeds: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub certificates: Option<TlsCertificates>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl NodeAccess {
    /// A client for a node the slot map names, with the seeds' scheme and TLS mode.
    fn client(&self, (host, port): &Node) -> RedisResult<Client> {
        let seed = self.seeds.first().map_or("redis://", String::as_str);
        let scheme = seed.split("://").next().unwrap_or("redis");
        let fragment = if seed.ends_with("#insecure") { "#insecure" } else { "" };
        let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        self.login(format!("{scheme}://{host}:{port}{fragment}"))
    }

    fn login(&self, url: String) -> RedisResult<Client> {
        let info = url.as_str().into_connection_info()?;
        let mut login = info.redis_settings().clone();
        if let Some(username) = &self.username {
            login = login.set_username(username);
        }
        if let Some(password) = &self.password {
            login = login.set_password(password);
        }
        let info = info.set_redis_settings(login);
        match &self.certificates {
            Some(certificates) => Client::build_with_tls(info, certificates.clone()),
            None => Client::open(info),
        }
    }
}

/// The slot ranges of a `CLUSTER SLOTS` reply and the primary serving each.
pub(super) fn slot_ranges(reply: Value) -> RedisResult<Vec<(u16, u16, Node)>> {
    let mut ranges = Vec::new();
    for range in Vec::<Vec<Value>>::from_redis_value(reply)? {
        // [start, end, [host, port, id, …], replicas…]
        let mut fields = range.into_iter();
        let (Some(start), Some(end), Some(primary)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let mut primary = Vec::<Value>::from_redis_value(primary)?.into_iter();
        let (Some(host), Some(port)) = (primary.next(), primary.next()) else { continue };
        let node = (String::from_redis_value(host)?, u16::from_redis_value(port)?);
        ranges.push((u16::from_redis_value(start)?, u16::from_redis_value(end)?, node));
    }
    ranges.sort();
    Ok(ranges)
}

/// A primary's tracking connection and the gate in front of the near cache.
struct Watched {
    tracker: Tracker,
    gate: Arc<Gate>,
}

/// The slot map held, with a tracker per primary it names.
#[derive(Default)]
struct Topology {
    ranges: Vec<(u16, u16, Node)>,
    trackers: HashMap<Node, Arc<Watched>>,
}

impl Topology {
    /// The tracking connection of the primary serving `key`, while its reports flow.
    fn connection(&self, key: &[u8]) -> Option<MultiplexedConnection> {
        let slot = slot(key);
        let (_, _, node) = self.ranges.iter().find(|(start, end, _)| (*start..=*end).contains(&slot))?;
        let watched = self.trackers.get(node)?;
        if !watched.gate.is_open() {
            return None;
        }
        watched.tracker.connection()
    }
}

struct Shared {
    sink: Arc<dyn InvalidationSink>,
    access: NodeAccess,
    topology: RwLock<Arc<Topology>>,
    /// A read saw the slot map out of date: look again now.
    stale: Arc<AtomicBool>,
    /// "cluster h:p,…", for error messages.
    target: String,
}

/// The near cache's side of a Cluster backend; stops its thread when dropped.
pub(super) struct ClusterNear {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ClusterNear {
    /// Reads the slot map, starts a tracker per primary, then the thread that follows the map.
    pub fn start(access: NodeAccess, target: &str, sink: Arc<dyn InvalidationSink>) -> Result<ClusterNear> {
        let shared = Arc::new(Shared {
            sink,
            access,
            topology: RwLock::new(Arc::default()),
            stale: Arc::new(AtomicBool::new(false)),
            target: target.to_string(),
        });
        let ranges = shared.slot_map().map_err(|e| Error::new(ErrorKind::Connection, format!("{target}: {e}")))?;
        shared.follow(ranges)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("rcache-near-slots".into())
                .spawn(move || shared.watch(&stop))
                .map_err(|e| Error::new(ErrorKind::Connection, format!("cannot start the near cache's thread: {e}")))?
        };
        Ok(ClusterNear { shared, stop, thread: Some(thread) })
    }

    /// `Backend::read_tracked` on a Cluster (see the module documentation);
    /// `None` when a key's primary has no tracking connection up, or the
    /// read failed in a way an untracked read reports better.
    pub fn read(
        &self,
        keys: &[Vec<u8>],
        read: TrackedRead<'_>,
        tag_space: &[u8],
        deadline: Duration,
    ) -> Result<Option<TrackedReads>> {
        let topology = Arc::clone(&self.shared.topology.read());
        let Some(driver) = topology.trackers.values().next() else { return Ok(None) };
        let Some(connections) = keys.iter().map(|key| topology.connection(key)).collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let meta = match read {
            TrackedRead::Refresh(meta_key) => match topology.connection(meta_key) {
                Some(connection) => Some((meta_key, connection)),
                None => return Ok(None),
            },
            TrackedRead::One | TrackedRead::Many => None,
        };
        let reading = async {
            let stored = try_join_all(keys.iter().zip(connections).map(|(key, mut connection)| async move {
                let mut pipeline = redis::pipe();
                pipeline.cmd("GET").arg(key).cmd("PTTL").arg(key);
                pipeline.query_async::<(Option<Vec<u8>>, i64)>(&mut connection).await
            }));
            let meta = async {
                match meta {
                    // MGET: a key of another type reads as none.
                    Some((meta_key, mut connection)) => {
                        let mut found: Vec<Option<Vec<u8>>> =
                            redis::cmd("MGET").arg(meta_key).query_async(&mut connection).await?;
                        Ok(found.pop().flatten())
                    }
                    None => Ok(None),
                }
            };
            let (stored, meta) = futures_util::future::try_join(stored, meta).await?;
            let values = read_tags(&topology, stored, tag_space).await?;
            if self.shared.sink.broadcast_prefix().is_some() {
                // See `broadcast_barrier`: every primary read from may report late.
                let connections = topology.trackers.values().filter_map(|watched| watched.tracker.connection());
                try_join_all(connections.map(|mut connection| async move { broadcast_barrier(&mut connection).await })).await?;
            }
            Ok::<_, redis::RedisError>(values.map(|values| TrackedReads { values, meta }))
        };
        let reply = driver.tracker.block_on(async { tokio::time::timeout(deadline, reading).await });
        match reply {
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("{}: no reply within {} ms", self.shared.target, deadline.as_millis()),
            )),
            Ok(Ok(reads)) => Ok(reads),
            Ok(Err(error)) => {
                // Reports may have been lost with the connection, or the key
                // lives elsewhere now: drop everything, look at the map again.
                if error.redirect_node().is_some() || connection_dropped(&error) {
                    self.shared.sink.invalidate_all();
                    self.shared.stale.store(true, Ordering::Relaxed);
                }
                Ok(None)
            }
        }
    }
}

/// The values of `stored` ((stored string, PTTL) per key), tagged ones
/// checked against their tags' tokens, read on the tag keys' own tracking
/// connections; `None` when one of those is not up.
async fn read_tags(
    topology: &Topology,
    stored: Vec<(Option<Vec<u8>>, i64)>,
    tag_space: &[u8],
) -> RedisResult<Option<Vec<Option<TrackedValue>>>> {
    // -2: the key expired between the two commands.
    let stored: Vec<Option<(Vec<u8>, i64)>> =
        stored.into_iter().map(|(value, pttl)| value.filter(|_| pttl != -2).map(|value| (value, pttl))).collect();
    let envelopes = stored
        .iter()
        .map(|found| found.as_ref().map(|(value, pttl)| Ok((Envelope::parse_in(value, tag_space)?, *pttl))).transpose())
        .collect::<RedisResult<Vec<_>>>()?;
    let mut tag_keys: Vec<&[u8]> = Vec::new();
    for (envelope, _) in envelopes.iter().flatten() {
        for (tag_key, _) in &envelope.tags {
            if !tag_keys.contains(tag_key) {
                tag_keys.push(tag_key);
            }
        }
    }
    let Some(connections) = tag_keys.iter().map(|tag_key| topology.connection(tag_key)).collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let tokens: Vec<Option<Vec<u8>>> =
        try_join_all(tag_keys.iter().zip(connections).map(|(tag_key, mut connection)| async move {
            redis::cmd("GET").arg(*tag_key).query_async::<Option<Vec<u8>>>(&mut connection).await
        }))
        .await?;
    let current: HashMap<&[u8], Option<&[u8]>> = tag_keys.iter().copied().zip(tokens.iter().map(Option::as_deref)).collect();
    let values = envelopes
        .into_iter()
        .map(|found| {
            let (envelope, pttl) = found?;
            let valid = envelope.tags.iter().all(|(tag_key, token)| current.get(tag_key).copied().flatten() == Some(*token));
            valid.then(|| TrackedValue {
                value: envelope.payload.to_vec(),
                ttl: u64::try_from(pttl).ok().map(Duration::from_millis),
                tags: envelope.tags.iter().map(|(tag_key, _)| tag_key.to_vec()).collect(),
                tracked: true,
            })
        })
        .collect();
    Ok(Some(values))
}

impl Shared {
    /// The slot map, asked of a primary held, else of a seed node.
    fn slot_map(&self) -> RedisResult<Vec<(u16, u16, Node)>> {
        let known: Vec<Node> = self.topology.read().trackers.keys().cloned().collect();
        let clients = known
            .iter()
            .map(|node| self.access.client(node))
            .chain(self.access.seeds.iter().map(|seed| self.access.login(seed.clone())));
        let mut last = None;
        for client in clients {
            let asked = client.and_then(|client| {
                let mut connection = client.get_connection_with_timeout(self.access.connect_timeout)?;
                connection.set_read_timeout(Some(self.access.response_timeout))?;
                slot_ranges(redis::cmd("CLUSTER").arg("SLOTS").query(&mut connection)?)
            });
            match asked {
                Ok(ranges) if !ranges.is_empty() => return Ok(ranges),
                Ok(_) => {}
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no node serves slots"))))
    }

    /// Makes `ranges` the slot map held: trackers for new primaries, those of
    /// nodes gone closed, and the near cache emptied, in that order.
    fn follow(&self, ranges: Vec<(u16, u16, Node)>) -> Result<()> {
        let current = Arc::clone(&self.topology.read());
        if current.ranges == ranges {
            return Ok(());
        }
        let mut trackers = HashMap::new();
        for (_, _, node) in &ranges {
            if trackers.contains_key(node) {
                continue;
            }
            let watched = match current.trackers.get(node) {
                Some(watched) => Arc::clone(watched),
                None => Arc::new(self.track(node)?),
            };
            trackers.insert(node.clone(), watched);
        }
        for (node, watched) in &current.trackers {
            if !trackers.contains_key(node) {
                watched.gate.close();
            }
        }
        if !current.ranges.is_empty() {
            self.sink.invalidate_all();
        }
        *self.topology.write() = Arc::new(Topology { ranges, trackers });
        Ok(())
    }

    fn track(&self, node: &Node) -> Result<Watched> {
        let client =
            self.access.client(node).map_err(|e| Error::invalid(format!("invalid Cluster node {}:{}: {e}", node.0, node.1)))?;
        let gate = Gate::new(Arc::clone(&self.sink));
        let settings = TrackerSettings {
            client: &client,
            connect_timeout: self.access.connect_timeout,
            response_timeout: self.access.response_timeout,
            target: &format!("{}:{}", node.0, node.1),
            primary_only: Some(Arc::clone(&self.stale)),
        };
        let tracker = Tracker::start(settings, gate.clone())?;
        Ok(Watched { tracker, gate })
    }

    /// The thread's work: follow the slot map until stopped.
    fn watch(&self, stop: &AtomicBool) {
        let mut looked = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            if looked.elapsed() < TOPOLOGY_INTERVAL && !self.stale.load(Ordering::Relaxed) {
                continue;
            }
            looked = Instant::now();
            self.stale.store(false, Ordering::Relaxed);
            if let Ok(ranges) = self.slot_map() {
                // A primary that refuses tracking is tried again on the next look;
                // meanwhile its keys are read from the server.
                let _ = self.follow(ranges);
            }
            // Fills may resume once any tracking connection is up: a read
            // goes only to a connection that is (see `Topology::connection`).
            let topology = Arc::clone(&self.topology.read());
            if topology.trackers.values().any(|watched| watched.tracker.connection().is_some()) {
                self.sink.connected();
            }
        }
    }
}

impl Drop for ClusterNear {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
