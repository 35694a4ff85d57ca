"""Client: bytes in, bytes out, one call into librcache per method."""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import threading
import time
import weakref
from ctypes import POINTER, byref, c_int64, c_size_t, c_uint64, cast, string_at
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

from . import _lib
from ._lib import lib as _c
from .errors import ClosedError, ForkedError, InvalidArgumentError, from_status
from ._convert import (
    KEEP_TTL,
    NO_EXPIRY,
    BytesLike,
    FieldValue,
    Key,
    Seconds,
    Ttl,
    _beta,
    _bytes_array,
    _condition,
    _count,
    _fields,
    _found,
    _int64,
    _key,
    _parse_info,
    _prefix,
    _read_array,
    _redact,
    _seconds_left,
    _size,
    _tags,
    _timeout_ms,
    _ttl_ms,
    _u32_ms,
    _value,
    _zero_or_ms,
)

__all__ = ["Client", "NO_EXPIRY", "KEEP_TTL", "BytesLike", "Key", "Seconds", "Ttl", "FieldValue"]

_OK = _lib.STATUS_OK
_MISS = _lib.STATUS_MISS

# The C functions, bound once.
_connect = _c.rcache_client_connect
_free = _c.rcache_client_free
_get = _c.rcache_client_get
_near_get = _lib.near_get
_get_with_ttl = _c.rcache_client_get_with_ttl
_set = _c.rcache_client_set
_compare_and_set = _c.rcache_client_compare_and_set
_delete = _c.rcache_client_delete
_exists = _c.rcache_client_exists
_ttl = _c.rcache_client_ttl
_expire = _c.rcache_client_expire
_get_many = _c.rcache_client_get_many
_set_many = _c.rcache_client_set_many
_incr = _c.rcache_client_incr
_set_tagged = _c.rcache_client_set_tagged
_add_tags = _c.rcache_client_add_tags
_invalidate_tags = _c.rcache_client_invalidate_tags
_clear = _c.rcache_client_clear
_stats = _c.rcache_client_stats
_keys = _c.rcache_client_keys
_server_info = _c.rcache_client_server_info
_lock = _c.rcache_client_lock
_extend_lock = _c.rcache_client_extend_lock
_unlock = _c.rcache_client_unlock
_hash_get = _c.rcache_client_hash_get
_hash_set = _c.rcache_client_hash_set
_get_or_compute = _c.rcache_client_get_or_compute
_compute_output_set = _c.rcache_compute_output_set
_compute_output_set_none = _c.rcache_compute_output_set_none
_get_or_compute_failsafe = _c.rcache_client_get_or_compute_failsafe
_get_or_compute_timed = _c.rcache_client_get_or_compute_timed
_failsafe_stats = _c.rcache_client_failsafe_stats
_set_ttl_jitter = _c.rcache_client_set_ttl_jitter
_buffer_free = _lib.buffer_free
_buffers_free = _lib.buffers_free
_buffer_array_free = _lib.buffer_array_free
_Buffer = _lib.rcache_buffer
_BufferArray = _lib.buffer_p
_Bytes = _lib.rcache_bytes
_STAT_NAMES = tuple(field[0] for field in _lib.rcache_stats._fields_)
_FAILSAFE_STAT_NAMES = tuple(field[0] for field in _lib.rcache_failsafe_stats._fields_)


# --- near-cache hits without leaving the interpreter lock ----------------------

#: Bytes a near-cache hit is copied into; a longer value is read by rcache_client_get.
_HELD_BYTES = 64 * 1024
#: c_size_t of each short key length, made once: the untyped call takes no bare int.
_KEY_LENGTHS = tuple(c_size_t(length) for length in range(256))


class _HeldSlot(NamedTuple):
    """A buffer rcache_client_near_get copies a value into, used by one call
    at a time (taken from _held_slots and put back once read)."""

    data: Any  # (c_char * _HELD_BYTES), sharing bytes with view
    capacity: c_size_t
    length: c_size_t
    length_p: Any  # pointer(length)
    view: memoryview


def _held_slot() -> _HeldSlot:
    storage = bytearray(_HELD_BYTES)
    length = c_size_t()
    data = (ctypes.c_char * _HELD_BYTES).from_buffer(storage)
    return _HeldSlot(data, c_size_t(_HELD_BYTES), length, ctypes.pointer(length), memoryview(storage))


# Free slots; list.pop and list.append are atomic, so threads share it without a lock.
_held_slots: List[_HeldSlot] = []


def _held(handle: Any, key: bytes) -> Optional[bytes]:
    """key's value if the near cache holds it, else None (nothing sent to
    the server: the caller reads it the usual way, which also reports a bad
    key). Keeps the interpreter lock: the call never waits for I/O."""
    try:
        slot = _held_slots.pop()
    except IndexError:
        slot = _held_slot()
    data, capacity, length, length_p, view = slot
    size = len(key)
    value = None
    if _near_get(handle, key, _KEY_LENGTHS[size] if size < 256 else c_size_t(size), data, capacity, length_p) == _OK:
        size = length.value
        if size <= _HELD_BYTES:
            value = view[:size].tobytes()
    _held_slots.append(slot)
    return value


