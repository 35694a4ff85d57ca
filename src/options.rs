//! Client options and the URL schemes that select a backend.

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::MemoryLimits;
use crate::error::{Error, Result};
use crate::near::{NEAR_DEFAULT_BYTES, NearLimits};

/// The largest TTL accepted: 100 years, far inside what Redis and `Instant` can represent.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Redis refuses bulk strings over 512 MiB.
pub const MAX_VALUE_LIMIT: usize = 512 * 1024 * 1024;

/// Settings of one client handle. `Options::default()` gives sensible values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for a reply once a command is sent.
    pub response_timeout: Duration,
    /// Prepended to every key, isolating applications that share a database.
    pub key_prefix: Vec<u8>,
    /// TTL of entries stored without an explicit one; `None` keeps them until evicted.
    pub default_ttl: Option<Duration>,
    /// Longest key accepted, prefix excluded.
    pub max_key_bytes: usize,
    /// Longest value accepted.
    pub max_value_bytes: usize,
    /// Size bound of the embedded backend.
    pub memory_limits: MemoryLimits,
    /// When the server cannot be reached or answers too late: reads are
    /// misses, writes of entries are dropped, get-or-compute computes without
    /// caching; each such call is counted in `Stats::fail_opens`. Deletes,
    /// invalidations, clears and counters still report the error, and so do
    /// the calls whose answer the caller acts on: compare-and-set, hash-set,
    /// locks, key listing and server info.
    pub fail_open: bool,
    /// After this many consecutive connection failures or timeouts, calls
    /// skip the server for `breaker_cooldown` (failing at once), then one
    /// probe call goes through.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// Fail-safe of get-or-compute for calls that do not choose their own
    /// (`ComputeOptions::fail_safe`); `FailSafe::OFF` by default.
    pub fail_safe: FailSafe,
    /// Most stale copies kept in process memory, served by fail-safe while
    /// the server is unreachable; 0 keeps none.
    pub stale_copies: usize,
    /// Most deletes, tag invalidations and clears kept for replay after
    /// they failed because the server could not be reached (duplicates
    /// count once); beyond it the whole namespace is cleared on recovery.
    /// 0 keeps none.
    pub recovery_queue: usize,
    /// TTL jitter, in percent: each entry written with a TTL lives up to this
    /// much less (uniformly at random, at least 1 ms), so that entries written
    /// together do not expire together. 0 (the default) to 100. Sessions and
    /// locks keep their exact lifetimes.
    pub ttl_jitter_percent: u8,
}

/// Refuses a TTL jitter over 100%.
pub(crate) fn check_jitter(percent: u8) -> Result<()> {
    if percent > 100 {
        return Err(Error::invalid(format!("TTL jitter must be between 0 and 100 percent, not {percent}")));
    }
    Ok(())
}

/// Fail-safe: get-or-compute keeps a copy of each value it stores for
/// `max_stale` past the value's expiry, and returns it, marked stale, when
/// the computation fails or times out or the server is unreachable; then it
/// leaves the key's computation alone for `throttle`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailSafe {
    /// How long past its expiry a value may still be served as stale; zero turns fail-safe off.
    pub max_stale: Duration,
    /// After a failure served stale, how long every caller gets the stale
    /// value without computing; zero computes again at the next call.
    pub throttle: Duration,
}

impl FailSafe {
    pub const OFF: FailSafe = FailSafe { max_stale: Duration::ZERO, throttle: Duration::ZERO };

    pub fn is_on(&self) -> bool {
        !self.max_stale.is_zero()
    }

