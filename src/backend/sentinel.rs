//! The Sentinel backend: the standalone Redis backend on the primary the
//! sentinels agree on, replaced by a new one when the primary changes.
//!
//! **Finding the primary.** Every configured sentinel is asked at once
//! (`SENTINEL GET-MASTER-ADDR-BY-NAME` and `SENTINEL MASTER` for its
//! `config-epoch`), each within the call deadline. The primary is the address
//! named by more than half of the *configured* sentinels; when no address has
//! such a majority (sentinels down or disagreeing), it is the address named
//! with the highest config epoch among the answers. A majority always wins
//! over a higher epoch. The chosen node must then answer `ROLE` as a master:
//! a node that reports itself a replica is never used, whatever the sentinels
//! say. So one stale or lying sentinel cannot send writes to a demoted
//! primary while the others agree on the new one.
//!
//! **Following a failover.** The primary is looked up again (at most every
//! `RESOLVE_INTERVAL`) when a call fails to reach it (connection error,
//! timeout or lost reply), when it answers `READONLY` (it was demoted to a
//! replica), or when a sentinel announces `+switch-master` for the service (a
//! watcher thread subscribes to it). Then:
//! - a call refused with `READONLY` did nothing and is sent to the new primary;
//! - a call the retry table ([`Call::resend`]) lets be sent again (reads, and
//!   writes whose second run changes neither the data nor the answer) is sent
//!   to the new primary;
//! - any other call whose request may have reached the old primary is not
//!   sent again: it fails with `ErrorKind::UnknownOutcome` (a timeout or a
//!   dropped connection) — it may have run there once. One that surely never
//!   left (connection refused, circuit breaker open) may go to the new primary.
//!
//! **The near cache.** The tracking connection (`tracking`) is the primary's:
//! each primary's backend tracks through a `Gate` of its own. A switch closes
//! the old primary's gate, then flushes the near cache (it stops filling),
//! then publishes the new primary, then starts tracking on it, which lets the
//! near cache fill again once its connection has tracking on. A tracked read
//! goes only to a primary whose gate is open, so every fill comes from the
//! server whose reports reach the near cache, as on one server. A tracking
//! connection only tracks a node that answers `ROLE` as a primary; finding a
//! replica there makes the next call look the primary up again. Since near
//! hits never reach the backend, the watcher empties the near cache on
//! `+switch-master`: the next read misses, looks the primary up and switches;
//! nothing is filled while an announced switch is not looked up yet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use parking_lot::{Mutex, RwLock};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisResult, Role, TlsCertificates,
    TlsMode,
};
use tokio::runtime::Runtime;

use super::conn::retry::Call;
use super::conn::wire::{convert_error, install_tls_provider, new_runtime};
use super::tracking::Gate;
use super::{
    Backend, Expiry, ForRefresh, HashFields, InvalidationSink, RedisBackend, RedisSettings, Remaining, SaveOutcome,
    SessionRecord, SessionSave, TrackedRead, TrackedReads, WriteCondition, WriteExpiry,
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

/// The primary in use: a standalone backend on it.
struct Primary {
    backend: RedisBackend,
    /// host:port, to tell whether a lookup found another one.
    address: String,
    /// Bumped at every switch, so concurrent callers switch once.
    generation: u64,
    /// In front of the near cache for this primary's tracking connection,
    /// once tracking started; closed when another primary replaces it.
    gate: OnceLock<Arc<Gate>>,
}

impl Primary {
    /// True while this primary's reports reach the near cache.
    fn tracked(&self) -> bool {
        self.gate.get().is_some_and(|gate| gate.is_open())
    }
}

/// How to reach the sentinels and the nodes they name.
struct Directory {
    sentinels: Vec<ConnectionAddr>,
    service: String,
    tls: Option<TlsMode>,
    certificates: Option<TlsCertificates>,
    /// Credentials presented to the sentinels.
    sentinel_login: RedisConnectionInfo,
    /// Credentials and database on the primary.
    primary_login: RedisConnectionInfo,
}

impl Directory {
    fn client(&self, address: ConnectionAddr, login: &RedisConnectionInfo) -> RedisResult<Client> {
        let info = address.into_connection_info()?.set_redis_settings(login.clone());
        match &self.certificates {
            Some(certificates) => Client::build_with_tls(info, certificates.clone()),
            None => Client::open(info),
        }
    }
}

/// One sentinel's view of the primary.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    /// Position of the sentinel in the configured list.
    sentinel: usize,
    host: String,
    port: u16,
    config_epoch: u64,
}

