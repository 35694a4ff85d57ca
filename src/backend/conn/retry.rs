//! The one table of which calls may be sent again, used by every Redis
//! topology (standalone, Sentinel, Cluster).
//!
//! A request whose connection dropped may have reached the server and run
//! there. Sending it again is harmless only when a second run cannot change
//! the answer or the data: those calls are [`Resend::Safe`]. Every other call
//! is [`Resend::Never`]: when its reply is lost (the connection dropped after
//! it was sent, or may have been, or the call deadline passed after it was
//! sent) it fails with `ErrorKind::UnknownOutcome`, saying it ran once or not
//! at all. A timeout is never followed by a second attempt, whatever the call.
//!
//! A reply that says the request did not run (a Cluster redirect, `TRYAGAIN`,
//! `CLUSTERDOWN`, `LOADING`, a write refused by a replica, a refused
//! connection) is not a lost reply: any call may be sent again after one.

use redis::RedisError;

use super::wire::{connection_dropped, convert_error};
use crate::backend::WriteCondition;
use crate::error::{Error, ErrorKind};

/// Whether a call may be sent again after its connection dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resend {
    /// A second run gives the same answer and leaves the same data.
    Safe,
    /// A second run could change the answer or the data.
    Never,
}

/// Every call a Redis backend makes, as the retry table knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Get,
    GetWithTtl,
    GetMany,
    GetForRefresh,
    Exists,
    Remaining,
    HashGet,
    /// One step of a key walk (`SCAN`, or reading the keys it found).
    Scan,
    ServerInfo,
    SessionList,
    /// A plain `SET` (or `KEEPTTL` write) of the same value.
    Set,
    SetMany,
    /// The tokens are read or created first; a second run records the same
    /// tokens, or newer ones after an invalidation (as a later write would).
    SetTagged,
    /// Tags already present are kept: a second run adds nothing.
    AddTags,
    /// Each run writes fresh random tokens: one run or two, the entries are invalid.
    InvalidateTags,
    /// A hash merge with no condition: a second run writes the same fields.
    HashSet,
    /// Sets the same expiry again.
    Expire,
    /// Slides the same expiry again.
    SessionLoad,
    SessionTouch,
    CompareAndSet,
    /// A second run would answer the same, but a caller must know whether its
    /// lease was renewed: a lost reply is reported, not hidden by a timeout.
    ExtendLock,
    /// A hash write that checks whether the key exists.
    HashSetIf,
    Lock,
    Unlock,
    Delete,
    Clear,
    Increment,
    SessionCreate,
    SessionSave,
    SessionDestroy,
    SessionPurge,
}

impl Call {
    /// The hash write under `condition`: a conditional one must not run twice.
    pub const fn hash_set(condition: WriteCondition) -> Call {
        match condition {
            WriteCondition::Always => Call::HashSet,
            WriteCondition::IfExists | WriteCondition::IfAbsent => Call::HashSetIf,
        }
    }

    /// The retry table.
    pub const fn resend(self) -> Resend {
        use Call::*;
        match self {
            Get | GetWithTtl | GetMany | GetForRefresh | Exists | Remaining | HashGet | Scan | ServerInfo | SessionList | Set
            | SetMany | SetTagged | AddTags | InvalidateTags | HashSet | Expire | SessionLoad | SessionTouch => Resend::Safe,
            CompareAndSet | ExtendLock | HashSetIf | Lock | Unlock | Delete | Clear | Increment | SessionCreate | SessionSave
            | SessionDestroy | SessionPurge => Resend::Never,
        }
    }

    pub const fn resendable(self) -> bool {
        matches!(self.resend(), Resend::Safe)
    }

    /// Whether the call changes data (as opposed to reading it).
    pub const fn writes(self) -> bool {
        use Call::*;
        !matches!(
            self,
            Get | GetWithTtl | GetMany | GetForRefresh | Exists | Remaining | HashGet | Scan | ServerInfo | SessionList
        )
    }

