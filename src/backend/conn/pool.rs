//! Blocking connections to one server, one call at a time on each: a call
//! checks a connection out, writes its request and reads its reply on the
//! caller's own thread (a plain command costs one write and one read, with no
//! hand-off to another thread), and gives it back.
//!
//! Connections are opened on demand, up to `MAX_CONNECTIONS`, so concurrent
//! callers each use their own socket, as separate clients would. A caller
//! that finds them all in use waits for one, until its call deadline.
//!
//! Every wait on a socket is bounded by the response timeout, and by the time
//! left before the call deadline when less is left (`Checkout::arm`). A
//! request larger than `LARGE_REQUEST` is written a `CHUNK` at a time, and
//! no chunk is started once the deadline has passed, so a large value that
//! keeps moving cannot carry a call past its deadline (the reply is still
//! read to its end: redis-rs parses it from the socket itself). A
//! connection whose call did not end cleanly (it timed out, it dropped, the
//! caller panicked) is closed, never given back: closing makes the server
//! discard a request it received only in part, and no later call reads the
//! rest of a late reply.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use redis::{Client, Connection, ConnectionLike, RedisError, RedisResult, Value};

use super::wire::convert_error;
use crate::error::{Error, ErrorKind, Result};

/// Most connections one handle opens to one server.
pub const MAX_CONNECTIONS: usize = 16;

/// Requests up to this size (packed) are written whole, as redis-rs writes
/// them; larger ones a `CHUNK` at a time, the deadline checked before each.
const LARGE_REQUEST: usize = 1024 * 1024;

/// The most of a large request written once the deadline is near.
const CHUNK: usize = 256 * 1024;

pub(crate) struct Pool {
    client: Client,
    /// The server, for error messages.
    target: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    state: Mutex<State>,
    /// Signalled when a connection is given back or closed.
    released: Condvar,
}

struct State {
    /// Connections open and not in use, each armed with the response timeout;
    /// the most recently used last.
    idle: Vec<Connection>,
    /// Connections open (idle, in use, or being opened).
    open: usize,
}

impl Pool {
    /// A pool of connections through `client`, with one opened now (waiting
    /// at most `connect_timeout`), so that a server that cannot be reached
    /// fails here.
    pub(crate) fn connect(client: Client, target: String, connect_timeout: Duration, response_timeout: Duration) -> Result<Pool> {
        let pool = Pool {
            client,
            target,
            connect_timeout,
            response_timeout,
            state: Mutex::new(State { idle: Vec::new(), open: 1 }),
            released: Condvar::new(),
        };
        let first = pool.open_connection(Instant::now() + connect_timeout)?;
        pool.state.lock().idle.push(first);
        Ok(pool)
    }

    /// A connection for one call: an idle one, a new one, or the first one
    /// given back when all are in use. Fails (nothing sent) when none can be
    /// had before `deadline`.
    pub(crate) fn checkout(&self, deadline: Instant) -> Result<Checkout<'_>> {
        let mut state = self.state.lock();
        loop {
            if let Some(connection) = state.idle.pop() {
                return Ok(self.checked_out(connection, deadline));
            }
            if state.open < MAX_CONNECTIONS {
                state.open += 1;
                drop(state);
                return match self.open_connection(deadline) {
                    Ok(connection) => Ok(self.checked_out(connection, deadline)),
                    Err(error) => {
                        self.closed(1);
                        Err(error)
                    }
                };
            }
            if self.released.wait_until(&mut state, deadline).timed_out() {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{}: all {MAX_CONNECTIONS} connections stayed in use until the call deadline: nothing was sent",
                        self.target
                    ),
                ));
            }
        }
    }

    fn checked_out(&self, connection: Connection, deadline: Instant) -> Checkout<'_> {
        Checkout { pool: self, connection: Some(connection), armed: self.response_timeout, deadline, cut_off: None }
    }

    /// Closes every idle connection: after one dropped, the others may be
    /// dead too (the server restarted), and later calls open new ones.
    pub(crate) fn close_idle(&self) {
        let closing = std::mem::take(&mut self.state.lock().idle);
        self.closed(closing.len());
    }

    fn closed(&self, count: usize) {
        if count > 0 {
            self.state.lock().open -= count;
            self.released.notify_all();
        }
    }

    /// A new connection, armed with the response timeout; waits at most the
    /// connect timeout, and never past `deadline`.
    fn open_connection(&self, deadline: Instant) -> Result<Connection> {
        let wait = self.connect_timeout.min(deadline.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("{}: the call deadline passed before a connection was opened: nothing was sent", self.target),
            ));
        }
        let timed_out =
            || Error::new(ErrorKind::Timeout, format!("{}: no connection within {} ms", self.target, wait.as_millis()));
        let connection = self
            .client
            .get_connection_with_timeout(wait)
            .map_err(|e| if e.is_timeout() { timed_out() } else { convert_error(&self.target, e) })?;
        set_timeouts(&connection, self.response_timeout).map_err(|e| convert_error(&self.target, e))?;
        Ok(connection)
    }
}

