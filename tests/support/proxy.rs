//! A TCP proxy in front of a redis-server that reads the RESP requests passing
//! through and, at one chosen request, loses or delays its reply. The request
//! really reaches Redis and runs; only the client's view of the reply is
//! faulted. Everything else passes through untouched.
//!
//! ```ignore
//! let proxy = FaultProxy::start(server.port);
//! proxy.arm(Fault::DropReply, Trigger::command("INCRBY"));
//! // ... a client connected to proxy.port sends INCRBY: it runs, the proxy
//! // waits for its reply, then closes the client's connection instead.
//! ```

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What happens to the reply of the request a `Trigger` picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The request is forwarded; once Redis has answered, the reply is
    /// withheld and the client's connection (and the proxy's upstream one) closed.
    DropReply,
    /// The request is forwarded; its reply, and every later one on that
    /// connection, is held back this long (past the client's response timeout).
    DelayReply(Duration),
}

/// Decides from a request's arguments (the command name first) whether it is the one.
type Matcher = Box<dyn FnMut(&[Vec<u8>]) -> bool + Send>;

/// Picks the request to fault.
pub struct Trigger {
    matches: Matcher,
}

/// Commands that only read: a `Trigger::write_to` never picks them.
const READ_ONLY: &[&str] = &[
    "GET",
    "MGET",
    "GETRANGE",
    "STRLEN",
    "EXISTS",
    "TTL",
    "PTTL",
    "EXPIRETIME",
    "PEXPIRETIME",
    "TYPE",
    "HGET",
    "HMGET",
    "HGETALL",
    "HLEN",
    "HEXISTS",
    "SCAN",
    "KEYS",
    "SCRIPT",
    "PING",
    "HELLO",
    "CLIENT",
    "SELECT",
    "AUTH",
    "INFO",
    "CLUSTER",
    "ROLE",
    "READONLY",
    "READWRITE",
    "ASKING",
    "SENTINEL",
    "EVALSHA_RO",
    "EVAL_RO",
    "FCALL_RO",
    "OBJECT",
    "DBSIZE",
    "MULTI",
    "WATCH",
    "UNWATCH",
    "DISCARD",
];

impl Trigger {
    /// Any request chosen by `matches` (arguments, command name first).
    pub fn when(matches: impl FnMut(&[Vec<u8>]) -> bool + Send + 'static) -> Trigger {
        Trigger { matches: Box::new(matches) }
    }

    /// The `n`th request (1 = the next one) after arming, on any connection.
    pub fn nth(n: usize) -> Trigger {
        let mut seen = 0;
        Trigger::when(move |_| {
            seen += 1;
            seen == n
        })
    }

    /// The first request whose command name is `name` (any case).
    pub fn command(name: &str) -> Trigger {
        let name = name.to_string();
        Trigger::when(move |args| args.first().is_some_and(|first| first.eq_ignore_ascii_case(name.as_bytes())))
    }

    /// The first request named `name` with `argument` among its arguments
    /// (any case), e.g. `command_with("SET", "NX")`.
    pub fn command_with(name: &str, argument: &str) -> Trigger {
        let (name, argument) = (name.to_string(), argument.to_string());
        Trigger::when(move |args| {
            args.first().is_some_and(|first| first.eq_ignore_ascii_case(name.as_bytes()))
                && args[1..].iter().any(|arg| arg.eq_ignore_ascii_case(argument.as_bytes()))
        })
    }

    /// The first request that may write and has an argument containing
    /// `key` (so a prefixed key, or a script's key list, matches): whatever
    /// commands a client uses to change `key`, the first one is faulted.
    pub fn write_to(key: &[u8]) -> Trigger {
        let key = key.to_vec();
        Trigger::when(move |args| {
            let Some(name) = args.first() else { return false };
            let name = String::from_utf8_lossy(name).to_ascii_uppercase();
            !READ_ONLY.contains(&name.as_str()) && args[1..].iter().any(|arg| arg.windows(key.len()).any(|part| part == key))
        })
    }
}

/// A proxy on a free loopback port forwarding to `127.0.0.1:<upstream>`.
/// Stopped, with every connection through it, when dropped.
pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: AtomicU16,
    plan: Mutex<Option<(Fault, Trigger)>>,
    /// The request faulted, as text, once the fault has happened.
    fired: Mutex<Option<String>>,
    fired_signal: Condvar,
    connections: Mutex<Vec<TcpStream>>,
    stopped: AtomicBool,
    /// Microseconds to wait after each read of requests (`slow_requests`).
    request_pause_us: AtomicU64,
    /// Bytes of requests read from clients, whole requests or not.
    request_bytes: AtomicU64,
    /// Client connections accepted and not yet finished with.
    clients: AtomicUsize,
}

/// What the reply side does with the reply to one forwarded request.
enum Action {
    Pass,
    /// The fault, the trigger that picked it (re-armed if the request did not
    /// run: a `NOSCRIPT` reply) and the request as text.
    Fault(Fault, Trigger, String),
}