def _asks_near_cache(url: Optional[str]) -> bool:
    """True when url's query gives near_cache a count above 0 (connect has
    checked the syntax): get() then tries the near cache first."""
    query = (url or "").partition("?")[2].partition("#")[0]
    for parameter in query.split("&"):
        name, _, value = parameter.partition("=")
        if name == "near_cache":
            return value.isdigit() and int(value) > 0
    return False


class Computed(NamedTuple):
    """What :meth:`Client.get_or_compute` returns."""

    #: The value; None when the computation found none (negative caching).
    value: Optional[bytes]
    #: True when fail-safe returned the last good value instead of an error
    #: (the computation failed or timed out, or Redis was unreachable): it
    #: may be past its expiry. Also counted in stats()["stale_served"].
    stale: bool


# --- get_or_compute with timeouts --------------------------------------------
#
# With a soft or hard timeout the library runs compute on a thread of its own
# and may still run it after get_or_compute returned, so the function cannot
# live in a callback object of the call: it waits here, by token, until the
# library says it is done with it (free_user_data). One C callback serves all.

_logger = logging.getLogger("rcache")


class _TimedComputation:
    """A compute function of get_or_compute with timeouts, and what it raised."""

    __slots__ = ("compute", "computing", "raised", "returned")

    def __init__(self, compute: Callable[[], Optional[BytesLike]], computing: List[int]) -> None:
        self.compute = compute
        self.computing = computing
        self.raised: List[BaseException] = []
        self.returned = False


_timed: Dict[int, _TimedComputation] = {}
_timed_tokens = itertools.count(1)


def _run_timed(token: Optional[int], output: Any) -> bool:
    job = _timed[token or 0]
    thread = threading.get_ident()
    job.computing.append(thread)
    try:
        computed = job.compute()
        value = None if computed is None else _value(computed)
    except BaseException as error:  # re-raised by the caller if it still waits
        job.raised.append(error)
        if job.returned:
            _logger.warning("a get_or_compute computation that outlived its call raised %r; nothing was stored", error)
        return False
    finally:
        job.computing.remove(thread)
    if value is None:
        return bool(_compute_output_set_none(output) == _OK)
    return bool(_compute_output_set(output, value, len(value)) == _OK)


def _forget_timed(token: Optional[int]) -> None:
    _timed.pop(token or 0, None)


_timed_compute = _lib.compute_fn(_run_timed)
_timed_free = _lib.free_fn(_forget_timed)


# --- fork --------------------------------------------------------------------

_live: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_live):
        client._disown_after_fork()
    _live.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


# --- the client --------------------------------------------------------------


