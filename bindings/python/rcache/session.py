"""SessionStore: user sessions kept in the cache, with versioned saves."""

from __future__ import annotations

import ctypes
from ctypes import byref, c_uint64, c_void_p, string_at
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

from . import _lib
from ._lib import lib as _c
from ._convert import BytesLike, Key, Seconds, Ttl, _bytes_array, _found, _idle_ms, _key, _tags, _ttl_ms, _u32_ms, _uint64, _value
from .client import Client
from .errors import from_status

__all__ = ["Session", "SessionStore"]

_OK = _lib.STATUS_OK
_MISS = _lib.STATUS_MISS
_Bytes = _lib.rcache_bytes


class Session:
    """A loaded session: ``fields`` (dict of str to bytes), ``version`` (pass
    it back to save() to detect concurrent changes) and ``touched`` (seconds
    since the epoch of the last save or touch)."""

    __slots__ = ("fields", "version", "touched")

    fields: Dict[str, bytes]
    version: int
    touched: float

    def __init__(self, fields: Dict[str, bytes], version: int, touched: float) -> None:
        self.fields, self.version, self.touched = fields, version, touched

    def __repr__(self) -> str:
        return f"<rcache.Session version={self.version} fields={sorted(self.fields)}>"


def _fields(
    fields: Optional[Mapping[str, BytesLike]],
) -> Tuple[ctypes.Array[_lib.rcache_bytes], ctypes.Array[_lib.rcache_bytes], int]:
    """(names array, values array, count) of a dict of str to bytes-like."""
    names, values = [], []
    for name, value in (fields or {}).items():
        if not isinstance(name, str):
            raise TypeError(f"session field names must be str, not {type(name).__name__}")
        names.append(name.encode("utf-8"))
        values.append(_value(value))
    return _bytes_array(names), _bytes_array(values), len(names)


def _read_record(record: Any) -> Session:
    """The Session a loaded rcache_session_record holds (the record stays the caller's)."""
    fields = {}
    name, value = _Bytes(), _Bytes()
    for index in range(_c.rcache_session_record_field_count(record)):
        _c.rcache_session_record_field(record, index, byref(name), byref(value))
        fields[string_at(name.data, name.len).decode("utf-8")] = string_at(value.data, value.len)
    return Session(
        fields,
        _c.rcache_session_record_version(record),
        _c.rcache_session_record_touched_ms(record) / 1000,
    )


