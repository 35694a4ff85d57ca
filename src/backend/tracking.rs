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
//! within `HEARTBEAT` plus the response timeout.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
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

struct Settings {
    client: Client,
    connect_timeout: Duration,
    response_timeout: Duration,
    target: String,
}

impl Tracker {
    /// Starts the thread and waits for its first connection. Fails when the
    /// server refuses RESP3 or tracking; when it cannot be reached, keeps
    /// trying in the background (near reads wait for it, plain reads go on).
    pub fn start(
        client: &Client,
        connect_timeout: Duration,
        response_timeout: Duration,
        target: &str,
        sink: Arc<dyn InvalidationSink>,
    ) -> Result<Tracker> {
        let info = client.get_connection_info().clone();
        let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client =
            Client::open(info.set_redis_settings(resp3)).map_err(|e| Error::invalid(format!("invalid Redis URL: {e}")))?;
        let settings = Settings { client, connect_timeout, response_timeout, target: target.to_string() };
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
        redis::cmd("CLIENT").arg("TRACKING").arg("ON").query_async::<()>(&mut connection).await?;
        // Only to recognise the connection in CLIENT LIST; not worth failing for.
        let _ = redis::cmd("CLIENT").arg("SETNAME").arg(TRACKING_NAME).query_async::<()>(&mut connection).await;
        Ok(connection)
    };
    tokio::time::timeout(settings.connect_timeout + settings.response_timeout, connecting)
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, format!("{}: no tracking connection in time", settings.target)))?
        .map_err(|e| convert_error(&settings.target, e))
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
            tokio::time::sleep(HEARTBEAT).await;
            tokio::time::timeout(settings.response_timeout, redis::cmd("PING").query_async::<()>(&mut connection)).await
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