    /// Refuses durations no backend can store.
    pub fn validate(&self) -> Result<()> {
        if self.max_stale > MAX_TTL || self.throttle > MAX_TTL {
            return Err(Error::invalid("fail-safe max_stale and throttle must be at most 100 years"));
        }
        Ok(())
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_millis(1000),
            response_timeout: Duration::from_millis(1000),
            key_prefix: Vec::new(),
            default_ttl: None,
            max_key_bytes: 64 * 1024,
            max_value_bytes: 64 * 1024 * 1024,
            memory_limits: MemoryLimits { max_entries: 1_000_000, max_bytes: 256 * 1024 * 1024 },
            fail_open: false,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_millis(500),
            fail_safe: FailSafe::OFF,
            stale_copies: 10_000,
            recovery_queue: 10_000,
            ttl_jitter_percent: 0,
        }
    }
}

impl Options {
    /// Refuses settings no backend can honour.
    pub fn validate(&self) -> Result<()> {
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(Error::invalid("timeouts must be greater than zero"));
        }
        if self.max_key_bytes == 0 || self.max_value_bytes == 0 {
            return Err(Error::invalid("key and value limits must be greater than zero"));
        }
        if self.max_value_bytes > MAX_VALUE_LIMIT {
            return Err(Error::invalid(format!("max_value_bytes may be at most {MAX_VALUE_LIMIT}")));
        }
        if self.memory_limits.max_entries == 0 || self.memory_limits.max_bytes == 0 {
            return Err(Error::invalid("memory limits must be greater than zero"));
        }
        if self.breaker_threshold == 0 || self.breaker_cooldown.is_zero() {
            return Err(Error::invalid("breaker threshold and cool-down must be greater than zero"));
        }
        if self.default_ttl.is_some_and(|ttl| ttl.is_zero() || ttl > MAX_TTL) {
            return Err(Error::invalid("default TTL must be between 1 ms and 100 years"));
        }
        self.fail_safe.validate()?;
        check_jitter(self.ttl_jitter_percent)?;
        Ok(())
    }
}

/// PEM files named in a URL's query (`tls_ca`, `tls_cert`, `tls_key`), read
/// when the client connects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate authority that signed the servers' certificates,
    /// trusted instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// The client's certificate and its key, for servers that check clients
    /// (`tls-auth-clients yes`); both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }
}

/// The servers of a Sentinel or Cluster URL and how to reach them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Servers {
    /// (host, port) of each server the URL lists, in order.
    pub hosts: Vec<(String, u16)>,
    /// ACL user and password for the data nodes.
    pub username: Option<String>,
    pub password: Option<String>,
    /// `rediss+…`: TLS to every server.
    pub tls: bool,
    /// `#insecure`: TLS without verifying certificates (test servers only).
    pub insecure: bool,
    pub tls_files: TlsFiles,
}

/// The backend a URL asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Memory,
    /// One server: the URL as the `redis` crate reads it, without rcache's own
    /// query parameters; the TLS files it names, and the near cache's bounds
    /// when one is asked for.
    Redis {
        url: String,
        tls_files: TlsFiles,
        near: Option<NearLimits>,
    },
    /// A primary found through Sentinel: `hosts` are the sentinels.
    Sentinel {
        servers: Servers,
        service: String,
        db: i64,
        /// Credentials of the sentinels themselves, when they require any.
        sentinel_username: Option<String>,
        sentinel_password: Option<String>,
        near: Option<NearLimits>,
    },
    /// A Redis Cluster: `hosts` are the nodes to discover it from.
    Cluster {
        servers: Servers,
        near: Option<NearLimits>,
    },
}

/// URL query parameters read by rcache itself, never passed to the `redis` crate.
const NEAR_ENTRIES: &str = "near_cache";
const NEAR_BYTES: &str = "near_cache_bytes";
const NEAR_STALENESS: &str = "near_cache_staleness_ms";
const NEAR_MODE: &str = "near_cache_mode";
/// The shortest `near_cache_staleness_ms`: half of it between two pings of the tracking connection.
const NEAR_MIN_STALENESS_MS: u64 = 10;

/// URL used when none is configured: the embedded backend.
pub const DEFAULT_URL: &str = "memory://";