/// The (host, port) the answers point to, as the module says: named by more
/// than half of the `configured` sentinels, else named with the highest
/// config epoch (ties: named by more sentinels, then by the one listed first).
fn choose(answers: &[Answer], configured: usize) -> Option<(&str, u16)> {
    let tally = tally(answers);
    majority(&tally, configured).or_else(|| {
        tally
            .into_iter()
            .max_by_key(|&(_, (votes, epoch, first))| (epoch, votes, std::cmp::Reverse(first)))
            .map(|(address, _)| address)
    })
}

/// Per address named: how many sentinels name it, the highest config epoch
/// they give, the first of them in the configured list.
fn tally(answers: &[Answer]) -> HashMap<(&str, u16), (usize, u64, usize)> {
    let mut tally: HashMap<(&str, u16), (usize, u64, usize)> = HashMap::new();
    for answer in answers {
        let entry = tally.entry((answer.host.as_str(), answer.port)).or_insert((0, 0, answer.sentinel));
        entry.0 += 1;
        entry.1 = entry.1.max(answer.config_epoch);
        entry.2 = entry.2.min(answer.sentinel);
    }
    tally
}

/// The address more than half of the `configured` sentinels name, if any.
fn majority<'a>(tally: &HashMap<(&'a str, u16), (usize, u64, usize)>, configured: usize) -> Option<(&'a str, u16)> {
    tally.iter().find(|(_, (votes, _, _))| 2 * votes > configured).map(|(&address, _)| address)
}

/// Asks the sentinels; one lookup at a time.
struct Resolver {
    directory: Arc<Directory>,
    runtime: Runtime,
    last_attempt: Option<Instant>,
}

impl Resolver {
    /// A client for the primary the sentinels agree on, confirmed a master by
    /// `ROLE`. Each sentinel, and then the primary, gets at most `deadline`.
    fn primary(&mut self, deadline: Duration, target: &str) -> Result<Client> {
        let directory = &*self.directory;
        let config = AsyncConnectionConfig::new().set_connection_timeout(Some(deadline)).set_response_timeout(Some(deadline));
        self.runtime.block_on(async {
            let (answers, failures) = ask_sentinels(directory, &config, deadline).await;
            let Some((host, port)) = choose(&answers, directory.sentinels.len()) else {
                let why = failures.join("; ");
                return Err(Error::new(ErrorKind::Connection, format!("{target}: no sentinel named a primary ({why})")));
            };
            let address = sentinel_address(host, port, directory.tls);
            let client = directory.client(address, &directory.primary_login).map_err(|e| convert_error(target, e))?;
            let role = async {
                let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
                redis::cmd("ROLE").query_async::<Role>(&mut connection).await
            };
            let named = format!("{target}: {host}:{port}, the primary the sentinels name");
            match tokio::time::timeout(deadline, role).await {
                Ok(Ok(Role::Primary { .. })) => Ok(client),
                Ok(Ok(Role::Replica { .. })) => {
                    Err(Error::new(ErrorKind::Connection, format!("{named}, reports itself a replica; not used")))
                }
                Ok(Ok(_)) => Err(Error::new(ErrorKind::Connection, format!("{named}, is not a data node; not used"))),
                Ok(Err(e)) => Err(convert_error(&named, e)),
                Err(_) => {
                    Err(Error::new(ErrorKind::Timeout, format!("{named}: no ROLE reply within {} ms", deadline.as_millis())))
                }
            }
        })
    }
}