/// A connection in use by one call, until the call deadline. Requests go
/// through its `ConnectionLike`. Dropped without `give_back`, it is closed.
pub(crate) struct Checkout<'a> {
    pool: &'a Pool,
    connection: Option<Connection>,
    /// The timeout its socket waits with now.
    armed: Duration,
    deadline: Instant,
    /// Set when the deadline passed while a large request was being sent.
    cut_off: Option<CutOff>,
}

/// How much of a large request had been sent when the deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CutOff {
    /// Not a byte: the connection is as clean as before.
    Unsent,
    /// Part or all of it: a request received whole may run.
    Sent,
}

impl Checkout<'_> {
    /// Bounds each wait on the socket by the response timeout, or by the time
    /// left before the call deadline when less is left. False when the
    /// deadline has passed (nothing may be sent).
    pub(crate) fn arm(&mut self) -> RedisResult<bool> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let wait = left.min(self.pool.response_timeout);
        // Usually unchanged: the deadline leaves a whole response timeout
        // after sending, and no system call is needed.
        if wait != self.armed {
            set_timeouts(self.connection(), wait)?;
            self.armed = wait;
        }
        Ok(true)
    }

    /// The longest a wait on the socket lasts now (see `arm`).
    pub(crate) fn wait(&self) -> Duration {
        self.armed
    }

    /// Whether, and how, the deadline cut off a large request (its error is a timeout).
    pub(crate) fn cut_off(&self) -> Option<CutOff> {
        self.cut_off
    }

    fn connection(&mut self) -> &mut Connection {
        self.connection.as_mut().expect("a checked-out connection is present until given back")
    }

    /// What is left of `request` for the connection's own request path to
    /// send before it reads the reply: all of a request up to
    /// `LARGE_REQUEST`; of a larger one, its last `CHUNK`, the others having
    /// been written here. Each chunk is started only before the deadline,
    /// its waits bounded by the time left (`arm`), and so is the wait for
    /// the reply; a chunk still moving when the deadline passes is written
    /// to its end.
    fn send_all_but_the_last_chunk<'r>(&mut self, request: &'r [u8]) -> RedisResult<&'r [u8]> {
        if request.len() <= LARGE_REQUEST {
            return Ok(request);
        }
        let mut rest = request;
        loop {
            if !self.arm()? {
                let sent = if rest.len() == request.len() { CutOff::Unsent } else { CutOff::Sent };
                return Err(self.deadline_passed(sent));
            }
            if rest.len() <= CHUNK {
                return Ok(rest);
            }
            let (chunk, after) = rest.split_at(CHUNK);
            self.connection().send_packed_command(chunk)?;
            rest = after;
        }
    }

    fn deadline_passed(&mut self, cut_off: CutOff) -> RedisError {
        self.cut_off = Some(cut_off);
        std::io::Error::new(std::io::ErrorKind::TimedOut, "the call deadline passed while the request was being sent").into()
    }

    /// Gives the connection back for later calls: its last request was
    /// answered in full.
    pub(crate) fn give_back(mut self) {
        let reusable = |connection: &Connection| {
            redis::ConnectionLike::is_open(connection)
                && (self.armed == self.pool.response_timeout || set_timeouts(connection, self.pool.response_timeout).is_ok())
        };
        if !self.connection.as_ref().is_some_and(reusable) {
            return; // closed by Drop
        }
        let connection = self.connection.take().expect("checked above");
        self.pool.state.lock().idle.push(connection);
        self.pool.released.notify_one();
    }
}

/// A request goes through the connection's own request path, which sends it
/// and reads the replies; a large one only once all but its last chunk has
/// been sent here (`send_all_but_the_last_chunk`).
impl ConnectionLike for Checkout<'_> {
    fn req_packed_command(&mut self, request: &[u8]) -> RedisResult<Value> {
        let rest = self.send_all_but_the_last_chunk(request)?;
        self.connection().req_packed_command(rest)
    }

    fn req_packed_commands(&mut self, requests: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        let rest = self.send_all_but_the_last_chunk(requests)?;
        self.connection().req_packed_commands(rest, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.connection.as_ref().map_or(0, ConnectionLike::get_db)
    }

    fn check_connection(&mut self) -> bool {
        self.connection().check_connection()
    }

    fn is_open(&self) -> bool {
        self.connection.as_ref().is_some_and(ConnectionLike::is_open)
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if self.connection.take().is_some() {
            self.pool.closed(1);
        }
    }
}

fn set_timeouts(connection: &Connection, wait: Duration) -> RedisResult<()> {
    connection.set_read_timeout(Some(wait))?;
    connection.set_write_timeout(Some(wait))
}
