//! The Redis side of the near cache: one connection per client, kept by a
//! thread of its own, speaking RESP3 with `CLIENT TRACKING ON`.
//!
//! Near-cache reads are sent over this connection (never over the pooled connections), so
//! the server tracks exactly the keys they read and reports their changes as
//! push messages on the same connection, in order with the replies. For a
//! script, Redis 7.0 tracks the keys it declares in KEYS (once it runs a read
//! command), later versions the keys its commands read: `read_tracked`
//! declares every key a value depends on (see `lua/read.lua`). Losing the
//! connection loses the tracking and the reports together: the thread then
//! tells the sink `disconnected` before anything else happens on a new
//! connection.
//!
//! The thread pings the connection every `HEARTBEAT`; an unanswered ping
//! counts as a lost connection, so a silent network failure stops near hits
//! within `HEARTBEAT` plus the response timeout, or within the sink's
//! `max_staleness` (half of it between pings, half for the answer).
//!
//! A sink that asks for broadcast reports gets `CLIENT TRACKING ON BCAST
//! PREFIX <prefix>`: every change under the prefix is reported, read or not.
//!
//! Backends that replace the server they track (Sentinel after a failover)
//! give each tracker a `Gate` in front of the near cache: closing it before
//! the near cache is flushed guarantees that nothing the old server reports
//! (including "connected" after a reconnect) reaches the near cache afterwards.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::InvalidationSink;
use super::conn::wire::{convert_error, new_runtime};
use crate::error::{Error, ErrorKind, Result};

/// The tracking connection's name in `CLIENT LIST`.
const TRACKING_NAME: &str = "rcache-near";
/// Interval between two pings of an idle tracking connection.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Pause before reconnecting, doubling after each failure up to the longest.
const FIRST_RETRY: Duration = Duration::from_millis(20);
const LONGEST_RETRY: Duration = Duration::from_secs(1);

enum Event {
    /// The connection of this generation broke.
    Lost(u64),
    Stop,
}

/// The tracking connection's thread; stopped and joined when dropped.
pub(super) struct Tracker {
    runtime: tokio::runtime::Handle,
    /// The connection while reports flow.
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
    events: UnboundedSender<Event>,
    thread: Option<JoinHandle<()>>,
    sink: Arc<dyn InvalidationSink>,
}

/// How the tracking connection is made.
pub(super) struct TrackerSettings<'a> {
    /// The server, as for the backend's other connections (RESP3 is added).
    pub client: &'a Client,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// The server, for error messages.
    pub target: &'a str,
    /// When set, only a primary is tracked: a server answering `ROLE` as
    /// anything else is treated as unreachable, and this flag is raised so
    /// that the owner looks for the primary again.
    pub primary_only: Option<Arc<AtomicBool>>,
}

struct Settings {
    client: Client,
    connect_timeout: Duration,
    response_timeout: Duration,
    target: String,
    /// Pause between two pings, and how long a ping may take.
    heartbeat: Duration,
    ping_timeout: Duration,
    /// `BCAST PREFIX` this, when the sink asks for broadcast reports.
    broadcast: Option<Vec<u8>>,
    primary_only: Option<Arc<AtomicBool>>,
}

impl Tracker {
    /// Starts the thread and waits for its first connection. Fails when the
    /// server refuses RESP3 or tracking; when it cannot be reached, keeps
    /// trying in the background (near reads wait for it, plain reads go on).
    pub fn start(tracker: TrackerSettings<'_>, sink: Arc<dyn InvalidationSink>) -> Result<Tracker> {
        let TrackerSettings { client, connect_timeout, response_timeout, target, primary_only } = tracker;
        let info = client.get_connection_info().clone();
        let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client =
            Client::open(info.set_redis_settings(resp3)).map_err(|e| Error::invalid(format!("invalid Redis URL: {e}")))?;
        // A silent connection is noticed at most a heartbeat plus a ping timeout after it fell silent.
        let (heartbeat, ping_timeout) = match sink.max_staleness() {
            Some(bound) => (bound / 2, bound - bound / 2),
            None => (HEARTBEAT, response_timeout),
        };
        let broadcast = sink.broadcast_prefix().map(<[u8]>::to_vec);
        let settings = Settings {
            client,
            connect_timeout,
            response_timeout,
            target: target.to_string(),
            heartbeat,
            ping_timeout,
            broadcast,
            primary_only,
        };
        let runtime = new_runtime()?;
        let handle = runtime.handle().clone();
        let connection = Arc::new(Mutex::new(None));
        let (events, receiver) = unbounded_channel();
        let (first_tx, first) = std::sync::mpsc::channel();
        let thread = {
            let (connection, events, sink) = (connection.clone(), events.clone(), sink.clone());
            std::thread::Builder::new()
                .name("rcache-near".into())
                .spawn(move || {
                    // However the thread ends, near reads stop using its connection.
                    let _ended = Ended(connection.clone(), sink.clone());
                    runtime.block_on(keep(settings, sink, connection, events, receiver, first_tx))
                })
                .map_err(|e| Error::new(ErrorKind::Connection, format!("cannot start the near cache's thread: {e}")))?
        };
        let tracker = Tracker { runtime: handle, connection, events, thread: Some(thread), sink };
        match first.recv_timeout(connect_timeout + response_timeout + Duration::from_millis(100)) {
            Ok(Err(error)) if !matches!(error.kind, ErrorKind::Connection | ErrorKind::Timeout) => Err(Error::new(
                error.kind,
                format!("the near cache needs Redis 6 or later with CLIENT TRACKING allowed: {}", error.message),
            )),
            _ => Ok(tracker),
        }
    }