impl Target {
    /// Reads the scheme of `url` and what rcache itself interprets; the
    /// `redis` crate checks the rest of a standalone URL.
    pub fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(Error::invalid(format!(
                "invalid URL {url:?}: expected scheme://…, e.g. memory:// or redis://host:6379/0"
            )));
        };
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "memory" if rest.is_empty() || rest == "/" => Ok(Target::Memory),
            "memory" if rest.contains(NEAR_ENTRIES) => Err(Error::invalid(format!(
                "invalid URL {url:?}: memory:// is in process already and takes no near cache; \
                 near_cache applies to redis://, rediss:// and unix:// URLs"
            ))),
            "memory" => Err(Error::invalid(format!(
                "invalid URL {url:?}: memory:// takes no host, path or parameters; size it with the options"
            ))),
            "redis" | "rediss" | "unix" | "redis+unix" => {
                let (url, near) = take_near_parameters(url)?;
                standalone(&url, &scheme, near)
            }
            "redis+sentinel" | "rediss+sentinel" | "redis+cluster" | "rediss+cluster" => {
                let (url, near) = take_near_parameters(url)?;
                let rest = url.split_once("://").map_or("", |(_, rest)| rest);
                match scheme.ends_with("sentinel") {
                    true => sentinel(&url, &scheme, rest, near),
                    false => cluster(&url, &scheme, rest, near),
                }
            }
            _ => Err(Error::invalid(format!(
                "unknown URL scheme {scheme:?}: use memory://, redis://, rediss://, unix://, \
                 redis+sentinel://, redis+cluster:// (or their rediss+ forms)"
            ))),
        }
    }
}

/// A standalone URL: the TLS file parameters taken out, the rest left to the `redis` crate.
fn standalone(url: &str, scheme: &str, near: Option<NearLimits>) -> Result<Target> {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let Some((address, query)) = base.split_once('?') else {
        return Ok(Target::Redis { url: url.to_string(), tls_files: TlsFiles::default(), near });
    };
    let (tls_files, kept) = take_tls_files(query, url)?;
    if !tls_files.is_empty() && scheme != "rediss" {
        return Err(Error::invalid(format!("invalid URL {url:?}: TLS files need the rediss:// scheme")));
    }
    let mut url = address.to_string();
    if !kept.is_empty() {
        url = format!("{url}?{}", kept.join("&"));
    }
    if let Some(fragment) = fragment {
        url = format!("{url}#{fragment}");
    }
    Ok(Target::Redis { url, tls_files, near })
}

/// The TLS files a query names, and its other `name=value` pairs as they are.
fn take_tls_files<'q>(query: &'q str, url: &str) -> Result<(TlsFiles, Vec<&'q str>)> {
    let mut files = TlsFiles::default();
    let mut others = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "tls_ca" => &mut files.ca,
            "tls_cert" => &mut files.cert,
            "tls_key" => &mut files.key,
            _ => {
                others.push(pair);
                continue;
            }
        };
        let path = percent_decode(value, url)?;
        if path.is_empty() {
            return Err(Error::invalid(format!("invalid URL {url:?}: {name} needs a file path")));
        }
        *slot = Some(PathBuf::from(path));
    }
    Ok((files, others))
}

/// A URL's query parameters other than the TLS files, decoded.
type Parameters = Vec<(String, String)>;