class SessionStore:
    """The sessions under ``namespace`` in a Client's key space.

    create() makes a session with a random id and a 128-bit secret; every
    other call needs both, and a wrong secret behaves as a missing session
    (nothing is changed, no lock is taken). save() with the version of the
    load it is based on raises ConflictError instead of overwriting a newer
    save. Loads never wait on a lock."""

    def __init__(self, client: Client, namespace: Key = "sess:") -> None:
        self.client = client
        self._namespace = _key(namespace, "namespace")

    def _call(self, function: Callable[..., int], *args: Any) -> int:
        """function(store, *args) on a store handle opened for this call, so it
        never outlives the client; the status."""

        def with_store(handle: Any) -> int:
            store = c_void_p()
            status: int = _c.rcache_session_store_open(handle, self._namespace, len(self._namespace), byref(store))
            if status != _OK:
                return status
            try:
                return function(store, *args)
            finally:
                _c.rcache_session_store_free(store)

        return self.client._invoke(with_store)

    def create(self, fields: Optional[Mapping[str, BytesLike]] = None, ttl: Ttl = None) -> Tuple[str, str]:
        """A new session holding fields (dict of str to bytes); (id, secret) as str."""
        names, values, count = _fields(fields)
        new = _lib.rcache_session_new()
        status = self._call(_c.rcache_session_create, names, values, count, _ttl_ms(ttl), byref(new))
        if status != _OK:
            raise from_status(status)
        return new.id.decode("ascii"), new.secret.decode("ascii")

    def load(self, session_id: Key, secret: Key, slide: Ttl = None) -> Optional[Session]:
        """The Session, or None when the id is unknown or the secret wrong.
        slide (seconds, or NO_EXPIRY) renews its expiry; None leaves it."""
        session_id, secret = _key(session_id, "session id"), _key(secret, "secret")
        slide_ms = _lib.SESSION_NO_SLIDE if slide is None else _ttl_ms(slide)
        record = c_void_p()
        status = self._call(_c.rcache_session_load, session_id, len(session_id), secret, len(secret), slide_ms, byref(record))
        if status == _MISS:
            return None
        if status != _OK:
            raise from_status(status)
        try:
            return _read_record(record)
        finally:
            _c.rcache_session_record_free(record)

    def save(
        self,
        session_id: Key,
        secret: Key,
        fields: Optional[Mapping[str, BytesLike]] = None,
        delete: Iterable[Key] = (),
        version: Optional[int] = None,
        ttl: Ttl = None,
    ) -> Optional[int]:
        """Sets fields and deletes the names in delete, in one atomic step,
        renewing the expiry to ttl; the new version, or None when the session
        is missing (or the secret wrong). With version (from load()),
        ConflictError if the session changed since."""
        session_id, secret = _key(session_id, "session id"), _key(secret, "secret")
        names, values, count = _fields(fields)
        deleted, deleted_count = _tags([name.encode("utf-8") if isinstance(name, str) else name for name in delete])
        new_version = c_uint64()
        status = self._call(
            _c.rcache_session_save, session_id, len(session_id), secret, len(secret), _uint64(version or 0, "version"),
            names, values, count, deleted, deleted_count, _ttl_ms(ttl), byref(new_version),
        )
        if status == _MISS:
            return None
        if status != _OK:
            raise from_status(status)
        return new_version.value

    def touch(self, session_id: Key, secret: Key, ttl: Ttl = None) -> bool:
        """Renews the expiry; False when the session is missing or the secret wrong."""
        session_id, secret = _key(session_id, "session id"), _key(secret, "secret")
        return _found(self._call(_c.rcache_session_touch, session_id, len(session_id), secret, len(secret), _ttl_ms(ttl)))

    def destroy(self, session_id: Key, secret: Key) -> bool:
        """Deletes the session; False when it is missing or the secret wrong."""
        session_id, secret = _key(session_id, "session id"), _key(secret, "secret")
        return _found(self._call(_c.rcache_session_destroy, session_id, len(session_id), secret, len(secret)))

    def purge(self, idle: Seconds) -> int:
        """Deletes the sessions not saved or touched for idle seconds (a
        number, required: 0 deletes every session); how many."""
        purged = c_uint64()
        idle_ms = _idle_ms(idle, "idle")
        status = self._call(_c.rcache_session_purge, idle_ms, byref(purged))
        if status != _OK:
            raise from_status(status)
        return purged.value

    def lock(self, session_id: Key, secret: Key, lease: Seconds = 10) -> Optional[str]:
        """Takes the session's exclusive lock for lease seconds; the owner
        token, or None when the session is missing or the secret wrong.
        ConflictError when another owner holds it."""
        session_id, secret = _key(session_id, "session id"), _key(secret, "secret")
        owner = _lib.rcache_session_owner()
        status = self._call(_c.rcache_session_lock, session_id, len(session_id), secret, len(secret), _u32_ms(lease, "lease"), byref(owner))
        if status == _MISS:
            return None
        if status != _OK:
            raise from_status(status)
        token: bytes = owner.token
        return token.decode("ascii")

    def unlock(self, session_id: Key, owner: str) -> bool:
        """Releases a lock taken with lock(); False when owner no longer holds it."""
        session_id = _key(session_id, "session id")
        return _found(self._call(_c.rcache_session_unlock, session_id, len(session_id), owner.encode("ascii")))