    /// True when every change under the key prefix is reported, read or not.
    pub fn broadcast(&self) -> bool {
        self.sink.broadcast_prefix().is_some()
    }

    /// The tracking connection, while reports flow.
    pub fn connection(&self) -> Option<MultiplexedConnection> {
        self.connection.lock().clone()
    }

    /// A read on the tracking connection found it broken: reports may have
    /// been lost before the thread notices, so everything is dropped now.
    pub fn broken(&self) {
        self.sink.invalidate_all();
    }

    /// Runs `work` on the calling thread; the tracker's thread drives its I/O and timers.
    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Withdraws the connection and tells the sink when the thread ends.
struct Ended(Arc<Mutex<Option<MultiplexedConnection>>>, Arc<dyn InvalidationSink>);

impl Drop for Ended {
    fn drop(&mut self) {
        if self.0.lock().take().is_some() {
            self.1.disconnected();
        }
    }
}

/// The thread's work: connect, watch, report, reconnect, until stopped.
async fn keep(
    settings: Settings,
    sink: Arc<dyn InvalidationSink>,
    shared: Arc<Mutex<Option<MultiplexedConnection>>>,
    events: UnboundedSender<Event>,
    mut receiver: UnboundedReceiver<Event>,
    first: std::sync::mpsc::Sender<Result<()>>,
) {
    let mut first = Some(first);
    let mut retry = FIRST_RETRY;
    for generation in 0u64.. {
        let connecting = connect(&settings, &sink, &events, generation);
        let connected = match until_event(&mut receiver, connecting).await {
            Err(Some(Event::Lost(_))) => continue,
            Err(_) => return,
            Ok(connected) => connected,
        };
        let outcome = match connected {
            Ok(connection) => {
                retry = FIRST_RETRY;
                *shared.lock() = Some(connection.clone());
                sink.connected();
                Ok(connection)
            }
            Err(error) => Err(error),
        };
        // Connect returns once near reads can be tracked, or the first attempt failed.
        if let Some(first) = first.take() {
            let _ = first.send(outcome.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        if let Ok(connection) = outcome {
            let stopped = watch(&settings, connection, generation, &mut receiver).await;
            *shared.lock() = None;
            sink.disconnected();
            if stopped {
                return;
            }
        }
        match until_event(&mut receiver, tokio::time::sleep(retry)).await {
            Ok(()) | Err(Some(Event::Lost(_))) => {}
            Err(_) => return,
        }
        retry = (retry * 2).min(LONGEST_RETRY);
    }
}

/// In broadcast mode the server reports the writes of one pass of its event
/// loop only at the end of that pass, after the replies of the commands it
/// ran in the same pass: a read's reply can arrive before the report of a
/// write that ran before the read. A round trip started after that reply is
/// answered in a later pass, so once it returns every such report has been
/// handed to the near cache, and a fill made then sees it.
pub(super) async fn broadcast_barrier(connection: &mut MultiplexedConnection) -> redis::RedisResult<()> {
    redis::cmd("PING").query_async::<()>(connection).await
}

/// A new tracking connection whose push messages go to `sink`.
async fn connect(
    settings: &Settings,
    sink: &Arc<dyn InvalidationSink>,
    events: &UnboundedSender<Event>,
    generation: u64,
) -> Result<MultiplexedConnection> {
    let (sink, events) = (sink.clone(), events.clone());
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.response_timeout))
        .set_push_sender(move |push: PushInfo| {
            report(&*sink, &events, generation, push);
            Ok::<(), ()>(())
        });
    let connecting = async {
        let mut connection = settings.client.get_multiplexed_async_connection_with_config(&config).await?;
        if let Some(primary_only) = &settings.primary_only {
            // A demoted primary's clients are closed as it is demoted (Sentinel
            // does so): a connection that finds a primary here stays on one.
            if !matches!(redis::cmd("ROLE").query_async::<redis::Role>(&mut connection).await?, redis::Role::Primary { .. }) {
                primary_only.store(true, Ordering::Relaxed);
                return Ok(None);
            }
        }
        let mut tracking = redis::cmd("CLIENT");
        tracking.arg("TRACKING").arg("ON");
        match settings.broadcast.as_deref() {
            Some([]) => tracking.arg("BCAST"),
            Some(prefix) => tracking.arg("BCAST").arg("PREFIX").arg(prefix),
            None => &mut tracking,
        };
        tracking.query_async::<()>(&mut connection).await?;
        // Only to recognise the connection in CLIENT LIST; not worth failing for.
        let _ = redis::cmd("CLIENT").arg("SETNAME").arg(TRACKING_NAME).query_async::<()>(&mut connection).await;
        Ok(Some(connection))
    };
    tokio::time::timeout(settings.connect_timeout + settings.response_timeout, connecting)
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, format!("{}: no tracking connection in time", settings.target)))?
        .map_err(|e| convert_error(&settings.target, e))?
        .ok_or_else(|| Error::new(ErrorKind::Connection, format!("{}: not a primary; not tracked", settings.target)))
}

