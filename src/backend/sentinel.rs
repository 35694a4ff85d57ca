//! The Sentinel backend: the standalone Redis backend on the primary the
//! sentinels name, replaced by a new one when the primary changes.
//!
//! The primary is looked up again (at most every `RESOLVE_INTERVAL`) when a
//! call fails to reach it (connection error or timeout), when it answers
//! `READONLY` (it was demoted to a replica), or when a sentinel announces
//! `+switch-master` for the service (a watcher thread subscribes to it). A
//! write refused with `READONLY` did nothing and is sent again to the new
//! primary; a call that lost its connection is sent again only if it is
//! idempotent, as on one server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, TlsCertificates, TlsMode};
use tokio::runtime::Runtime;

use super::conn::wire::{convert_error, install_tls_provider, new_runtime};
use super::{
    Backend, Expiry, ForRefresh, HashFields, RedisBackend, RedisSettings, Remaining, SaveOutcome, SessionRecord, WriteCondition,
    WriteExpiry,
};
use crate::error::{Error, ErrorKind, Result};

/// Where the sentinels are and what to ask them.
pub struct SentinelSettings {
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor the primary under.
    pub service: String,
    pub db: i64,
    /// ACL user and password for the primary.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Credentials of the sentinels themselves, when they require any.
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    /// TLS to the sentinels and the primary (`Insecure`: no verification).
    pub tls: Option<TlsMode>,
    pub certificates: Option<TlsCertificates>,
    /// Timeouts and breaker of the connections to the primary (`url` unused).
    pub redis: RedisSettings,
}

/// Least time between two lookups of the primary.
const RESOLVE_INTERVAL: Duration = Duration::from_millis(50);

/// Whether a call may be sent again after its connection failed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Once,
    Never,
}

/// The primary in use: a standalone backend on it.
struct Primary {
    backend: RedisBackend,
    /// host:port, to tell whether a lookup found another one.
    address: String,
    /// Bumped at every switch, so concurrent callers switch once.
    generation: u64,
}

/// Asks the sentinels; one lookup at a time.
struct Resolver {
    client: SentinelClient,
    runtime: Runtime,
    last_attempt: Option<Instant>,
}

pub struct SentinelBackend {
    current: RwLock<Arc<Primary>>,
    resolver: Mutex<Resolver>,
    settings: RedisSettings,
    /// Set by the watcher on `+switch-master`; cleared by the next lookup.
    switched: Arc<AtomicBool>,
    /// Tells the watcher to end.
    stop: Arc<AtomicBool>,
    /// Breaker counts of the backends replaced so far.
    retired: (AtomicU64, AtomicU64),
    /// "sentinel <service> via h:p,…", for error messages.
    target: String,
    deadline: Duration,
}

impl Resolver {
    /// A client for the primary the sentinels name now (its role checked).
    fn primary(&mut self, deadline: Duration, target: &str) -> Result<Client> {
        let client = &mut self.client;
        self.runtime
            .block_on(async { tokio::time::timeout(deadline, client.async_get_client()).await })
            .map_err(|_| Error::new(ErrorKind::Timeout, format!("{target}: no answer within {} ms", deadline.as_millis())))?
            .map_err(|e| convert_error(target, e))
    }
}

fn address_of(client: &Client) -> String {
    client.get_connection_info().addr().to_string()
}

/// A sentinel's address with the TLS mode of the URL.
fn sentinel_address(host: &str, port: u16, tls: Option<TlsMode>) -> ConnectionAddr {
    match tls {
        None => ConnectionAddr::Tcp(host.to_string(), port),
        Some(mode) => {
            ConnectionAddr::TcpTls { host: host.to_string(), port, insecure: mode == TlsMode::Insecure, tls_params: None }
        }
    }
}