    /// The error that ends this call after `error`: a lost reply of a call
    /// that is never sent again is an unknown outcome.
    pub fn failed(self, target: &str, error: RedisError) -> Error {
        if !self.resendable() && reply_lost(&error) {
            return self.unknown_outcome(target, &error.to_string());
        }
        if error.is_timeout() && self.writes() {
            return self.maybe_applied(target, &error.to_string());
        }
        convert_error(target, error)
    }

    /// The error that ends this call when the call deadline passed after
    /// its request was, or may have been, sent. A write that is sent again
    /// after a dropped connection is still a timeout, but its message says
    /// it may have been applied: a request the server received whole runs.
    pub fn timed_out(self, target: &str, deadline: std::time::Duration) -> Error {
        let what = format!("no reply within {} ms", deadline.as_millis());
        match self.resend() {
            Resend::Safe if self.writes() => self.maybe_applied(target, &what),
            Resend::Safe => Error::new(ErrorKind::Timeout, format!("{target}: {what}")),
            Resend::Never => self.unknown_outcome(target, &what),
        }
    }

    /// The timeout of a write the table lets be sent again: its request may have run.
    fn maybe_applied(self, target: &str, cause: &str) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "{target}: {self:?}: {cause}: the write may have been applied or not (a value may have been stored); read the key to know"
            ),
        )
    }

    /// The error that ends this call when the call deadline passed before its
    /// request was sent (encoding a large value took it all): nothing ran.
    pub fn expired_before_sending(self, target: &str, deadline: std::time::Duration) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "{target}: {self:?}: the call deadline of {} ms passed before the request was sent: nothing was sent",
                deadline.as_millis()
            ),
        )
    }

    fn unknown_outcome(self, target: &str, cause: &str) -> Error {
        Error::new(
            ErrorKind::UnknownOutcome,
            format!("{target}: {self:?}: the reply was lost ({cause}): the call ran once or not at all, and was not sent again"),
        )
    }
}

/// Whether the request may have reached the server although no reply came:
/// a timeout, or a connection that dropped (not one that was refused).
pub fn reply_lost(error: &RedisError) -> bool {
    error.is_timeout() || (connection_dropped(error) && !error.is_connection_refusal())
}

/// Whether the server answered that the request did not run and may be sent
/// again (after the redirect or a short wait).
pub fn not_run(error: &RedisError) -> bool {
    use redis::ServerErrorKind::*;
    match error.kind() {
        redis::ErrorKind::Server(kind) => {
            matches!(kind, Moved | Ask | TryAgain | ClusterDown | MasterDown | BusyLoading | ReadOnly)
        }
        redis::ErrorKind::ClusterConnectionNotFound => true,
        _ => error.is_connection_refusal(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_that_change_their_answer_when_run_twice_are_never_resent() {
        for call in [Call::Lock, Call::Unlock, Call::Delete, Call::Clear, Call::Increment, Call::CompareAndSet, Call::SessionSave]
        {
            assert_eq!(call.resend(), Resend::Never, "{call:?}");
            let lost = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
            assert_eq!(call.failed("t", lost).kind, ErrorKind::UnknownOutcome);
            assert_eq!(call.timed_out("t", std::time::Duration::from_millis(5)).kind, ErrorKind::UnknownOutcome);
        }
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(Call::Lock.failed("t", refused).kind, ErrorKind::Connection);
        assert_eq!(Call::Get.timed_out("t", std::time::Duration::from_millis(5)).kind, ErrorKind::Timeout);
        let set = Call::Set.timed_out("t", std::time::Duration::from_millis(5));
        assert_eq!(set.kind, ErrorKind::Timeout);
        assert!(set.message.contains("may have been applied"), "{set}");
        assert!(!Call::Get.timed_out("t", std::time::Duration::from_millis(5)).message.contains("applied"));
    }
}