/// The answers of the sentinels that answer within `deadline`, collected
/// until one address has a majority of the configured sentinels or all are
/// in; and why the others gave none ("host:port: reason").
async fn ask_sentinels(directory: &Directory, config: &AsyncConnectionConfig, deadline: Duration) -> (Vec<Answer>, Vec<String>) {
    let mut asking: FuturesUnordered<_> = directory
        .sentinels
        .iter()
        .enumerate()
        .map(|(sentinel, address)| async move {
            let answer = async {
                let client = directory.client(address.clone(), &directory.sentinel_login)?;
                let mut connection = client.get_multiplexed_async_connection_with_config(config).await?;
                let named: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&directory.service)
                    .query_async(&mut connection)
                    .await?;
                // A sentinel user whose ACL refuses `SENTINEL MASTER` still votes, with epoch 0.
                let master: HashMap<String, String> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(&directory.service)
                    .query_async(&mut connection)
                    .await
                    .unwrap_or_default();
                let config_epoch = master.get("config-epoch").and_then(|epoch| epoch.parse().ok()).unwrap_or(0);
                Ok::<_, redis::RedisError>(named.map(|(host, port)| Answer { sentinel, host, port, config_epoch }))
            };
            match tokio::time::timeout(deadline, answer).await {
                Ok(Ok(Some(answer))) => Ok(answer),
                Ok(Ok(None)) => Err(format!("{address}: does not monitor {}", directory.service)),
                Ok(Err(e)) => Err(format!("{address}: {e}")),
                Err(_) => Err(format!("{address}: no answer within {} ms", deadline.as_millis())),
            }
        })
        .collect();
    let (mut answers, mut failures) = (Vec::new(), Vec::new());
    while let Some(answer) = asking.next().await {
        match answer {
            Ok(answer) => answers.push(answer),
            Err(failure) => failures.push(failure),
        }
        if majority(&tally(&answers), directory.sentinels.len()).is_some() {
            break;
        }
    }
    (answers, failures)
}

pub struct SentinelBackend {
    current: RwLock<Arc<Primary>>,
    resolver: Mutex<Resolver>,
    settings: RedisSettings,
    /// Set by the watcher on `+switch-master`, and by a tracking connection
    /// that found a replica; cleared by the next lookup.
    switched: Arc<AtomicBool>,
    /// The near cache, once `track` was called; the watcher empties it on `+switch-master`.
    sink: Arc<OnceLock<Arc<dyn InvalidationSink>>>,
    /// Tells the watcher to end.
    stop: Arc<AtomicBool>,
    /// Breaker counts of the backends replaced so far.
    retired: (AtomicU64, AtomicU64),
    /// "sentinel <service> via h:p,…", for error messages.
    target: String,
    deadline: Duration,
}

fn address_of(client: &Client) -> String {
    client.get_connection_info().addr().to_string()
}

/// A node's address with the TLS mode of the URL.
fn sentinel_address(host: &str, port: u16, tls: Option<TlsMode>) -> ConnectionAddr {
    match tls {
        None => ConnectionAddr::Tcp(host.to_string(), port),
        Some(mode) => {
            ConnectionAddr::TcpTls { host: host.to_string(), port, insecure: mode == TlsMode::Insecure, tls_params: None }
        }
    }
}

/// Username and password, when given.
fn login(username: Option<&String>, password: Option<&String>) -> RedisConnectionInfo {
    let mut login = RedisConnectionInfo::default();
    if let Some(username) = username {
        login = login.set_username(username);
    }
    if let Some(password) = password {
        login = login.set_password(password);
    }
    login
}