/// The per-connection queue of actions, one per forwarded request, in order.
struct Pending {
    actions: Mutex<VecDeque<Action>>,
    /// Set by `SYNC`/`PSYNC`: a replication stream follows, relayed as raw bytes.
    raw: AtomicBool,
}

impl FaultProxy {
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream: AtomicU16::new(upstream),
            plan: Mutex::new(None),
            fired: Mutex::new(None),
            fired_signal: Condvar::new(),
            connections: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            request_pause_us: AtomicU64::new(0),
            request_bytes: AtomicU64::new(0),
            clients: AtomicUsize::new(0),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&accepting);
                shared.clients.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    serve(client, Arc::clone(&shared));
                    shared.clients.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FaultProxy { port, shared }
    }

    /// A proxy whose upstream is set later (`set_upstream`), so that a server
    /// can be started already announcing the proxy's port.
    pub fn start_unbound() -> FaultProxy {
        FaultProxy::start(0)
    }

    /// Where new connections go; existing ones keep their server.
    pub fn set_upstream(&self, port: u16) {
        self.shared.upstream.store(port, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Faults the next request `trigger` picks, once. Replaces an earlier plan
    /// that has not fired.
    pub fn arm(&self, fault: Fault, trigger: Trigger) {
        *self.shared.fired.lock().unwrap() = None;
        *self.shared.plan.lock().unwrap() = Some((fault, trigger));
    }

    /// Forgets a plan that has not fired.
    pub fn disarm(&self) {
        *self.shared.plan.lock().unwrap() = None;
    }

    /// The request faulted since the last `arm` (command and arguments, as
    /// text), if the fault has happened.
    pub fn fired(&self) -> Option<String> {
        self.shared.fired.lock().unwrap().clone()
    }

    /// Waits up to `limit` for the armed fault to happen; the faulted request.
    pub fn wait_fired(&self, limit: Duration) -> Option<String> {
        let fired = self.shared.fired.lock().unwrap();
        let (fired, _) = self.shared.fired_signal.wait_timeout_while(fired, limit, |fired| fired.is_none()).unwrap();
        fired.clone()
    }

    /// From now on, on every connection, waits `pause` after each read of
    /// requests (at most 16 KiB): a large request keeps moving, slowly.
    pub fn slow_requests(&self, pause: Duration) {
        self.shared.request_pause_us.store(pause.as_micros() as u64, Ordering::SeqCst);
    }

    /// Bytes of requests the proxy has read from clients so far.
    pub fn request_bytes(&self) -> u64 {
        self.shared.request_bytes.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` until every client connection has closed and the
    /// proxy has read all it sent; false if one is still open.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.shared.clients.load(Ordering::SeqCst) > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Closes every connection through the proxy (new ones are still accepted).
    pub fn drop_connections(&self) {
        for connection in self.shared.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.drop_connections();
    }
}

/// Relays one client connection: requests on this thread, replies on another.
fn serve(client: TcpStream, shared: Arc<Shared>) {
    if shared.stopped.load(Ordering::SeqCst) {
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", shared.upstream.load(Ordering::SeqCst))) else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    {
        let mut connections = shared.connections.lock().unwrap();
        connections.push(client.try_clone().unwrap());
        connections.push(server.try_clone().unwrap());
    }
    let pending = Arc::new(Pending { actions: Mutex::new(VecDeque::new()), raw: AtomicBool::new(false) });
    let replies = {
        let (client, server, pending, shared) =
            (client.try_clone().unwrap(), server.try_clone().unwrap(), Arc::clone(&pending), Arc::clone(&shared));
        std::thread::spawn(move || relay_replies(server, client, &pending, &shared))
    };
    relay_requests(client, server, &pending, &shared);
    let _ = replies.join();
}

fn relay_requests(mut client: TcpStream, mut server: TcpStream, pending: &Pending, shared: &Shared) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // A fault picked inside MULTI moves to its EXEC, where the commands run.
    let mut in_multi = false;
    let mut deferred: Option<(Fault, Trigger, String)> = None;
    loop {
        let read = match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        shared.request_bytes.fetch_add(read as u64, Ordering::SeqCst);
        match shared.request_pause_us.load(Ordering::SeqCst) {
            0 => {}
            pause => std::thread::sleep(Duration::from_micros(pause)),
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut start = 0;
        while let Some((end, args)) = parse_request(&buffer, start) {
            let request = &buffer[start..end];
            start = end;
            let name = args.first().map(|name| String::from_utf8_lossy(name).to_ascii_uppercase()).unwrap_or_default();
            let mut chosen = None;
            {
                let mut plan = shared.plan.lock().unwrap();
                if plan.as_mut().is_some_and(|(_, trigger)| (trigger.matches)(&args)) {
                    let (fault, trigger) = plan.take().unwrap();
                    chosen = Some((fault, trigger, describe(&args)));
                }
            }
            match name.as_str() {
                "SYNC" | "PSYNC" => pending.raw.store(true, Ordering::SeqCst),
                "MULTI" => in_multi = true,
                "EXEC" | "DISCARD" => {
                    in_multi = false;
                    if let Some((fault, trigger, described)) = deferred.take() {
                        chosen = chosen.or(Some((fault, trigger, format!("EXEC of a transaction with {described}"))));
                    }
                }
                _ => {}
            }
            let action = match chosen {
                Some(chosen) if in_multi => {
                    deferred = Some(chosen);
                    Action::Pass
                }
                Some((fault, trigger, described)) => Action::Fault(fault, trigger, described),
                None => Action::Pass,
            };
            pending.actions.lock().unwrap().push_back(action);
            if server.write_all(request).is_err() {
                return;
            }
        }
        buffer.drain(..start);
    }
    let _ = server.shutdown(Shutdown::Both);
}

fn relay_replies(mut server: TcpStream, mut client: TcpStream, pending: &Pending, shared: &Shared) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let read = match server.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        buffer.extend_from_slice(&chunk[..read]);
        if pending.raw.load(Ordering::SeqCst) {
            // A replica's stream: the RDB payload is not a RESP frame.
            if client.write_all(&buffer).is_err() {
                break;
            }
            buffer.clear();
            continue;
        }
        let mut start = 0;
        while let Some(end) = frame_end(&buffer, start) {
            let reply = &buffer[start..end];
            // Push messages (RESP3 `>`) answer no request.
            let action =
                if reply[0] == b'>' { Action::Pass } else { pending.actions.lock().unwrap().pop_front().unwrap_or(Action::Pass) };
            if let Action::Fault(fault, trigger, described) = action {
                if reply.starts_with(b"-NOSCRIPT") {
                    // The request did not run: the fault waits for the next one.
                    shared.plan.lock().unwrap().get_or_insert((fault, trigger));
                } else {
                    *shared.fired.lock().unwrap() = Some(described);
                    shared.fired_signal.notify_all();
                    match fault {
                        Fault::DropReply => {
                            let _ = client.shutdown(Shutdown::Both);
                            let _ = server.shutdown(Shutdown::Both);
                            return;
                        }
                        Fault::DelayReply(delay) => std::thread::sleep(delay),
                    }
                }
            }
            if client.write_all(reply).is_err() {
                let _ = server.shutdown(Shutdown::Both);
                return;
            }
            start = end;
        }
        buffer.drain(..start);
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// A short text form of a request for messages: its arguments, long ones cut.
fn describe(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|arg| {
            let text = String::from_utf8_lossy(arg);
            if text.chars().count() > 40 {
                format!("{}…", text.chars().take(40).collect::<String>())
            } else {
                text.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn line_end(buffer: &[u8], from: usize) -> Option<usize> {
    buffer.get(from..)?.windows(2).position(|pair| pair == b"\r\n").map(|offset| from + offset)
}

fn number(text: &[u8]) -> i64 {
    std::str::from_utf8(text).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(0)
}

/// The end of the complete RESP2/RESP3 frame starting at `at`, or `None` if
/// the buffer does not hold all of it yet.
pub fn frame_end(buffer: &[u8], at: usize) -> Option<usize> {
    let kind = *buffer.get(at)?;
    let eol = line_end(buffer, at)?;
    let after = eol + 2;
    let count = number(&buffer[at + 1..eol]);
    match kind {
        b'$' | b'=' | b'!' if count >= 0 => {
            let end = after + count as usize + 2;
            (buffer.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' if count >= 0 => {
            let items = if matches!(kind, b'%' | b'|') { 2 * count } else { count };
            let mut position = after;
            for _ in 0..items {
                position = frame_end(buffer, position)?;
            }
            // Attributes annotate the frame that follows them.
            if kind == b'|' { frame_end(buffer, position) } else { Some(position) }
        }
        _ => Some(after),
    }
}

/// One request starting at `at`: its end and its arguments. A RESP array of
/// bulk strings, or an inline command (a line of words).
fn parse_request(buffer: &[u8], at: usize) -> Option<(usize, Vec<Vec<u8>>)> {
    if *buffer.get(at)? != b'*' {
        let eol = line_end(buffer, at)?;
        let args = buffer[at..eol].split(|byte| byte.is_ascii_whitespace()).filter(|word| !word.is_empty());
        return Some((eol + 2, args.map(<[u8]>::to_vec).collect()));
    }
    let end = frame_end(buffer, at)?;
    let eol = line_end(buffer, at)?;
    let mut args = Vec::new();
    let mut position = eol + 2;
    for _ in 0..number(&buffer[at + 1..eol]).max(0) {
        let eol = line_end(buffer, position)?;
        let length = number(&buffer[position + 1..eol]).max(0) as usize;
        args.push(buffer[eol + 2..eol + 2 + length].to_vec());
        position = eol + 2 + length + 2;
    }
    Some((end, args))
}
