//! How values, TTLs and errors cross the wire: the helpers every Redis
//! topology shares.

use std::borrow::Cow;
use std::sync::Once;
use std::time::Duration;

use redis::{Cmd, RedisError};
use tokio::runtime::Runtime;

use crate::backend::{Expiry, MAX_TAGS, Remaining, SessionRecord, WriteExpiry, too_many_tags};
use crate::error::{Error, ErrorKind, Result};

/// Batch size of the SCAN loops behind `clear` and the session walks: small
/// enough that no single step blocks the server for long.
pub(crate) const CLEAR_BATCH: usize = 1000;

/// The error code of an `add_tags` refused because the entry would carry
/// more than `MAX_TAGS` tags; its detail is that count.
pub(crate) const TAG_LIMIT: &str = "TAGLIMIT";

/// The first bytes of a stored tagged entry (see `lua/envelope.lua`).
pub(crate) const TAG_MARKER: &[u8] = b"\0rcache-tags\0";

/// A plain value as stored: one that happens to start with the tag marker is
/// wrapped as an entry with no tags, so reads return it unchanged.
pub(crate) fn stored_form(value: &[u8]) -> Cow<'_, [u8]> {
    if value.starts_with(TAG_MARKER) { Cow::Owned([TAG_MARKER, b"0:", value].concat()) } else { Cow::Borrowed(value) }
}

/// TTL argument of the scripts: milliseconds, 0 for none.
pub(crate) fn ttl_arg(expiry: Expiry) -> u64 {
    match expiry {
        Expiry::Never => 0,
        Expiry::After(ttl) => ttl.as_millis().max(1) as u64,
    }
}

/// TTL argument of the write and hash scripts: `ttl_arg`, or -1 to keep the current expiry.
pub(crate) fn write_ttl_arg(expiry: WriteExpiry) -> i64 {
    match expiry {
        WriteExpiry::Set(expiry) => ttl_arg(expiry) as i64,
        WriteExpiry::Keep => -1,
    }
}

/// A PTTL reply of a key known to exist.
pub(crate) fn remaining_of(millis: i64) -> Remaining {
    match millis {
        -1 => Remaining::Forever,
        left => Remaining::Left(Duration::from_millis(left.max(0) as u64)),
    }
}

/// A session hash as HGETALL returns it, reserved fields taken out.
pub(crate) fn session_record(flat: Vec<Vec<u8>>) -> SessionRecord {
    let mut record = SessionRecord::default();
    let number = |value: &[u8]| std::str::from_utf8(value).ok().and_then(|text| text.parse().ok()).unwrap_or(0);
    let mut pairs = flat.into_iter();
    while let (Some(name), Some(value)) = (pairs.next(), pairs.next()) {
        match name.as_slice() {
            b"__version" => record.version = number(&value),
            b"__touched" => record.touched_ms = number(&value),
            b"__secret" => {}
            _ => record.fields.push((name, value)),
        }
    }
    record.fields.sort();
    record
}

/// The sessions among `keys`, given each key's hash as HGETALL returns it
/// (in the same order, as the session list script replies): a key gone since
/// the scan, or holding anything but a session (no `__secret`), is left out.
pub(crate) fn listed_sessions<K: AsRef<[u8]>>(
    keys: impl IntoIterator<Item = K>,
    hashes: Vec<Vec<Vec<u8>>>,
) -> impl Iterator<Item = (Vec<u8>, SessionRecord)> {
    keys.into_iter()
        .zip(hashes)
        .filter(|(_, flat)| flat.chunks(2).any(|pair| pair[0] == b"__secret"))
        .map(|(key, flat)| (key.as_ref().to_vec(), session_record(flat)))
}

/// A random token for a tag: 16 lowercase hex characters (64 bits).
pub(crate) fn fresh_token() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(crate) fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Another library in the process may have installed one already; either serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub(crate) fn new_runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Connection, format!("cannot start the I/O runtime: {e}")))
}

pub(crate) fn connection_dropped(error: &RedisError) -> bool {
    !error.is_timeout() && (error.is_connection_dropped() || error.is_io_error())
}

pub(crate) fn convert_error(target: &str, error: RedisError) -> Error {
    if error.code() == Some(TAG_LIMIT) {
        let count = error.detail().and_then(|detail| detail.trim().parse().ok()).unwrap_or(MAX_TAGS + 1);
        return too_many_tags(count);
    }
    let text = error.to_string();
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
        ErrorKind::Connection
    } else if text.contains("WRONGTYPE") || text.contains("not an integer") {
        ErrorKind::WrongType
    } else if text.contains("CORRUPT") && text.contains("rcache entry") {
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
    if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) {
        let detail = error.detail().unwrap_or("no permission");
        return Error::new(kind, format!("{target}: refused by the server's ACL (NOPERM): {detail}"));
    }
    Error::new(kind, format!("{target}: {text}"))
}

/// `SET key <value as stored> [PX ms]`: a plain write of `value`.
pub(crate) fn set_command(key: &[u8], value: &[u8], expiry: Expiry) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(&*stored_form(value));
    with_expiry(&mut cmd, expiry);
    cmd
}

/// Appends `PX <ms>` for a finite expiry; the server keeps the key forever otherwise.
pub(crate) fn with_expiry(cmd: &mut Cmd, expiry: Expiry) {
    if let Expiry::After(ttl) = expiry {
        cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> Vec<Vec<u8>> {
        pairs.iter().flat_map(|(name, value)| [name.as_bytes().to_vec(), value.as_bytes().to_vec()]).collect()
    }

    #[test]
    fn listing_keeps_only_hashes_holding_a_secret_and_strips_reserved_fields() {
        let keys: [&[u8]; 3] = [b"s:live", b"s:gone", b"s:plain"];
        let hashes = vec![
            hash(&[("__secret", "x"), ("__version", "3"), ("__touched", "7"), ("b", "2"), ("a", "1")]),
            Vec::new(),
            hash(&[("a", "1")]),
        ];
        let listed: Vec<_> = listed_sessions(keys, hashes).collect();
        let fields = vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())];
        assert_eq!(listed, vec![(b"s:live".to_vec(), SessionRecord { fields, version: 3, touched_ms: 7 })]);
    }
}
