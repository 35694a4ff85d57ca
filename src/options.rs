//! Client options and the URL schemes that select a backend.

use std::time::Duration;

use crate::backend::MemoryLimits;
use crate::error::{Error, ErrorKind, Result};
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
        Ok(())
    }
}

/// The backend a URL asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Memory,
    /// The URL for the `redis` crate (rcache's own parameters taken out),
    /// and the near cache's bounds when one is asked for.
    Redis { url: String, near: Option<NearLimits> },
}

/// URL query parameters read by rcache itself, never passed to the `redis` crate.
const NEAR_ENTRIES: &str = "near_cache";
const NEAR_BYTES: &str = "near_cache_bytes";

/// URL used when none is configured: the embedded backend.
pub const DEFAULT_URL: &str = "memory://";

impl Target {
    /// Reads the scheme of `url`; the backend itself checks the rest.
    pub fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(Error::invalid(format!(
                "invalid URL {url:?}: expected scheme://…, e.g. memory:// or redis://host:6379/0"
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
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
                Ok(Target::Redis { url, near })
            }
            "redis+sentinel" | "redis+cluster" => Err(Error::new(
                ErrorKind::Unsupported,
                format!("{scheme}:// is not supported by this version of rcache"),
            )),
            _ => Err(Error::invalid(format!(
                "unknown URL scheme {scheme:?}: use memory://, redis://, rediss:// or unix://"
            ))),
        }
    }
}

/// Splits the near cache's parameters off a Redis URL: `near_cache=<entries>`
/// turns it on (0 leaves it off), `near_cache_bytes=<bytes>` bounds its size
/// (default 64 MiB). The other parameters stay, in their order, and so does a
/// `#fragment` (the `redis` crate reads `#insecure`).
fn take_near_parameters(url: &str) -> Result<(String, Option<NearLimits>)> {
    let (url, fragment) = url.split_at(url.find('#').unwrap_or(url.len()));
    let Some((base, query)) = url.split_once('?') else { return Ok((format!("{url}{fragment}"), None)) };
    let mut entries = None;
    let mut bytes = None;
    let mut kept = Vec::new();
    for parameter in query.split('&') {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let slot = match name {
            NEAR_ENTRIES => &mut entries,
            NEAR_BYTES => &mut bytes,
            _ => {
                kept.push(parameter);
                continue;
            }
        };
        if slot.is_some() {
            return Err(Error::invalid(format!("invalid URL: {name} is given twice")));
        }
        let number = value.parse::<usize>().map_err(|_| {
            Error::invalid(format!("invalid URL: {name}={value:?} is not a number (near_cache=<entries>&near_cache_bytes=<bytes>)"))
        })?;
        *slot = Some(number);
    }
    let url = match kept.is_empty() {
        true => format!("{base}{fragment}"),
        false => format!("{base}?{}{fragment}", kept.join("&")),
    };
    let near = match (entries, bytes) {
        (None, None) | (Some(0), _) => None,
        (None, Some(_)) => return Err(Error::invalid("invalid URL: near_cache_bytes needs near_cache=<entries>")),
        (Some(_), Some(0)) => return Err(Error::invalid("invalid URL: near_cache_bytes must be greater than zero")),
        (Some(max_entries), bytes) => Some(NearLimits { max_entries, max_bytes: bytes.unwrap_or(NEAR_DEFAULT_BYTES) }),
    };
    Ok((url, near))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(url: &str) -> Result<(String, Option<NearLimits>)> {
        match Target::parse(url)? {
            Target::Redis { url, near } => Ok((url, near)),
            Target::Memory => panic!("not a Redis URL"),
        }
    }

    #[test]
    fn near_cache_parameters_are_read_and_taken_out() {
        let limits = |max_entries, max_bytes| Some(NearLimits { max_entries, max_bytes });
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