/// `[user:password@]host:port,host:port[/path][?query][#insecure]` of a
/// Sentinel or Cluster URL: the servers, the path and the query pairs rcache
/// does not know by itself.
fn servers(url: &str, scheme: &str, rest: &str, default_port: u16) -> Result<(Servers, String, Parameters)> {
    let invalid = |why: &str| Error::invalid(format!("invalid URL {url:?}: {why}"));
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    // The password may contain '@' only percent-encoded; the last '@' ends the credentials.
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (Some(credentials), hosts),
        None => (None, authority),
    };
    let (username, password) = match credentials {
        None => (None, None),
        Some(credentials) => {
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            let user = percent_decode(user, url)?;
            let password = percent_decode(password, url)?;
            (Some(user).filter(|user| !user.is_empty()), Some(password).filter(|password| !password.is_empty()))
        }
    };
    let mut list = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err(invalid("expected host:port[,host:port…]"));
        }
        let (name, port) = match host.strip_prefix('[') {
            // [IPv6]:port
            Some(bracketed) => {
                let (name, after) = bracketed.split_once(']').ok_or_else(|| invalid("unclosed [ in a host"))?;
                (name, after.strip_prefix(':'))
            }
            None => match host.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            },
        };
        let port = match port {
            None => default_port,
            Some(port) => port.parse().map_err(|_| invalid(&format!("bad port in {host:?}")))?,
        };
        if name.is_empty() {
            return Err(invalid(&format!("no host name in {host:?}")));
        }
        list.push((name.to_string(), port));
    }
    let tls = scheme.starts_with("rediss");
    let insecure = match fragment {
        None => false,
        Some("insecure") if tls => true,
        Some(_) => return Err(invalid("only #insecure is supported as URL fragment, with rediss+")),
    };
    let (tls_files, pairs) = take_tls_files(query, url)?;
    let mut others = Vec::new();
    for pair in pairs {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        others.push((name.to_string(), percent_decode(value, url)?));
    }
    if !tls_files.is_empty() && !tls {
        return Err(invalid("TLS files need a rediss+ scheme"));
    }
    let servers = Servers { hosts: list, username, password, tls, insecure, tls_files };
    Ok((servers, path.to_string(), others))
}

/// `redis+sentinel://[user:password@]host:port,host:port/<service>[/<db>]`
/// with optional `sentinel_username` and `sentinel_password` query parameters
/// (the near cache's were taken out already).
fn sentinel(url: &str, scheme: &str, rest: &str, near: Option<NearLimits>) -> Result<Target> {
    let invalid = |why: &str| Error::invalid(format!("invalid URL {url:?}: {why}"));
    let (servers, path, query) = servers(url, scheme, rest, 26379)?;
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = percent_decode(parts.next().unwrap_or(""), url)?;
    if service.is_empty() {
        return Err(invalid("a Sentinel URL names its service: redis+sentinel://host:26379,host:26379/mymaster[/db]"));
    }
    let db = match parts.next().map(|db| db.trim_end_matches('/')).filter(|db| !db.is_empty()) {
        None => 0,
        Some(db) => db.parse().map_err(|_| invalid(&format!("bad database number {db:?}")))?,
    };
    let (mut sentinel_username, mut sentinel_password) = (None, None);
    for (name, value) in query {
        match name.as_str() {
            "sentinel_username" => sentinel_username = Some(value),
            "sentinel_password" => sentinel_password = Some(value),
            _ => return Err(invalid(&format!("unknown parameter {name:?}"))),
        }
    }
    Ok(Target::Sentinel { servers, service, db, sentinel_username, sentinel_password, near })
}

/// `redis+cluster://[user:password@]host:port,host:port` (a Cluster has database 0 only).
fn cluster(url: &str, scheme: &str, rest: &str, near: Option<NearLimits>) -> Result<Target> {
    let invalid = |why: &str| Error::invalid(format!("invalid URL {url:?}: {why}"));
    let (servers, path, query) = servers(url, scheme, rest, 6379)?;
    if !matches!(path.as_str(), "" | "/" | "/0") {
        return Err(invalid("a Cluster has database 0 only: no path after the hosts"));
    }
    if let Some((name, _)) = query.first() {
        return Err(invalid(&format!("unknown parameter {name:?}")));
    }
    Ok(Target::Cluster { servers, near })
}

