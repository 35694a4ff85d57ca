//! The Redis backend: one multiplexed, automatically reconnecting connection
//! per handle, on a private current-thread tokio runtime.
//!
//! The runtime has no thread of its own: whichever calling thread is inside
//! `block_on` drives the socket for every caller. A lone caller thus does its
//! own I/O with no hand-off between threads, and concurrent callers share one
//! connection whose writes are batched.

use std::sync::Once;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, FromRedisValue, Pipeline, RedisError, Script, ScriptInvocation};
use tokio::runtime::Runtime;

use super::{Backend, Expiry, Remaining};
use crate::error::{Error, ErrorKind, Result};

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// A `redis://`, `rediss://` or `unix://` URL as the `redis` crate reads it.
    pub url: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

pub struct RedisBackend {
    connection: ConnectionManager,
    /// Declared after the connection so it is dropped last.
    runtime: Runtime,
    /// The most one call may take, its retry included.
    call_deadline: Duration,
    /// The server, for error messages; never carries a password.
    target: String,
    scripts: Scripts,
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
    set_tagged: Script,
    add_tags: Script,
}

macro_rules! lua {
    ($body:literal) => {
        Script::new(concat!(include_str!("lua/envelope.lua"), include_str!("lua/tag.lua"), include_str!($body)))
    };
}

impl Scripts {
    fn new() -> Self {
        Scripts { read: lua!("lua/read.lua"), set_tagged: lua!("lua/set_tagged.lua"), add_tags: lua!("lua/add_tags.lua") }
    }
}

/// Batch size of the SCAN/UNLINK loop behind `clear`: small enough that no
/// single step blocks the server for long.
const CLEAR_BATCH: usize = 1000;

/// A random token for a tag: 16 lowercase hex characters (64 bits).
fn fresh_token() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn install_tls_provider() {
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
        let client = Client::open(settings.url.as_str())
            .map_err(|e| Error::invalid(format!("invalid Redis URL: {e}")))?;
        let target = client.get_connection_info().addr().to_string();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Connection, format!("cannot start the I/O runtime: {e}")))?;
        // Failures surface at once and the next call reconnects, so a call never
        // waits through a backoff schedule while the server is down.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout));
        let connecting = ConnectionManager::new_with_config(client, config);
        let connection = runtime
            .block_on(async { tokio::time::timeout(settings.connect_timeout, connecting).await })
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("{target}: no connection within {} ms", settings.connect_timeout.as_millis()),
                )
            })?
            .map_err(|e| convert_error(&target, e))?;
        Ok(RedisBackend {
            connection,
            runtime,
            call_deadline: settings.connect_timeout + settings.response_timeout,
            target,
            scripts: Scripts::new(),
        })
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
        let send = || async {
            let mut connection = self.connection.clone();
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
        self.runtime
            .block_on(async { tokio::time::timeout(self.call_deadline, attempts).await })
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("{}: no reply within {} ms", self.target, self.call_deadline.as_millis()),
                )
            })?
            .map_err(|e| convert_error(&self.target, e))
    }
}

fn connection_dropped(error: &RedisError) -> bool {
    !error.is_timeout() && (error.is_connection_dropped() || error.is_io_error())
}

fn convert_error(target: &str, error: RedisError) -> Error {
    let text = error.to_string();
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
        ErrorKind::Connection
    } else if text.contains("WRONGTYPE") || text.contains("not an integer") {
        ErrorKind::WrongType
    } else if text.contains("CORRUPT rcache entry") {
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
    Error::new(kind, format!("{target}: {text}"))
}

/// Appends `PX <ms>` for a finite expiry; the server keeps the key forever otherwise.
fn with_expiry(cmd: &mut Cmd, expiry: Expiry) {
    if let Expiry::After(ttl) = expiry {
        cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
    }
}

impl Backend for RedisBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.invoke(self.scripts.read.key(key).arg("one"), Retry::Once)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.read.prepare_invoke();
        invocation.key(keys).arg("many");
        self.invoke(&invocation, Retry::Once)
    }

    fn set(&self, key: &[u8], value: &[u8], expiry: Expiry) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        with_expiry(&mut cmd, expiry);
        self.query(&cmd, Retry::Once)
    }

    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for (key, value) in entries {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(*value);
            with_expiry(&mut cmd, expiry);
            pipeline.add_command(cmd).ignore();
        }
        self.query_pipeline(&pipeline, Retry::Once)
    }

    fn set_tagged(&self, key: &[u8], value: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()> {
        let ttl_ms = match expiry {
            Expiry::Never => 0,
            Expiry::After(ttl) => ttl.as_millis().max(1) as u64,
        };
        let mut invocation = self.scripts.set_tagged.key(key);
        invocation.key(tags).arg(value).arg(ttl_ms);
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
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self.query(
                redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(CLEAR_BATCH),
                Retry::Once,
            )?;
            if !keys.is_empty() {
                let removed: u64 = self.query(redis::cmd("UNLINK").arg(&keys), Retry::Once)?;
                deleted += removed;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let removed: u64 = self.query(redis::cmd("UNLINK").arg(key), Retry::Once)?;
        Ok(removed > 0)
    }

    fn exists(&self, key: &[u8]) -> Result<bool> {
        let found: u64 = self.invoke(self.scripts.read.key(key).arg("exists"), Retry::Once)?;
        Ok(found > 0)
    }

    fn remaining(&self, key: &[u8]) -> Result<Remaining> {
        let millis: i64 = self.query(redis::cmd("PTTL").arg(key), Retry::Once)?;
        Ok(match millis {
            -2 => Remaining::Missing,
            -1 => Remaining::Forever,
            left => Remaining::Left(Duration::from_millis(left.max(0) as u64)),
        })
    }

    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool> {
        match expiry {
            Expiry::After(ttl) => {
                let millis = ttl.as_millis().max(1) as u64;
                self.query(redis::cmd("PEXPIRE").arg(key).arg(millis), Retry::Once)
            }
            // PERSIST answers 0 both for a missing key and for one without expiry.
            Expiry::Never => {
                let mut pipeline = redis::pipe();
                pipeline.atomic().cmd("PERSIST").arg(key).ignore().cmd("EXISTS").arg(key);
                let (found,): (bool,) = self.query_pipeline(&pipeline, Retry::Once)?;
                Ok(found)
            }
        }
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