impl SentinelBackend {
    /// Asks the sentinels for the primary and connects to it, each bounded
    /// by the timeouts; starts the `+switch-master` watcher.
    pub fn connect(settings: SentinelSettings) -> Result<Self> {
        install_tls_provider();
        let hosts: Vec<String> = settings.sentinels.iter().map(|(host, port)| format!("{host}:{port}")).collect();
        let target = format!("sentinel {} via {}", settings.service, hosts.join(","));
        let addresses: Vec<ConnectionAddr> =
            settings.sentinels.iter().map(|(host, port)| sentinel_address(host, *port, settings.tls)).collect();
        let mut builder = SentinelClientBuilder::new(addresses.clone(), settings.service.clone(), SentinelServerType::Master)
            .map_err(|e| Error::invalid(format!("invalid Sentinel URL: {e}")))?
            .set_client_to_redis_db(settings.db);
        if let Some(username) = &settings.username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = &settings.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(username) = &settings.sentinel_username {
            builder = builder.set_client_to_sentinel_username(username);
        }
        if let Some(password) = &settings.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if let Some(mode) = settings.tls {
            builder = builder.set_client_to_redis_tls_mode(mode).set_client_to_sentinel_tls_mode(mode);
        }
        if let Some(certificates) = &settings.certificates {
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates.clone());
        }
        let client = builder.build().map_err(|e| Error::invalid(format!("invalid Sentinel URL: {e}")))?;
        let deadline = settings.redis.connect_timeout + settings.redis.response_timeout;
        let mut resolver = Resolver { client, runtime: new_runtime()?, last_attempt: None };
        let primary = resolver.primary(deadline, &target)?;
        let address = address_of(&primary);
        let backend = RedisBackend::with_client(primary, &settings.redis)?;

        let switched = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = Watcher {
            sentinels: addresses,
            username: settings.sentinel_username,
            password: settings.sentinel_password,
            certificates: settings.certificates,
            service: settings.service,
            switched: Arc::clone(&switched),
            stop: Arc::clone(&stop),
        };
        std::thread::Builder::new()
            .name("rcache-sentinel".into())
            .spawn(move || watcher.run())
            .map_err(|e| Error::new(ErrorKind::Connection, format!("{target}: cannot start the watcher thread: {e}")))?;

        Ok(SentinelBackend {
            current: RwLock::new(Arc::new(Primary { backend, address, generation: 0 })),
            resolver: Mutex::new(resolver),
            settings: settings.redis,
            switched,
            stop,
            retired: Default::default(),
            target,
            deadline,
        })
    }

    fn primary(&self) -> Arc<Primary> {
        Arc::clone(&self.current.read())
    }

    /// Looks the primary up and switches to it if it changed. `seen` is the
    /// generation the caller failed on: if another caller switched since,
    /// that switch is the answer. `None` when nothing changed.
    fn refresh(&self, seen: Option<u64>) -> Option<Arc<Primary>> {
        let mut resolver = self.resolver.lock();
        let current = self.primary();
        if seen.is_some_and(|seen| seen != current.generation) {
            return Some(current);
        }
        if resolver.last_attempt.is_some_and(|last| last.elapsed() < RESOLVE_INTERVAL) {
            return None;
        }
        resolver.last_attempt = Some(Instant::now());
        // A failed lookup keeps a `+switch-master` notice pending, so the next call looks again.
        let client = resolver.primary(self.deadline, &self.target).ok()?;
        self.switched.store(false, Ordering::Relaxed);
        let address = address_of(&client);
        if address == current.address {
            return None;
        }
        let backend = RedisBackend::with_client(client, &self.settings).ok()?;
        let fresh = Arc::new(Primary { backend, address, generation: current.generation + 1 });
        let (trips, skips) = current.backend.breaker_counts();
        self.retired.0.fetch_add(trips, Ordering::Relaxed);
        self.retired.1.fetch_add(skips, Ordering::Relaxed);
        *self.current.write() = Arc::clone(&fresh);
        Some(fresh)
    }

    /// Runs `operation` on the primary, following a failover as the module says.
    fn call<T>(&self, retry: Retry, operation: impl Fn(&RedisBackend) -> Result<T>) -> Result<T> {
        if self.switched.load(Ordering::Relaxed) {
            self.refresh(None);
        }
        let primary = self.primary();
        match operation(&primary.backend) {
            Err(error) if failed_over(&error) => match self.refresh(Some(primary.generation)) {
                Some(fresh) if retry == Retry::Once || is_read_only(&error) => operation(&fresh.backend),
                _ => Err(error),
            },
            result => result,
        }
    }
}