/// Decodes `%XX` escapes (user names, passwords, paths may need them).
fn percent_decode(text: &str, url: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok());
            let Some(byte) = hex else {
                return Err(Error::invalid(format!("invalid URL {url:?}: bad %-escape")));
            };
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::invalid(format!("invalid URL {url:?}: %-escapes must make UTF-8 text")))
}

/// Splits the near cache's parameters off a Redis URL: `near_cache=<entries>`
/// turns it on (0 leaves it off), `near_cache_bytes=<bytes>` bounds its size
/// (default 64 MiB), `near_cache_staleness_ms=<ms>` bounds how long copies
/// are served after the tracking connection falls silent, and
/// `near_cache_mode=bcast` asks for every change under the key prefix
/// (`keys`, the default: changes of the keys read). The other parameters
/// stay, in their order, and so does a `#fragment` (the `redis` crate reads
/// `#insecure`).
fn take_near_parameters(url: &str) -> Result<(String, Option<NearLimits>)> {
    let (url, fragment) = url.split_at(url.find('#').unwrap_or(url.len()));
    let Some((base, query)) = url.split_once('?') else { return Ok((format!("{url}{fragment}"), None)) };
    let mut entries = None;
    let mut bytes = None;
    let mut staleness = None;
    let mut broadcast = None;
    let mut kept = Vec::new();
    for parameter in query.split('&') {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let slot = match name {
            NEAR_ENTRIES => &mut entries,
            NEAR_BYTES => &mut bytes,
            NEAR_STALENESS => &mut staleness,
            NEAR_MODE => {
                if broadcast.is_some() {
                    return Err(Error::invalid(format!("invalid URL: {name} is given twice")));
                }
                broadcast = Some(match value {
                    "keys" => false,
                    "bcast" => true,
                    _ => {
                        return Err(Error::invalid(format!(
                            "invalid URL: {name}={value:?} is not a mode (keys: changes of the keys read; \
                             bcast: every change under the key prefix)"
                        )));
                    }
                });
                continue;
            }
            _ => {
                kept.push(parameter);
                continue;
            }
        };
        if slot.is_some() {
            return Err(Error::invalid(format!("invalid URL: {name} is given twice")));
        }
        let number = value.parse::<usize>().map_err(|_| {
            Error::invalid(format!(
                "invalid URL: {name}={value:?} is not a number (near_cache=<entries>&near_cache_bytes=<bytes>)"
            ))
        })?;
        *slot = Some(number);
    }
    let url = match kept.is_empty() {
        true => format!("{base}{fragment}"),
        false => format!("{base}?{}{fragment}", kept.join("&")),
    };
    if entries.is_none() && (staleness.is_some() || broadcast.is_some()) {
        return Err(Error::invalid(format!("invalid URL: {NEAR_STALENESS} and {NEAR_MODE} need near_cache=<entries>")));
    }
    if staleness.is_some_and(|ms| (ms as u64) < NEAR_MIN_STALENESS_MS) {
        return Err(Error::invalid(format!("invalid URL: {NEAR_STALENESS} must be at least {NEAR_MIN_STALENESS_MS}")));
    }
    let near = match (entries, bytes) {
        (None, None) | (Some(0), _) => None,
        (None, Some(_)) => return Err(Error::invalid("invalid URL: near_cache_bytes needs near_cache=<entries>")),
        (Some(_), Some(0)) => return Err(Error::invalid("invalid URL: near_cache_bytes must be greater than zero")),
        (Some(max_entries), bytes) => Some(NearLimits {
            max_staleness: staleness.map(|ms| Duration::from_millis(ms as u64)),
            broadcast: broadcast.unwrap_or(false),
            ..NearLimits::new(max_entries, bytes.unwrap_or(NEAR_DEFAULT_BYTES))
        }),
    };
    Ok((url, near))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn servers_of(target: Target) -> Servers {
        match target {
            Target::Sentinel { servers, .. } | Target::Cluster { servers, .. } => servers,
            other => panic!("{other:?}"),
        }
    }

    fn near(url: &str) -> Result<(String, Option<NearLimits>)> {
        match Target::parse(url)? {
            Target::Redis { url, near, .. } => Ok((url, near)),
            other => panic!("not a Redis URL: {other:?}"),
        }
    }

    #[test]
    fn sentinel_urls() {
        let target = Target::parse("redis+sentinel://app:p%40ss@h1:26380,[::1]:26381,h3/mymaster/2?sentinel_password=s").unwrap();
        let Target::Sentinel { servers, service, db, sentinel_username, sentinel_password, near } = target else { panic!() };
        assert_eq!(near, None);
        assert_eq!(servers.hosts, vec![("h1".into(), 26380), ("::1".into(), 26381), ("h3".into(), 26379)]);
        assert_eq!((servers.username.as_deref(), servers.password.as_deref()), (Some("app"), Some("p@ss")));
        assert_eq!((service.as_str(), db), ("mymaster", 2));
        assert_eq!((sentinel_username, sentinel_password.as_deref()), (None, Some("s")));
        assert!(!servers.tls);
        let tls = servers_of(Target::parse("rediss+sentinel://h:1/m?tls_ca=/ca.pem#insecure").unwrap());
        assert!(tls.tls && tls.insecure);
        assert_eq!(tls.tls_files.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h:x/m",
            "redis+sentinel://h:1/m/x",
            "redis+sentinel://h:1/m?bogus=1",
            "redis+sentinel://h:1/m?tls_ca=/ca.pem",
            "redis+sentinel://,h/m",
        ] {
            assert_eq!(Target::parse(bad).unwrap_err().kind, ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn sentinel_urls_take_a_near_cache() {
        let parsed = Target::parse("rediss+sentinel://h:1/m/2?near_cache=9&sentinel_password=s&near_cache_bytes=99#insecure");
        let Target::Sentinel { servers, service, db, sentinel_password, near, .. } = parsed.unwrap() else { panic!() };
        assert_eq!(near, Some(NearLimits::new(9, 99)));
        assert_eq!((service.as_str(), db, sentinel_password.as_deref()), ("m", 2, Some("s")));
        assert!(servers.tls && servers.insecure);
        for bad in ["redis+sentinel://h:1/m?near_cache=x", "redis+sentinel://h:1/m?near_cache_bytes=10"] {
            assert_eq!(Target::parse(bad).unwrap_err().kind, ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn cluster_urls_take_a_near_cache() {
        let Target::Cluster { servers, near } = Target::parse("redis+cluster://a:1,b:2?near_cache=5").unwrap() else { panic!() };
        assert_eq!(near, Some(NearLimits::new(5, NEAR_DEFAULT_BYTES)));
        assert_eq!(servers.hosts.len(), 2);
        assert_eq!(Target::parse("redis+cluster://a:1?near_cache=5&x=1").unwrap_err().kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn cluster_urls() {
        let servers = servers_of(Target::parse("rediss+cluster://:secret@a:7000,b:7001?tls_cert=c.pem&tls_key=k.pem").unwrap());
        assert_eq!(servers.hosts, vec![("a".into(), 7000), ("b".into(), 7001)]);
        assert_eq!((servers.username, servers.password.as_deref()), (None, Some("secret")));
        assert!(servers.tls && !servers.insecure);
        assert_eq!(servers.tls_files.key.as_deref(), Some(std::path::Path::new("k.pem")));
        assert_eq!(servers_of(Target::parse("redis+cluster://a").unwrap()).hosts, vec![("a".into(), 6379)]);
        for bad in ["redis+cluster://a:1/3", "redis+cluster://a:1?x=1", "redis+cluster://a:1#insecure"] {
            assert_eq!(Target::parse(bad).unwrap_err().kind, ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn standalone_urls_keep_their_own_parameters() {
        let parsed = Target::parse("rediss://h:1/0?protocol=resp3&tls_ca=%2Ftmp%2Fca.pem#insecure").unwrap();
        let Target::Redis { url, tls_files, near } = parsed else { panic!() };
        assert_eq!(near, None);
        assert_eq!(url, "rediss://h:1/0?protocol=resp3#insecure");
        assert_eq!(tls_files.ca.as_deref(), Some(std::path::Path::new("/tmp/ca.pem")));
        assert_eq!(
            Target::parse("redis://h/0").unwrap(),
            Target::Redis { url: "redis://h/0".into(), tls_files: TlsFiles::default(), near: None }
        );
        let parsed = Target::parse("rediss://h:1/0?near_cache=9&tls_ca=%2Fca.pem#insecure").unwrap();
        let Target::Redis { url, tls_files, near } = parsed else { panic!() };
        assert_eq!(url, "rediss://h:1/0#insecure");
        assert_eq!(tls_files.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(near.map(|near| near.max_entries), Some(9));
        assert_eq!(Target::parse("redis://h/0?tls_ca=x").unwrap_err().kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn near_cache_staleness_and_mode_are_read_and_checked() {
        let (url, near_limits) = near("redis://h/0?near_cache_mode=bcast&near_cache=5&near_cache_staleness_ms=250&x=1").unwrap();
        assert_eq!(url, "redis://h/0?x=1");
        let expected = NearLimits {
            max_staleness: Some(Duration::from_millis(250)),
            broadcast: true,
            ..NearLimits::new(5, NEAR_DEFAULT_BYTES)
        };
        assert_eq!(near_limits, Some(expected));
        assert!(!near("redis://h/0?near_cache=5&near_cache_mode=keys").unwrap().1.unwrap().broadcast);
        for bad in [
            "redis://h?near_cache_staleness_ms=100",
            "redis://h?near_cache_mode=bcast",
            "redis://h?near_cache=5&near_cache_staleness_ms=9",
            "redis://h?near_cache=5&near_cache_staleness_ms=soon",
            "redis://h?near_cache=5&near_cache_staleness_ms=100&near_cache_staleness_ms=100",
            "redis://h?near_cache=5&near_cache_mode=prefix",
            "redis://h?near_cache=5&near_cache_mode=bcast&near_cache_mode=bcast",
        ] {
            assert_eq!(near(bad).unwrap_err().kind, ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn near_cache_parameters_are_read_and_taken_out() {
        let limits = |max_entries, max_bytes| Some(NearLimits::new(max_entries, max_bytes));
        assert_eq!(near("redis://h:1/0").unwrap(), ("redis://h:1/0".into(), None));
        assert_eq!(
            near("redis://h:1/0?near_cache=100&near_cache_bytes=5000").unwrap(),
            ("redis://h:1/0".into(), limits(100, 5000))
        );
        assert_eq!(
            near("redis://h/0?protocol=resp3&near_cache=7&x=y").unwrap(),
            ("redis://h/0?protocol=resp3&x=y".into(), limits(7, NEAR_DEFAULT_BYTES))
        );
        assert_eq!(near("unix:///tmp/s.sock?db=2&near_cache=0").unwrap(), ("unix:///tmp/s.sock?db=2".into(), None));
        assert_eq!(
            near("rediss://h/0?near_cache=5#insecure").unwrap(),
            ("rediss://h/0#insecure".into(), limits(5, NEAR_DEFAULT_BYTES))
        );
        assert_eq!(near("rediss://h/0#insecure").unwrap(), ("rediss://h/0#insecure".into(), None));
        for bad in [
            "redis://h?near_cache=x",
            "redis://h?near_cache=-1",
            "redis://h?near_cache=1&near_cache=2",
            "redis://h?near_cache_bytes=10",
            "redis://h?near_cache=10&near_cache_bytes=0",
            "memory://?near_cache=10",
        ] {
            assert_eq!(near(bad).unwrap_err().kind, ErrorKind::InvalidArgument, "{bad}");
        }
    }
}