class Client:
    """A connection to Redis (``redis://``, ``rediss://``, ``unix://``,
    ``redis+sentinel://``, ``redis+cluster://`` and their ``rediss+`` forms;
    see docs/urls.md) or an embedded in-process store
    (``memory://``, the default when url is None).

    Keys are str (encoded as UTF-8) or bytes-like; values are bytes-like and
    come back as bytes. Durations are seconds (int, float or timedelta) and
    are rounded up to whole milliseconds. A ``ttl`` of None means the client's
    ``default_ttl`` (none unless set); ``NO_EXPIRY`` stores without expiry;
    ``KEEP_TTL`` keeps a key's current expiry (set, compare_and_set, hash_set).
    Tags are like keys (str or bytes-like) and always come as an iterable;
    keys starting with ``__rcache_tag:`` are reserved for them.

    Errors raise subclasses of :class:`rcache.RCacheError`; an argument of
    the wrong Python type raises plain TypeError. Every call is bounded by
    ``connect_timeout + response_timeout`` (1 s + 1 s by default), except a
    large reply still arriving from a standalone or Sentinel server, which
    is read to its end (see docs/limits.md). A Client
    never retries beyond that: while Redis is down calls fail fast with
    ConnectionError/TimeoutError and the same Client reconnects by itself.

    One Client may be shared by any number of threads; calls release the GIL,
    except a near-cache hit of get(), which cannot block and keeps it.
    After :meth:`close` every call raises :class:`rcache.ClosedError`. In a
    child process after ``fork()`` an inherited Client raises
    :class:`rcache.ForkedError`; create a new one in the child.
    Each ``memory://`` Client is its own private store.

    A Redis URL may add a near cache, e.g.
    ``redis://host:6379/0?near_cache=100000&near_cache_bytes=67108864``: up
    to near_cache entries and near_cache_bytes bytes (default 64 MiB) are
    kept in process memory and reads are answered from there until Redis
    reports a change (Redis 6 or later). Writes by this Client are seen at
    once, other clients' writes and tag invalidations once reported; see
    docs/near-cache.md.

    fail_open=True keeps an application up while Redis is down: reads are
    misses, writes of entries are dropped, get_or_set computes without
    caching (counted in stats()["fail_opens"]); deletes, invalidations,
    clears and counters still raise. After breaker_threshold (default 5)
    consecutive connection failures or timeouts, calls fail at once for
    breaker_cooldown seconds (default 0.5), then the server is tried again.

    max_stale and stale_throttle (seconds) are the defaults of
    :meth:`get_or_compute`'s fail-safe (off unless max_stale is given).
    ttl_jitter (percent, 0 to 100): see :meth:`set_ttl_jitter`.
    """

    def __init__(
        self,
        url: Union[str, bytes, None] = None,
        *,
        connect_timeout: Optional[Seconds] = None,
        response_timeout: Optional[Seconds] = None,
        prefix: Optional[Key] = None,
        default_ttl: Ttl = None,
        max_key_bytes: Optional[int] = None,
        max_value_bytes: Optional[int] = None,
        memory_max_entries: Optional[int] = None,
        memory_max_bytes: Optional[int] = None,
        fail_open: bool = False,
        breaker_threshold: Optional[int] = None,
        breaker_cooldown: Optional[Seconds] = None,
        max_stale: Optional[Seconds] = None,
        stale_throttle: Optional[Seconds] = None,
        ttl_jitter: int = 0,
    ) -> None:
        self._max_stale_ms = 0 if max_stale is None else _zero_or_ms(max_stale, "max_stale")
        self._stale_throttle_ms = 0 if stale_throttle is None else _zero_or_ms(stale_throttle, "stale_throttle")
        # In-flight calls, one entry each: list.append/pop are atomic, so this
        # is a refcount that close() waits on without a lock on the fast path.
        self._inflight: List[None] = []
        # Threads running a get_or_set compute callback of this client, one
        # entry per callback (they may nest): close() there would wait for itself.
        self._computing: List[int] = []
        self._handle: Optional[ctypes._Pointer[_lib.rcache_client]] = None
        self._forked = False
        self._close_lock = threading.Lock()
        if url is None:
            url_bytes = None
        elif isinstance(url, str):
            url_bytes = url.encode("utf-8")
        elif isinstance(url, bytes):
            url_bytes, url = url, url.decode("utf-8", "replace")
        else:
            raise TypeError(f"url must be str, not {type(url).__name__}")
        if url_bytes is not None and b"\0" in url_bytes:
            raise InvalidArgumentError("url must not contain NUL characters")
        self._url = _redact(url or "memory://")
        prefix = _prefix(prefix)
        self._prefix = prefix or b""

        if default_ttl is KEEP_TTL:
            raise InvalidArgumentError("default_ttl cannot be KEEP_TTL: there is no current TTL to keep")
        default_ttl_ms = _lib.TTL_NONE if default_ttl is NO_EXPIRY else _ttl_ms(default_ttl, "default_ttl")
        options = _lib.rcache_options(
            connect_timeout_ms=_timeout_ms(connect_timeout, "connect_timeout"),
            response_timeout_ms=_timeout_ms(response_timeout, "response_timeout"),
            key_prefix=prefix,
            default_ttl_ms=default_ttl_ms,
            max_key_bytes=_size(max_key_bytes, "max_key_bytes"),
            max_value_bytes=_size(max_value_bytes, "max_value_bytes"),
            memory_max_entries=_size(memory_max_entries, "memory_max_entries"),
            memory_max_bytes=_size(memory_max_bytes, "memory_max_bytes"),
            fail_open=bool(fail_open),
            breaker_threshold=0 if breaker_threshold is None else _count(breaker_threshold),
            breaker_cooldown_ms=_timeout_ms(breaker_cooldown, "breaker_cooldown"),
        )
        handle = _lib.client_p()
        status = _connect(url_bytes, byref(options), byref(handle))
        if status != _OK:
            raise from_status(status)
        self._handle = handle
        self._near = _near_get is not None and _asks_near_cache(url)
        self._pid = os.getpid()
        _live.add(self)
        if ttl_jitter:
            self.set_ttl_jitter(ttl_jitter)

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else "open"
        return f"<rcache.Client {self._url!r} {state}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> str:
        raise TypeError("an rcache.Client cannot be pickled; create one in each process")

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def prefix(self) -> bytes:
        """The key prefix of this client's namespace (b"" for none)."""
        return self._prefix

    @property
    def closed(self) -> bool:
        """True after close() (or in a child process after fork())."""
        return self._handle is None

    def close(self) -> None:
        """Closes the connection and frees the handle. Idempotent. Waits for
        calls running in other threads to return (each is bounded by the
        timeouts); calls that start afterwards raise ClosedError. Inside a
        get_or_set() compute function of this client it raises
        InvalidArgumentError: that call is still running."""
        if threading.get_ident() in self._computing:
            raise InvalidArgumentError(
                "close() cannot run inside this client's get_or_set() compute function, which is part of a "
                "call still running on it; close the client after get_or_set() returns"
            )
        with self._close_lock:
            handle = self._handle
            if handle is None:
                return
            self._handle = None
            delay = 0.0001
            while self._inflight:
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
            _free(handle)

    def _disown_after_fork(self) -> None:
        """In a fork child: the handle belongs to the parent's I/O thread.
        rcache_client_free only releases the handle's record there."""
        handle = self._handle
        self._handle = None
        self._forked = True
        self._inflight = []
        self._close_lock = threading.Lock()
        if handle is not None:
            _free(handle)

    def _unusable(self) -> Exception:
        if self._forked:
            return ForkedError(
                f"this Client was created in process {self._pid} before fork(); "
                "create a new Client in this process"
            )
        return ClosedError("this Client is closed")

    def _invoke(self, function: Callable[..., int], *args: Any) -> int:
        """function(handle, *args), registered in _inflight for close(); its
        status. Raises ClosedError or ForkedError if the handle is gone."""
        # Append before reading _handle, so close() either sees the call or
        # the call sees None; pop from the same list even if a fork replaced it.
        inflight = self._inflight
        inflight.append(None)
        try:
            handle = self._handle
            if handle is None:
                raise self._unusable()
            return function(handle, *args)
        finally:
            inflight.pop()

    # Each method: convert the arguments, one library call through _invoke,
    # convert the result.

    def get(self, key: Key) -> Optional[bytes]:
        """The value stored under key (bytes), or None if it is missing."""
        if type(key) is not bytes:
            key = _key(key)
        # _invoke inlined: get is the hot path and this saves a call per get.
        inflight = self._inflight
        inflight.append(None)
        try:
            handle = self._handle
            if handle is None:
                raise self._unusable()
            if self._near:
                value = _held(handle, key)
                if value is not None:
                    return value
            # A fresh out-buffer per call rather than a shared one: a signal
            # handler or another thread could otherwise reuse it before it is read.
            buffer = _Buffer()
            status = _get(handle, key, len(key), buffer)
        finally:
            inflight.pop()
        if status == _OK:
            try:
                return string_at(buffer.data, buffer.len)
            finally:
                _buffer_free(buffer)
        if status == _MISS:
            return None
        raise from_status(status)

    def get_with_ttl(self, key: Key) -> Optional[Tuple[bytes, float]]:
        """(value, ttl) of key in one round trip, or None if it is missing:
        value is bytes, ttl the seconds it has left as ttl() gives them (float,
        millisecond resolution; -1.0 if it has no expiry). Counted as a hit or
        a miss in stats(), like get()."""
        key = _key(key)
        buffer = _Buffer()
        millis = c_int64()
        status = self._invoke(_get_with_ttl, key, len(key), buffer, millis)
        if status == _OK:
            try:
                return string_at(buffer.data, buffer.len), _seconds_left(millis.value)
            finally:
                _buffer_free(buffer)
        if status == _MISS:
            return None
        raise from_status(status)

    def compare_and_set(self, key: Key, expected: BytesLike, value: BytesLike, ttl: Ttl = None) -> bool:
        """Stores value (bytes-like) under key only if key holds exactly
        expected (bytes-like) now, in one atomic step: True when stored, False
        when key is missing or holds something else. A tagged entry is
        compared by its value and replaced by a plain one. ttl as in set(),
        KEEP_TTL included. WrongTypeError if key holds a hash record."""
        key = _key(key)
        expected = _value(expected)
        value = _value(value)
        ttl_ms = _ttl_ms(ttl)
        return _found(self._invoke(_compare_and_set, key, len(key), expected, len(expected), value, len(value), ttl_ms))

    def set(self, key: Key, value: BytesLike, ttl: Ttl = None, tags: Optional[Iterable[Key]] = None) -> None:
        """Stores value (bytes-like) under key, replacing whatever it held.
        ttl: seconds, None for the client's default_ttl, NO_EXPIRY for none,
        KEEP_TTL to keep the key's current expiry (a new key gets none; not
        with tags). tags: an iterable of tags
        (str or bytes-like; a single str or bytes is a TypeError, not split
        into characters): the entry becomes unreadable, from every client,
        once any of them is passed to invalidate_tags(). At most
        MAX_TAGS (256) tags; None or no tags stores a plain entry."""
        key = _key(key)
        value = _value(value)
        ttl_ms = _ttl_ms(ttl)
        tag_array, tag_count = (None, 0) if tags is None else _tags(tags)
        if tag_count:
            status = self._invoke(_set_tagged, key, len(key), value, len(value), ttl_ms, tag_array, tag_count)
        else:
            status = self._invoke(_set, key, len(key), value, len(value), ttl_ms)
        if status != _OK:
            raise from_status(status)

    def add_tags(self, key: Key, tags: Iterable[Key]) -> bool:
        """Adds tags (an iterable, as in set()) to the existing entry at key,
        keeping its value and TTL. False if key is missing or already
        invalidated. An entry carries at most MAX_TAGS (256) tags in all:
        InvalidArgumentError, with nothing added, beyond that."""
        key = _key(key)
        tag_array, tag_count = _tags(tags)
        return _found(self._invoke(_add_tags, key, len(key), tag_array, tag_count))

    def invalidate_tags(self, tags: Iterable[Key]) -> None:
        """Invalidates every tag of tags (an iterable of str or bytes-like
        tags; a single str or bytes is a TypeError): once this returns, no
        client reads an entry that carried any of them. Costs one small write
        per tag, whatever the number of entries. At most MAX_TAGS (256)."""
        tag_array, tag_count = _tags(tags)
        status = self._invoke(_invalidate_tags, tag_array, tag_count)
        if status != _OK:
            raise from_status(status)

    def clear(self, pattern: Optional[Key] = None) -> int:
        """Deletes the keys of this client's namespace (its prefix) that match
        pattern, a Redis glob (str or bytes: ``*``, ``?``, ``[...]``, ``\\``
        escapes) matched against keys without the prefix; or every key of the
        namespace, tags included, when pattern is None. Keys outside the
        namespace are never touched. Returns how many keys were deleted."""
        pattern = None if pattern is None else _key(pattern, "pattern")
        deleted = c_uint64()
        status = self._invoke(_clear, pattern, 0 if pattern is None else len(pattern), deleted)
        if status != _OK:
            raise from_status(status)
        return deleted.value

    def keys(self, pattern: Optional[Key] = None) -> List[bytes]:
        """The keys of this client's namespace, of any type and without the
        prefix, that match pattern (a Redis glob, as in clear(); every key
        when None): a sorted list of bytes. rcache's own keys (``__rcache_``)
        and invalidated tagged entries are left out; on memory:// so are
        sessions. Redis is walked with SCAN, never KEYS: keys written
        meanwhile may or may not be listed."""
        pattern = None if pattern is None else _key(pattern, "pattern")
        array = _BufferArray()
        count = c_size_t()
        status = self._invoke(_keys, pattern, 0 if pattern is None else len(pattern), byref(array), byref(count))
        if status != _OK:
            raise from_status(status)
        try:
            return _read_array(array, count.value)
        finally:
            _buffer_array_free(array, count.value)

    def hash_get(self, key: Key) -> Optional[Dict[bytes, bytes]]:
        """Every field of the hash record at key, as a dict of bytes names to
        bytes values, or None if key is missing. WrongTypeError if key holds
        a plain value. Counted as a hit or a miss in stats(), like get()."""
        key = _key(key)
        names, values, count = _BufferArray(), _BufferArray(), c_size_t()
        status = self._invoke(_hash_get, key, len(key), byref(names), byref(values), byref(count))
        if status == _MISS:
            return None
        if status != _OK:
            raise from_status(status)
        try:
            return dict(zip(_read_array(names, count.value), _read_array(values, count.value)))
        finally:
            _buffer_array_free(names, count.value)
            _buffer_array_free(values, count.value)

    def hash_set(
        self,
        key: Key,
        mapping: Union[Mapping[str, FieldValue], Mapping[bytes, FieldValue], Iterable[Tuple[Key, FieldValue]]],
        ttl: Ttl = None,
        condition: str = "always",
    ) -> bool:
        """Merges mapping (a mapping, or an iterable of (name, value) pairs;
        at least one) into the hash record at key, creating it, and gives it
        ttl (as in set(); KEEP_TTL leaves its expiry alone), in one atomic
        step, if condition holds: "always", "if_exists" (key exists) or
        "if_absent" (it does not). True when written, False (nothing written)
        when the condition does not hold. Field names are str (UTF-8) or
        bytes-like; values are bytes-like, str (UTF-8), int or float (written
        as str() writes them; bool is a TypeError). WrongTypeError if key
        holds a plain value (with "if_absent" that is False: key exists)."""
        key = _key(key)
        names, values, count = _fields(mapping)
        ttl_ms = _ttl_ms(ttl)
        return _found(self._invoke(_hash_set, key, len(key), names, values, count, ttl_ms, _condition(condition)))

    def lock(self, key: Key, owner: Key, lease: Seconds) -> bool:
        """Takes the lock key for owner (str or bytes: a token unique to the
        holder) for lease seconds: True when taken, False when key exists
        (someone holds the lock). key is an ordinary key of this client's
        namespace holding owner while locked; on Redis this is ``SET key
        owner NX PX lease``, and unlock() compares and deletes, so other
        clients of that classic protocol interoperate."""
        key = _key(key)
        owner = _key(owner, "owner")
        return _found(self._invoke(_lock, key, len(key), owner, len(owner), _u32_ms(lease, "lease")))

    def extend_lock(self, key: Key, owner: Key, lease: Seconds) -> bool:
        """Renews the lock key to lease seconds from now if owner holds it;
        False when it is not theirs (expired, released or taken by another)."""
        key = _key(key)
        owner = _key(owner, "owner")
        return _found(self._invoke(_extend_lock, key, len(key), owner, len(owner), _u32_ms(lease, "lease")))

    def unlock(self, key: Key, owner: Key) -> bool:
        """Releases the lock key if owner holds it (compare and delete, in one
        step); False when it is not theirs, and then nothing is deleted."""
        key = _key(key)
        owner = _key(owner, "owner")
        return _found(self._invoke(_unlock, key, len(key), owner, len(owner)))

    def server_info(self) -> Dict[str, Any]:
        """The server's INFO (every default section) as a dict, read as
        redis-py's info() reads it: int and float values converted, values
        like ``keys=1,expires=0`` (the db0 line) as dicts. On memory:// the
        same format with rcache_backend "memory", used_memory, keys and more."""
        buffer = _Buffer()
        status = self._invoke(_server_info, buffer)
        if status != _OK:
            raise from_status(status)
        try:
            text = string_at(buffer.data, buffer.len)
        finally:
            _buffer_free(buffer)
        return _parse_info(text.decode("utf-8", "replace"))

    def delete(self, key: Key) -> bool:
        """Deletes key; True if it existed."""
        key = _key(key)
        return _found(self._invoke(_delete, key, len(key)))

    def exists(self, key: Key) -> bool:
        """True if key exists (and has not expired)."""
        key = _key(key)
        return _found(self._invoke(_exists, key, len(key)))

    def ttl(self, key: Key) -> Optional[float]:
        """Seconds key has left (float, millisecond resolution), -1.0 if it
        has no expiry, None if it is missing."""
        key = _key(key)
        millis = c_int64()
        status = self._invoke(_ttl, key, len(key), millis)
        if status == _OK:
            return _seconds_left(millis.value)
        if status == _MISS:
            return None
        raise from_status(status)

    def expire(self, key: Key, ttl: Ttl) -> bool:
        """Gives an existing key a new TTL in seconds; NO_EXPIRY removes the
        expiry; None applies the client's default_ttl (so it too removes the
        expiry when no default_ttl is set). False if key is missing."""
        key = _key(key)
        ttl_ms = _ttl_ms(ttl)
        return _found(self._invoke(_expire, key, len(key), ttl_ms))

    def get_many(self, keys: Iterable[Key]) -> List[Optional[bytes]]:
        """Values of keys (an iterable, not a single str/bytes) in one round
        trip: a list in the same order, None for each miss."""
        if isinstance(keys, (str, bytes, bytearray, memoryview)):
            raise TypeError("keys must be an iterable of keys, not a single key")
        encoded = [_key(key) for key in keys]
        count = len(encoded)
        request = _bytes_array(encoded)
        values = (_Buffer * count)()
        status = self._invoke(_get_many, request, count, values)
        if status != _OK:
            raise from_status(status)
        try:
            return [None if value.data is None else string_at(value.data, value.len) for value in values]
        finally:
            _buffers_free(values, count)

    def set_many(
        self,
        items: Union[Mapping[str, BytesLike], Mapping[bytes, BytesLike], Iterable[Tuple[Key, BytesLike]]],
        ttl: Ttl = None,
    ) -> None:
        """Stores every entry of items (a mapping or an iterable of (key,
        value) pairs) with one ttl, all or nothing, in one round trip."""
        pairs = items.items() if hasattr(items, "items") else items
        keys = []
        values = []
        for key, value in pairs:
            keys.append(_key(key))
            values.append(_value(value))
        ttl_ms = _ttl_ms(ttl)
        status = self._invoke(_set_many, _bytes_array(keys), _bytes_array(values), len(keys), ttl_ms)
        if status != _OK:
            raise from_status(status)

    def get_or_set(
        self,
        key: Key,
        compute: Callable[[], BytesLike],
        ttl: Ttl = None,
        tags: Optional[Iterable[Key]] = None,
        wait_timeout: Optional[Seconds] = None,
        lock_lease: Optional[Seconds] = None,
        wait_fails: bool = False,
        beta: float = 1.0,
    ) -> bytes:
        """The value at key; on a miss, compute() (returning bytes-like) makes
        it and it is stored with ttl and tags. Concurrent callers that miss
        the same key, in any thread or process, wait while one of them
        computes, then get its value. If compute raises, its exception
        propagates to its caller, nothing is stored, and a waiting caller
        computes instead. wait_timeout (seconds, default 10): after it a
        waiter computes itself, or raises TimeoutError with wait_fails=True.
        lock_lease (seconds, default 10) is renewed while compute runs.
        beta: early refresh (XFetch); a caller recomputes a still-valid value
        with a probability rising as its expiry nears, scaled by how long it
        took to compute, while the others keep getting it; 0 turns it off.
        Never returns a stale value (see get_or_compute)."""
        options, tag_array = self._compute_options(ttl, tags, wait_timeout, lock_lease, wait_fails, beta)
        value = self._compute(_get_or_compute, _key(key), options, None, compute)
        assert value is not None, "the plain call has no way to return no value"
        return value

    def get_or_compute(
        self,
        key: Key,
        compute: Callable[[], Optional[BytesLike]],
        ttl: Ttl = None,
        tags: Optional[Iterable[Key]] = None,
        wait_timeout: Optional[Seconds] = None,
        lock_lease: Optional[Seconds] = None,
        wait_fails: bool = False,
        beta: float = 1.0,
        max_stale: Optional[Seconds] = None,
        throttle: Optional[Seconds] = None,
        negative_ttl: Optional[Seconds] = None,
        soft_timeout: Optional[Seconds] = None,
        hard_timeout: Optional[Seconds] = None,
    ) -> Computed:
        """get_or_set with fail-safe and negative caching, as a
        :class:`Computed` (value, stale).

        Fail-safe (max_stale seconds, else the Client's; 0 turns it off):
        each value stored is also kept for max_stale past its expiry, in
        Redis (tagged as the value: invalidate_tags, delete and clear remove
        it) and in process memory (used only while Redis is unreachable).
        When compute raises, the wait for another caller times out, or Redis
        cannot be reached, the last good value comes back with stale=True
        instead of the exception, and for throttle seconds (else the
        Client's stale_throttle) every caller of key, in any process, gets it
        without computing. get and get_or_set never return a stale value.

        compute() may return None: "no value". With negative_ttl (seconds)
        that is remembered and read back as value=None meanwhile; without,
        None is returned once and nothing is stored.

        soft_timeout and hard_timeout (seconds from the call's start; need
        not both be given): compute then runs on a thread of the library
        (holding the GIL while it runs Python), and past soft_timeout a
        caller with a stale value (fail-safe must be on) gets it with
        stale=True; past hard_timeout it raises rcache.TimeoutError, or gets
        the stale value under fail-safe. Callers waiting for another
        caller's computation, in any thread or process, do the same. A
        Python thread cannot be stopped: compute runs to its end whatever
        the timeouts, and its value is then stored (one computation per key
        at a time); an exception it raises after its caller returned is
        logged (logger "rcache") and nothing is stored. A computation still
        running when the interpreter exits is abandoned."""
        options, tag_array = self._compute_options(ttl, tags, wait_timeout, lock_lease, wait_fails, beta)
        failsafe = _lib.rcache_failsafe_options(
            max_stale_ms=self._max_stale_ms if max_stale is None else _zero_or_ms(max_stale, "max_stale"),
            throttle_ms=self._stale_throttle_ms if throttle is None else _zero_or_ms(throttle, "throttle"),
            negative_ttl_ms=_timeout_ms(negative_ttl, "negative_ttl"),
        )
        if soft_timeout is not None or hard_timeout is not None:
            timeouts = _lib.rcache_timeout_options(
                soft_timeout_ms=_timeout_ms(soft_timeout, "soft_timeout"),
                hard_timeout_ms=_timeout_ms(hard_timeout, "hard_timeout"),
            )
            return self._compute_timed(_key(key), options, failsafe, timeouts, compute)
        stale: List[bool] = []
        value = self._compute(_get_or_compute_failsafe, _key(key), options, failsafe, compute, stale)
        return Computed(value, bool(stale))

    def _compute_options(
        self,
        ttl: Ttl,
        tags: Optional[Iterable[Key]],
        wait_timeout: Optional[Seconds],
        lock_lease: Optional[Seconds],
        wait_fails: bool,
        beta: float,
    ) -> Tuple[Any, Any]:
        """The rcache_compute_options of a call, and the tag array it points
        to (keep it alive while the options are used)."""
        options = _lib.rcache_compute_options(
            ttl_ms=_ttl_ms(ttl),
            lock_lease_ms=_timeout_ms(lock_lease, "lock_lease"),
            wait_timeout_ms=_timeout_ms(wait_timeout, "wait_timeout"),
            fail_on_wait_timeout=bool(wait_fails),
            early_refresh_beta=_beta(beta),
        )
        tag_array = None
        if tags is not None:
            tag_array, options.tag_count = _tags(tags)
            options.tags = cast(tag_array, POINTER(_Bytes))
        return options, tag_array

    def _compute(
        self,
        function: Callable[..., int],
        key: bytes,
        options: Any,
        failsafe: Any,
        compute: Callable[[], Optional[BytesLike]],
        stale: Optional[List[bool]] = None,
    ) -> Optional[bytes]:
        """Calls a get-or-compute export (with failsafe unless it is None)
        with compute as its callback; the value, None for "no value", and
        True appended to stale when the value is stale."""
        raised = []

        computing = self._computing

        def callback(_user_data: Optional[int], output: Any) -> bool:
            thread = threading.get_ident()
            computing.append(thread)
            try:
                computed = compute()
                value = None if computed is None else _value(computed)
            except BaseException as error:  # re-raised below, on the caller's side
                raised.append(error)
                return False
            finally:
                computing.remove(thread)
            if value is None:
                if failsafe is None:
                    raised.append(TypeError("compute returned None: use get_or_compute for \"no value\""))
                    return False
                return bool(_compute_output_set_none(output) == _OK)
            stored: int = _compute_output_set(output, value, len(value))
            return stored == _OK

        buffer = _Buffer()
        c_callback = _lib.compute_fn(callback)
        if failsafe is None:
            status = self._invoke(function, key, len(key), byref(options), c_callback, None, byref(buffer))
        else:
            status = self._invoke(function, key, len(key), byref(options), byref(failsafe), c_callback, None, byref(buffer))
        if status == _lib.STATUS_NO_VALUE:
            return None
        if raised and status != _lib.STATUS_STALE:
            raise raised[0]
        if status not in (_OK, _lib.STATUS_STALE):
            raise from_status(status)
        if status == _lib.STATUS_STALE and stale is not None:
            stale.append(True)
        try:
            return string_at(buffer.data, buffer.len)
        finally:
            _buffer_free(byref(buffer))

    def _compute_timed(
        self,
        key: bytes,
        options: Any,
        failsafe: Any,
        timeouts: Any,
        compute: Callable[[], Optional[BytesLike]],
    ) -> Computed:
        """get_or_compute with timeouts: compute waits in _timed until the
        library releases it."""
        token = next(_timed_tokens)
        job = _timed[token] = _TimedComputation(compute, self._computing)
        buffer = _Buffer()
        try:
            status = self._invoke(
                _get_or_compute_timed, key, len(key), byref(options), byref(failsafe), byref(timeouts),
                _timed_compute, token, _timed_free, byref(buffer),
            )
        except BaseException:
            _timed.pop(token, None)  # the library never saw it
            raise
        job.returned = True
        if status == _lib.STATUS_NO_VALUE:
            return Computed(None, False)
        # The callback's exception counts only if it made the call fail: a
        # computation that outlived a timeout may raise while we read.
        if status == _lib.STATUS_COMPUTE_FAILED and job.raised:
            raise job.raised[0]
        if status not in (_OK, _lib.STATUS_STALE):
            raise from_status(status)
        try:
            return Computed(string_at(buffer.data, buffer.len), status == _lib.STATUS_STALE)
        finally:
            _buffer_free(byref(buffer))

    def set_ttl_jitter(self, percent: int) -> None:
        """Every entry written from now on with a TTL (set, set_many,
        compare_and_set, hash_set, get_or_set, get_or_compute) lives up to
        percent percent less, at random, so that entries written together do
        not expire together; 0 turns it off. Sessions and locks keep their
        exact lifetimes."""
        if isinstance(percent, bool) or not isinstance(percent, int):
            raise TypeError(f"percent must be an int, not {type(percent).__name__}")
        if not 0 <= percent <= 100:
            raise InvalidArgumentError(f"TTL jitter must be between 0 and 100 percent, not {percent}")
        status = self._invoke(_set_ttl_jitter, percent)
        if status != _OK:
            raise from_status(status)

    def stats(self) -> Dict[str, int]:
        """This client's counters as a dict: hits, misses, computations,
        lock_waits, early_refreshes, fail_opens, breaker_trips, breaker_skips,
        connection_errors, timeout_errors, server_errors, other_errors,
        latency_p50_us / latency_p99_us / latency_max_us of calls to the
        backend, and for a near cache (0 without one) near_hits (also in
        hits), near_misses, near_invalidations, near_evictions, near_flushes,
        near_entries and near_bytes (see rcache_stats in rcache.h); and for
        get_or_compute stale_served, throttles and negative_hits; and for
        auto-recovery recovery_queue (deletes, invalidations and clears
        waiting for Redis to come back), recovery_replays and
        recovery_overflows (see rcache_failsafe_stats)."""
        stats = _lib.rcache_stats()
        status = self._invoke(_stats, byref(stats))
        if status != _OK:
            raise from_status(status)
        failsafe = _lib.rcache_failsafe_stats()
        status = self._invoke(_failsafe_stats, byref(failsafe))
        if status != _OK:
            raise from_status(status)
        counts = {name: getattr(stats, name) for name in _STAT_NAMES}
        counts.update((name, getattr(failsafe, name)) for name in _FAILSAFE_STAT_NAMES)
        return counts

    def incr(self, key: Key, delta: int = 1, ttl: Ttl = None) -> int:
        """Adds delta to the integer counter at key and returns the new value.
        A missing counter starts at 0 and gets ttl; an existing one keeps its
        TTL. WrongTypeError if the stored value is not an integer."""
        key = _key(key)
        delta = _int64(delta, "delta")
        ttl_ms = _ttl_ms(ttl)
        result = c_int64()
        status = self._invoke(_incr, key, len(key), delta, ttl_ms, result)
        if status != _OK:
            raise from_status(status)
        return result.value
