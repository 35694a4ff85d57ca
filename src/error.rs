//! The error type shared by the engine and the backends.

use std::fmt;

/// What went wrong, coarse enough for a caller to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller passed something the library cannot accept.
    InvalidArgument,
    /// The server could not be reached or the connection broke.
    Connection,
    /// The server did not answer within the configured timeout.
    Timeout,
    /// The server answered with an error.
    Server,
    /// The stored value has the wrong type for the operation.
    WrongType,
    /// A key or value is larger than the configured limit.
    TooLarge,
    /// Stored data could not be decoded (for example a damaged tagged entry).
    Corrupt,
    /// The URL names a feature this build does not provide (none does today).
    Unsupported,
    /// The request was sent and its reply was lost (the connection dropped
    /// or the reply came too late): it may or may not have run, once.
    UnknownOutcome,
}

/// An error with a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::TooLarge, message)
    }

    /// True when the server could not be reached or did not answer in time
    /// (connection, timeout, or a lost reply).
    pub fn is_unreachable(&self) -> bool {
        matches!(self.kind, ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::UnknownOutcome)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