impl SentinelBackend {
    /// Asks the sentinels for the primary and connects to it, each bounded
    /// by the timeouts; starts the `+switch-master` watcher.
    pub fn connect(settings: SentinelSettings) -> Result<Self> {
        install_tls_provider();
        let hosts: Vec<String> = settings.sentinels.iter().map(|(host, port)| format!("{host}:{port}")).collect();
        let target = format!("sentinel {} via {}", settings.service, hosts.join(","));
        if settings.sentinels.is_empty() {
            return Err(Error::invalid("invalid Sentinel URL: no sentinel named"));
        }
        let directory = Arc::new(Directory {
            sentinels: settings.sentinels.iter().map(|(host, port)| sentinel_address(host, *port, settings.tls)).collect(),
            service: settings.service,
            tls: settings.tls,
            certificates: settings.certificates,
            sentinel_login: login(settings.sentinel_username.as_ref(), settings.sentinel_password.as_ref()),
            primary_login: login(settings.username.as_ref(), settings.password.as_ref()).set_db(settings.db),
        });
        let deadline = settings.redis.connect_timeout + settings.redis.response_timeout;
        let mut resolver = Resolver { directory: Arc::clone(&directory), runtime: new_runtime()?, last_attempt: None };
        let primary = resolver.primary(deadline, &target)?;
        let address = address_of(&primary);
        let backend = RedisBackend::with_client(primary, &settings.redis)?;

        let switched = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let sink = Arc::new(OnceLock::new());
        let watcher = Watcher { directory, switched: Arc::clone(&switched), sink: Arc::clone(&sink), stop: Arc::clone(&stop) };
        std::thread::Builder::new()
            .name("rcache-sentinel".into())
            .spawn(move || watcher.run())
            .map_err(|e| Error::new(ErrorKind::Connection, format!("{target}: cannot start the watcher thread: {e}")))?;

        Ok(SentinelBackend {
            current: RwLock::new(Arc::new(Primary { backend, address, generation: 0, gate: OnceLock::new() })),
            resolver: Mutex::new(resolver),
            settings: settings.redis,
            switched,
            sink,
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
        let fresh = Arc::new(Primary { backend, address, generation: current.generation + 1, gate: OnceLock::new() });
        let (trips, skips) = current.backend.breaker_counts();
        self.retired.0.fetch_add(trips, Ordering::Relaxed);
        self.retired.1.fetch_add(skips, Ordering::Relaxed);
        // In this order (see the module documentation): nothing the old
        // primary reports reaches the near cache once it is flushed.
        if let Some(gate) = current.gate.get() {
            gate.close();
        }
        if let Some(sink) = self.sink.get() {
            sink.disconnected();
        }
        *self.current.write() = Arc::clone(&fresh);
        if let Some(sink) = self.sink.get() {
            // Failing here (the new primary refuses tracking) leaves the near
            // cache empty and unfilled; calls go on.
            let _ = self.track_on(&fresh, sink);
        }
        Some(fresh)
    }

    /// Starts tracking on `primary` behind a gate of its own.
    fn track_on(&self, primary: &Primary, sink: &Arc<dyn InvalidationSink>) -> Result<()> {
        let gate = Gate::new(Arc::clone(sink));
        primary.backend.track_with(gate.clone(), Some(Arc::clone(&self.switched)))?;
        let _ = primary.gate.set(gate);
        Ok(())
    }

    /// Runs `operation` on the primary, following a failover as the module says.
    fn call<T>(&self, call: Call, operation: impl Fn(&RedisBackend) -> Result<T>) -> Result<T> {
        if self.switched.load(Ordering::Relaxed) {
            self.refresh(None);
        }
        let primary = self.primary();
        let error = match operation(&primary.backend) {
            Err(error) if failed_over(&error) => error,
            result => return result,
        };
        // Refused by a replica or never sent: it surely did not run.
        let did_not_run = is_read_only(&error) || never_sent(&error);
        let resend = did_not_run || (call.resendable() && error.kind != ErrorKind::UnknownOutcome);
        match self.refresh(Some(primary.generation)) {
            Some(fresh) if resend => operation(&fresh.backend),
            _ if !call.resendable() && !did_not_run => Err(outcome_unknown(error)),
            _ => Err(error),
        }
    }
}

/// The primary is gone or is a primary no more.
fn failed_over(error: &Error) -> bool {
    matches!(error.kind, ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::UnknownOutcome) || is_read_only(error)
}

/// A write refused by a replica: it did nothing. (`ReadOnly:` is how the
/// `redis` crate writes the server's `READONLY` reply, inside a refused
/// transaction too.)
fn is_read_only(error: &Error) -> bool {
    error.message.contains("ReadOnly: ") || error.message.contains("READONLY")
}

/// A failure before the request left: the connection was refused, or the
/// circuit breaker turned the call away (see `Breaker::admit`).
fn never_sent(error: &Error) -> bool {
    error.kind == ErrorKind::Connection
        && (error.message.contains("Connection refused") || error.message.contains(": not tried: "))
}

/// A failure after the request may have reached the server, told as such.
fn outcome_unknown(error: Error) -> Error {
    if error.kind == ErrorKind::UnknownOutcome {
        return error;
    }
    Error::new(ErrorKind::UnknownOutcome, format!("{error} (the request may have run on the old primary; not sent again)"))
}

impl Drop for SentinelBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Subscribes to `+switch-master` on one sentinel after another and flags
/// announcements for our service, until told to stop.
struct Watcher {
    directory: Arc<Directory>,
    switched: Arc<AtomicBool>,
    sink: Arc<OnceLock<Arc<dyn InvalidationSink>>>,
    stop: Arc<AtomicBool>,
}

/// How long the watcher waits for a message before looking at its stop flag.
const WATCH_TICK: Duration = Duration::from_millis(250);

impl Watcher {
    fn run(self) {
        for address in self.directory.sentinels.iter().cycle() {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            // A sentinel that is down or drops us: try the next one shortly.
            let _ = self.listen(address);
            std::thread::sleep(WATCH_TICK);
        }
    }

    fn listen(&self, address: &ConnectionAddr) -> RedisResult<()> {
        let client = self.directory.client(address.clone(), &self.directory.sentinel_login)?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
        let mut pubsub = connection.as_pubsub();
        pubsub.set_read_timeout(Some(WATCH_TICK))?;
        pubsub.subscribe("+switch-master")?;
        while !self.stop.load(Ordering::Relaxed) {
            match pubsub.get_message() {
                // "<service> <old ip> <old port> <new ip> <new port>"
                Ok(message) => {
                    let payload: String = message.get_payload().unwrap_or_default();
                    if payload.split(' ').next() == Some(self.directory.service.as_str()) {
                        self.switched.store(true, Ordering::Relaxed);
                        // Near hits never reach the backend: the next read misses and switches.
                        if let Some(sink) = self.sink.get() {
                            sink.invalidate_all();
                        }
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

    fn track(&self, sink: Arc<dyn InvalidationSink>) -> Result<()> {
        // No switch while tracking starts on the current primary.
        let _resolver = self.resolver.lock();
        if self.sink.set(Arc::clone(&sink)).is_err() {
            return Err(Error::invalid("changes are reported already"));
        }
        self.track_on(&self.primary(), &sink)
    }

    /// On the current primary's tracking connection while its reports reach
    /// the near cache; `None` otherwise: while a switch announced is not
    /// looked up yet, and when the primary cannot be reached (the caller's
    /// untracked read then follows the failover).
    fn read_tracked(&self, keys: &[Vec<u8>], read: TrackedRead<'_>) -> Result<Option<TrackedReads>> {
        if self.switched.load(Ordering::Relaxed) {
            self.refresh(None);
        }
        let primary = self.primary();
        if !primary.tracked() || self.switched.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match primary.backend.read_tracked(keys, read) {
            Err(error) if failed_over(&error) => {
                self.refresh(Some(primary.generation));
                Ok(None)
            }
            result => result,
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.call(Call::Get, |backend| backend.get(key))
    }

    fn get_with_ttl(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Remaining)>> {
        self.call(Call::GetWithTtl, |backend| backend.get_with_ttl(key))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.call(Call::GetMany, |backend| backend.get_many(keys))
    }

    fn set(&self, key: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<()> {
        self.call(Call::Set, |backend| backend.set(key, value, expiry))
    }

    fn compare_and_set(&self, key: &[u8], expected: &[u8], value: &[u8], expiry: WriteExpiry) -> Result<bool> {
        self.call(Call::CompareAndSet, |backend| backend.compare_and_set(key, expected, value, expiry))
    }

    fn set_many(&self, entries: &[(Vec<u8>, &[u8])], expiry: Expiry) -> Result<()> {
        self.call(Call::SetMany, |backend| backend.set_many(entries, expiry))
    }

    fn set_tagged(&self, key: &[u8], value: &[u8], expiry: Expiry, tags: &[Vec<u8>]) -> Result<()> {
        self.call(Call::SetTagged, |backend| backend.set_tagged(key, value, expiry, tags))
    }

    fn add_tags(&self, key: &[u8], tags: &[Vec<u8>]) -> Result<bool> {
        self.call(Call::AddTags, |backend| backend.add_tags(key, tags))
    }

    fn invalidate_tags(&self, tags: &[Vec<u8>]) -> Result<()> {
        self.call(Call::InvalidateTags, |backend| backend.invalidate_tags(tags))
    }

    fn clear(&self, pattern: &[u8]) -> Result<u64> {
        self.call(Call::Clear, |backend| backend.clear(pattern))
    }

    fn keys(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.call(Call::Scan, |backend| backend.keys(pattern))
    }

    fn hash_get(&self, key: &[u8]) -> Result<Option<HashFields>> {
        self.call(Call::HashGet, |backend| backend.hash_get(key))
    }

    fn hash_set(&self, key: &[u8], fields: &[(&[u8], &[u8])], expiry: WriteExpiry, condition: WriteCondition) -> Result<bool> {
        self.call(Call::hash_set(condition), |backend| backend.hash_set(key, fields, expiry, condition))
    }

    fn server_info(&self) -> Result<Vec<u8>> {
        self.call(Call::ServerInfo, |backend| backend.server_info())
    }

    fn get_for_refresh(&self, key: &[u8], meta_key: &[u8]) -> Result<Option<ForRefresh>> {
        self.call(Call::GetForRefresh, |backend| backend.get_for_refresh(key, meta_key))
    }

    fn lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        self.call(Call::Lock, |backend| backend.lock(key, owner, lease))
    }

    fn extend_lock(&self, key: &[u8], owner: &[u8], lease: Duration) -> Result<bool> {
        self.call(Call::ExtendLock, |backend| backend.extend_lock(key, owner, lease))
    }

    fn unlock(&self, key: &[u8], owner: &[u8]) -> Result<bool> {
        self.call(Call::Unlock, |backend| backend.unlock(key, owner))
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        self.call(Call::Delete, |backend| backend.delete(key))
    }

    fn exists(&self, key: &[u8]) -> Result<bool> {
        self.call(Call::Exists, |backend| backend.exists(key))
    }

    fn remaining(&self, key: &[u8]) -> Result<Remaining> {
        self.call(Call::Remaining, |backend| backend.remaining(key))
    }

    fn expire(&self, key: &[u8], expiry: Expiry) -> Result<bool> {
        self.call(Call::Expire, |backend| backend.expire(key, expiry))
    }

    fn increment(&self, key: &[u8], delta: i64, expiry_if_new: Expiry) -> Result<i64> {
        self.call(Call::Increment, |backend| backend.increment(key, delta, expiry_if_new))
    }

    fn session_create(&self, key: &[u8], secret: &[u8], fields: &[(&[u8], &[u8])], expiry: Expiry, now_ms: u64) -> Result<bool> {
        self.call(Call::SessionCreate, |backend| backend.session_create(key, secret, fields, expiry, now_ms))
    }

    fn session_load(&self, key: &[u8], secret: &[u8], touch: Option<Expiry>, now_ms: u64) -> Result<Option<SessionRecord>> {
        self.call(Call::SessionLoad, |backend| backend.session_load(key, secret, touch, now_ms))
    }

    fn session_save(&self, save: SessionSave<'_>) -> Result<SaveOutcome> {
        self.call(Call::SessionSave, |backend| backend.session_save(save))
    }

    fn session_touch(&self, key: &[u8], secret: &[u8], expiry: Expiry, now_ms: u64) -> Result<bool> {
        self.call(Call::SessionTouch, |backend| backend.session_touch(key, secret, expiry, now_ms))
    }

    fn session_destroy(&self, key: &[u8], secret: &[u8]) -> Result<bool> {
        self.call(Call::SessionDestroy, |backend| backend.session_destroy(key, secret))
    }

    fn session_list(&self, pattern: &[u8]) -> Result<Vec<(Vec<u8>, SessionRecord)>> {
        self.call(Call::SessionList, |backend| backend.session_list(pattern))
    }

    fn session_purge(&self, pattern: &[u8], idle_since_ms: u64) -> Result<u64> {
        self.call(Call::SessionPurge, |backend| backend.session_purge(pattern, idle_since_ms))
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

    fn answer(sentinel: usize, port: u16, config_epoch: u64) -> Answer {
        Answer { sentinel, host: "10.0.0.1".into(), port, config_epoch }
    }

    #[test]
    fn a_majority_of_the_configured_sentinels_outvotes_a_higher_epoch() {
        let answers = [answer(0, 1, 9), answer(1, 2, 1), answer(2, 2, 1), answer(3, 2, 1)];
        assert_eq!(choose(&answers, 4), Some(("10.0.0.1", 2)));
        // Half is not a majority: the highest epoch decides.
        assert_eq!(choose(&answers[..3], 4), Some(("10.0.0.1", 1)));
    }

    #[test]
    fn without_a_majority_the_highest_epoch_wins() {
        // Two of five configured sentinels answer, and disagree.
        assert_eq!(choose(&[answer(0, 1, 3), answer(1, 2, 4)], 5), Some(("10.0.0.1", 2)));
        // Same epoch: more sentinels, then the first listed.
        assert_eq!(choose(&[answer(0, 1, 4), answer(1, 2, 4), answer(2, 2, 4)], 7), Some(("10.0.0.1", 2)));
        assert_eq!(choose(&[answer(1, 1, 4), answer(0, 2, 4)], 5), Some(("10.0.0.1", 2)));
        assert_eq!(choose(&[], 3), None);
    }

    #[test]
    fn a_call_that_may_have_run_is_told_apart_from_one_never_sent() {
        let refused = Error::new(ErrorKind::Connection, "127.0.0.1:1: Connection refused (os error 111)");
        let breaker = Error::new(
            ErrorKind::Connection,
            "127.0.0.1:1: not tried: 5 consecutive failures opened the circuit breaker for 1000 ms",
        );
        let dropped = Error::new(ErrorKind::Connection, "127.0.0.1:1: broken pipe");
        let late = Error::new(ErrorKind::Timeout, "127.0.0.1:1: no reply within 500 ms");
        assert!(never_sent(&refused) && never_sent(&breaker));
        assert!(!never_sent(&dropped) && !never_sent(&late));
        assert_eq!(outcome_unknown(late).kind, ErrorKind::UnknownOutcome);
    }
}