/// Hands a push message to the sink; runs on the connection's reader.
fn report(sink: &dyn InvalidationSink, events: &UnboundedSender<Event>, generation: u64, push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => match push.data.into_iter().next() {
            Some(Value::Array(keys)) => {
                let keys: Vec<Vec<u8>> = keys
                    .into_iter()
                    .filter_map(|key| match key {
                        Value::BulkString(key) => Some(key),
                        Value::SimpleString(key) => Some(key.into_bytes()),
                        _ => None,
                    })
                    .collect();
                sink.invalidate(&keys.iter().map(Vec::as_slice).collect::<Vec<_>>());
            }
            // A null: the database was flushed. Anything else: be safe.
            _ => sink.invalidate_all(),
        },
        PushKind::Disconnection => {
            let _ = events.send(Event::Lost(generation));
        }
        _ => {}
    }
}

/// Pings the connection until it breaks (false) or the tracker stops (true).
async fn watch(
    settings: &Settings,
    mut connection: MultiplexedConnection,
    generation: u64,
    receiver: &mut UnboundedReceiver<Event>,
) -> bool {
    loop {
        let ping = async {
            tokio::time::sleep(settings.heartbeat).await;
            tokio::time::timeout(settings.ping_timeout, redis::cmd("PING").query_async::<()>(&mut connection)).await
        };
        match until_event(receiver, ping).await {
            Ok(Ok(Ok(()))) => {}
            Ok(_) => return false,
            Err(Some(Event::Lost(lost))) if lost != generation => {}
            Err(Some(Event::Lost(_))) => return false,
            Err(_) => return true,
        }
    }
}

/// Passes reports on to the near cache until closed; see the module documentation.
pub(super) struct Gate {
    sink: Arc<dyn InvalidationSink>,
    open: RwLock<bool>,
}

impl Gate {
    pub fn new(sink: Arc<dyn InvalidationSink>) -> Arc<Gate> {
        Arc::new(Gate { sink, open: RwLock::new(true) })
    }

    pub fn is_open(&self) -> bool {
        *self.open.read()
    }

    /// Nothing passes from now on; returns once no report is being passed on.
    pub fn close(&self) {
        *self.open.write() = false;
    }

    fn pass(&self, report: impl FnOnce(&dyn InvalidationSink)) {
        let open = self.open.read();
        if *open {
            report(&*self.sink);
        }
    }
}

impl InvalidationSink for Gate {
    fn connected(&self) {
        self.pass(|sink| sink.connected());
    }

    fn disconnected(&self) {
        self.pass(|sink| sink.disconnected());
    }

    fn invalidate(&self, keys: &[&[u8]]) {
        self.pass(|sink| sink.invalidate(keys));
    }

    fn invalidate_all(&self) {
        self.pass(|sink| sink.invalidate_all());
    }
}

/// Runs `work` unless an event arrives first (`Err`; `None` once every sender is gone).
async fn until_event<T>(
    receiver: &mut UnboundedReceiver<Event>,
    work: impl Future<Output = T>,
) -> std::result::Result<T, Option<Event>> {
    let mut work = pin!(work);
    std::future::poll_fn(|context| {
        if let Poll::Ready(event) = receiver.poll_recv(context) {
            return Poll::Ready(Err(event));
        }
        work.as_mut().poll(context).map(Ok)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts what reaches it.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    impl InvalidationSink for Counted {
        fn connected(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn disconnected(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn invalidate(&self, _keys: &[&[u8]]) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn invalidate_all(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_closed_gate_passes_nothing_on() {
        let sink = Arc::new(Counted::default());
        let gate = Gate::new(sink.clone());
        gate.connected();
        gate.invalidate(&[b"k"]);
        assert_eq!(sink.0.load(Ordering::Relaxed), 2);
        assert!(gate.is_open());
        gate.close();
        assert!(!gate.is_open());
        gate.connected();
        gate.disconnected();
        gate.invalidate(&[b"k"]);
        gate.invalidate_all();
        assert_eq!(sink.0.load(Ordering::Relaxed), 2, "nothing passes once closed");
    }
}
