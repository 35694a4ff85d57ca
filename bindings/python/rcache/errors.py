"""The exceptions rcache raises: one hierarchy rooted at RCacheError.

Every error status of the C library has one class. Several also derive from
the matching builtin, so ``except ValueError`` / ``except TimeoutError`` /
``except ConnectionError`` keep working in callers that do not know rcache.
"""

from __future__ import annotations

import builtins
from typing import Dict, Optional, Type

from . import _lib

__all__ = [
    "RCacheError",
    "InvalidArgumentError",
    "ClosedError",
    "ConnectionError",
    "UnknownOutcomeError",
    "TimeoutError",
    "ServerError",
    "WrongTypeError",
    "TooLargeError",
    "ForkedError",
    "UnsupportedError",
    "InternalError",
    "CorruptValueError",
]


class RCacheError(Exception):
    """Base of every rcache error.

    ``status`` is the C status name (e.g. ``"RCACHE_STATUS_TIMEOUT"``), or None
    for errors that only the Python layer raises (a CorruptValueError from
    unpickling); ``message`` is the human-readable reason.
    """

    status: Optional[str] = None

    def __init__(self, message: str, status: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(RCacheError, ValueError):
    """A NULL/None or empty key, a TTL or option out of range, a malformed URL."""

    status = "RCACHE_STATUS_INVALID_ARGUMENT"


class ClosedError(InvalidArgumentError):
    """The Client (or Cache) was closed; every call after close() raises this."""


class ConnectionError(RCacheError, builtins.ConnectionError):
    """The server could not be reached or the connection broke."""

    status = "RCACHE_STATUS_CONNECTION"


class UnknownOutcomeError(ConnectionError):
    """The request reached the server, or may have, and its reply was lost:
    the call ran once or not at all, and was not sent again. Read the data
    to learn which."""

    status = "RCACHE_STATUS_UNKNOWN_OUTCOME"


class TimeoutError(RCacheError, builtins.TimeoutError):
    """The server did not answer within the configured timeout."""

    status = "RCACHE_STATUS_TIMEOUT"


class ServerError(RCacheError):
    """The server answered with an error."""

    status = "RCACHE_STATUS_SERVER"


class WrongTypeError(RCacheError, TypeError):
    """The stored value has the wrong type for the operation (a Redis hash read
    with get(), a non-integer value passed to incr())."""

    status = "RCACHE_STATUS_WRONG_TYPE"


class TooLargeError(RCacheError, ValueError):
    """A key or value exceeds the configured limit."""

    status = "RCACHE_STATUS_TOO_LARGE"


class ForkedError(RCacheError):
    """The Client was created before fork(); create a new one in this process."""

    status = "RCACHE_STATUS_FORKED"


class UnsupportedError(RCacheError):
    """The URL names a feature this build of the library does not provide."""

    status = "RCACHE_STATUS_UNSUPPORTED"


class InternalError(RCacheError):
    """The library hit an internal bug (a caught panic); the Client can still be closed."""

    status = "RCACHE_STATUS_PANIC"


class CorruptValueError(RCacheError):
    """Stored data could not be decoded: the library found a damaged entry
    (``status`` is ``"RCACHE_STATUS_CORRUPT"``; nothing was changed), or
    rcache.Cache read a value that is not one of its pickles or fails to
    unpickle (``status`` is None)."""


class ComputeError(RCacheError):
    """A computation given to get_or_set() failed in another way than by
    raising (the Python exception itself is re-raised as it is)."""

    status = "RCACHE_STATUS_COMPUTE_FAILED"


class ConflictError(RCacheError):
    """A versioned session save found a newer version; nothing was saved.
    Load the session again and redo the change."""

    status = "RCACHE_STATUS_CONFLICT"


_BY_STATUS: Dict[int, Type[RCacheError]] = {
    _lib.STATUS_INVALID_ARGUMENT: InvalidArgumentError,
    _lib.STATUS_CONNECTION: ConnectionError,
    _lib.STATUS_TIMEOUT: TimeoutError,
    _lib.STATUS_SERVER: ServerError,
    _lib.STATUS_WRONG_TYPE: WrongTypeError,
    _lib.STATUS_TOO_LARGE: TooLargeError,
    _lib.STATUS_FORKED: ForkedError,
    _lib.STATUS_UNSUPPORTED: UnsupportedError,
    _lib.STATUS_PANIC: InternalError,
    _lib.STATUS_CORRUPT: CorruptValueError,
    _lib.STATUS_COMPUTE_FAILED: ComputeError,
    _lib.STATUS_CONFLICT: ConflictError,
    _lib.STATUS_UNKNOWN_OUTCOME: UnknownOutcomeError,
}


def from_status(status: int) -> RCacheError:
    """The exception for an error status; call it right after the failing
    call, on the same thread, so rcache_last_error() still holds its reason."""
    return with_message(status, _lib.last_error())


def with_message(status: int, message: str) -> RCacheError:
    """The exception for an error status whose reason is known (a finished
    queue call carries its own message)."""
    cls = _BY_STATUS.get(status, RCacheError)
    return cls(message or _lib.status_name(status), _lib.status_name(status))