/// The primary is gone or is a primary no more.
fn failed_over(error: &Error) -> bool {
    matches!(error.kind, ErrorKind::Connection | ErrorKind::Timeout) || is_read_only(error)
}

/// A write refused by a replica: it did nothing. (`ReadOnly:` is how the
/// `redis` crate writes the server's `READONLY` reply, inside a refused
/// transaction too.)
fn is_read_only(error: &Error) -> bool {
    error.message.contains("ReadOnly: ") || error.message.contains("READONLY")
}

impl Drop for SentinelBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Subscribes to `+switch-master` on one sentinel after another and flags
/// announcements for our service, until told to stop.
struct Watcher {
    sentinels: Vec<ConnectionAddr>,
    username: Option<String>,
    password: Option<String>,
    certificates: Option<TlsCertificates>,
    service: String,
    switched: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// How long the watcher waits for a message before looking at its stop flag.
const WATCH_TICK: Duration = Duration::from_millis(250);

impl Watcher {
    fn run(self) {
        for address in self.sentinels.iter().cycle() {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            // A sentinel that is down or drops us: try the next one shortly.
            let _ = self.listen(address);
            std::thread::sleep(WATCH_TICK);
        }
    }

    fn listen(&self, address: &ConnectionAddr) -> redis::RedisResult<()> {
        let mut redis_info = RedisConnectionInfo::default();
        if let Some(username) = &self.username {
            redis_info = redis_info.set_username(username);
        }
        if let Some(password) = &self.password {
            redis_info = redis_info.set_password(password);
        }
        let info = address.clone().into_connection_info()?.set_redis_settings(redis_info);
        let client = match &self.certificates {
            Some(certificates) => Client::build_with_tls(info, certificates.clone())?,
            None => Client::open(info)?,
        };
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
        let mut pubsub = connection.as_pubsub();
        pubsub.set_read_timeout(Some(WATCH_TICK))?;
        pubsub.subscribe("+switch-master")?;
        while !self.stop.load(Ordering::Relaxed) {
            match pubsub.get_message() {
                // "<service> <old ip> <old port> <new ip> <new port>"
                Ok(message) => {
                    let payload: String = message.get_payload().unwrap_or_default();
                    if payload.split(' ').next() == Some(self.service.as_str()) {
                        self.switched.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Backend for SentinelBackend {
    fn breaker_counts(&self) -> (u64, u64) {
        let (trips, skips) = self.primary().backend.breaker_counts();
        (trips + self.retired.0.load(Ordering::Relaxed), skips + self.retired.1.load(Ordering::Relaxed))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.call(Retry::Once, |backend| backend.get(key))
    }

    fn get_with_ttl(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Remaining)>> {
        self.call(Retry::Once, |backend| backend.get_with_ttl(key))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.call(Retry::Once, |backend| backend.get_many(keys))
    }

    fn set(&self, key: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<()> {
        self.call(Retry::Once, |backend| backend.set(key, value, expiry))
    }

    fn compare_and_set(&self, key: &[u8], expected: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<bool> {
        self.call(Retry::Never, |backend| backend.compare_and_set(key, expected, value, expiry))
    }

    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()> {
        self.call(Retry::Once, |backend| backend.set_many(entries, expiry))
    }

    fn set_tagged(&self, key: &[u8], value: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()> {
        self.call(Retry::Once, |backend| backend.set_tagged(key, value, expiry, tags))
    }

    fn add_tags(&self, key: &[u8], tags: &[Vec<u8>]) -> Result<bool> {
        self.call(Retry::Once, |backend| backend.add_tags(key, tags))
    }

    fn invalidate_tags(&self, tags: &[Vec<u8>]) -> Result<()> {
        self.call(Retry::Once, |backend| backend.invalidate_tags(tags))
    }

    fn clear(&self, pattern: &[u8]) -> Result<u64> {
        self.call(Retry::Once, |backend| backend.clear(pattern))
    }

    fn keys(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.call(Retry::Once, |backend| backend.keys(pattern))
    }

    fn hash_get(&self, key: &[u8]) -> Result<Option<HashFields>> {
        self.call(Retry::Once, |backend| backend.hash_get(key))
    }

    fn hash_set(&self, key: &[u8], fields: &[(&[u8], &[u8])], expiry: WriteExpiry, condition: WriteCondition) -> Result<bool> {
        self.call(Retry::Never, |backend| backend.hash_set(key, fields, expiry, condition))
    }

    fn server_info(&self) -> Result<Vec<u8>> {
        self.call(Retry::Once, |backend| backend.server_info())
    }

    fn get_for_refresh(&self, key: &[u8], meta_key: &[u8]) -> Result<Option<ForRefresh>> {
        self.call(Retry::Once, |backend| backend.get_for_refresh(key, meta_key))
    }

    fn lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        self.call(Retry::Never, |backend| backend.lock(key, owner, lease))
    }

    fn extend_lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        self.call(Retry::Once, |backend| backend.extend_lock(key, owner, lease))
    }

    fn unlock(&self, key: &[u8], owner: &[u8]) -> Result<bool> {
        self.call(Retry::Once, |backend| backend.unlock(key, owner))
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        self.call(Retry::Once, |backend| backend.delete(key))
    }

    fn exists(&self, key: &[u8]) -> Result<bool> {
        self.call(Retry::Once, |backend| backend.exists(key))
    }

    fn remaining(&self, key: &[u8]) -> Result<Remaining> {
        self.call(Retry::Once, |backend| backend.remaining(key))
    }

    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool> {
        self.call(Retry::Once, |backend| backend.expire(key, expiry))
    }

    fn increment(&self, key: &[u8], delta: i64, expiry_if_new: Expiry) -> Result<i64> {
        self.call(Retry::Never, |backend| backend.increment(key, delta, expiry_if_new))
    }

    fn session_create(&self, key: &[u8], secret: &[u8], fields: &[(&[u8], &[u8])], expiry: Expiry, now_ms: u64) -> Result<bool> {
        self.call(Retry::Never, |backend| backend.session_create(key, secret, fields, expiry, now_ms))
    }

    fn session_load(&self, key: &[u8], secret: &[u8], touch: Option<Expiry>, now_ms: u64) -> Result<Option<SessionRecord>> {
        self.call(Retry::Once, |backend| backend.session_load(key, secret, touch, now_ms))
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
        self.call(Retry::Never, |backend| backend.session_save(key, secret, expected, set, delete, expiry, now_ms))
    }

    fn session_touch(&self, key: &[u8], secret: &[u8], expiry: Expiry, now_ms: u64) -> Result<bool> {
        self.call(Retry::Once, |backend| backend.session_touch(key, secret, expiry, now_ms))
    }

    fn session_destroy(&self, key: &[u8], secret: &[u8]) -> Result<bool> {
        self.call(Retry::Once, |backend| backend.session_destroy(key, secret))
    }

    fn session_list(&self, pattern: &[u8]) -> Result<Vec<(Vec<u8>, SessionRecord)>> {
        self.call(Retry::Once, |backend| backend.session_list(pattern))
    }

    fn session_purge(&self, pattern: &[u8], idle_since_ms: u64) -> Result<u64> {
        self.call(Retry::Once, |backend| backend.session_purge(pattern, idle_since_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_reply(reply: &[u8]) -> Error {
        let error = redis::parse_redis_value(reply).unwrap().extract_error().unwrap_err();
        convert_error("127.0.0.1:6379", error)
    }

    #[test]
    fn a_demoted_primary_is_told_from_its_reply() {
        let refused = from_reply(b"-READONLY You can't write against a read only replica.\r\n");
        assert!(is_read_only(&refused) && failed_over(&refused), "{refused}");
        let other = from_reply(b"-ERR unknown command\r\n");
        assert!(!is_read_only(&other) && !failed_over(&other), "{other}");
        let gone = Error::new(ErrorKind::Connection, "127.0.0.1:6379: connection refused");
        assert!(failed_over(&gone) && !is_read_only(&gone));
    }
}
