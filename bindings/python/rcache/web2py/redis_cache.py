"""Drop-in for web2py's ``gluon.contrib.redis_cache`` over rcache.

Same call contract and the same data in Redis: a value cached under ``key``
by application ``app`` is the pickle of the value at
``w2p:cache:<app>:<key with spaces replaced by _>``, with the TTL
``time_expire``, so processes running the old module and processes running
this one share entries during a rolling upgrade. Entries stored with tags or
signed with ``secret_key`` use a format the old module cannot read; it treats
them as unreadable values.

Fixed on purpose (see docs/web2py.md): ``clear(regex)`` matches
keys without their prefix and ``clear()`` clears the application; counters are
readable through ``cache()``, cleared by ``clear()`` and expire; the locked
path honours ``time_expire``, waits a bounded time and keeps its lock for as
long as the computation runs; a miss is one write (no bucket index, no KEYS);
statistics are per application; calls are bounded by the connection's timeouts
and ``fail_gracefully`` never blocks; ``secret_key`` refuses unsigned values.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import pickle
import re
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, TypeVar, Union, cast

from .._signing import SIGNED, Signer, secret_key_bytes
from ..client import KEEP_TTL, Client, Key
from ..errors import ConflictError, ConnectionError, TimeoutError, WrongTypeError
from . import _web2py
from ._namespace import NamespaceClient
from .redis_utils import as_connection

__all__ = ["RedisCache", "RedisClient"]

logger = logging.getLogger("web2py.cache.redis")

#: TTL of ``time_expire=None`` and of new counters: one day.
DEFAULT_TIME_EXPIRE = 24 * 60 * 60

# A counter written by increment(): decimal text, read back as an int.
_COUNTER = re.compile(rb"-?[0-9]{1,19}")
_UNAVAILABLE = (ConnectionError, TimeoutError)
# Where fail_gracefully keeps the last value stored for a key (after the key).
_STALE = b":__stale"

_T = TypeVar("_T")

_instances: Dict[str, RedisClient] = {}
_instances_lock = threading.Lock()


def RedisCache(
    redis_conn: Any = None,
    debug: bool = False,
    with_lock: bool = False,
    fail_gracefully: bool = False,
    db: object = None,
    application: Optional[str] = None,
    secret_key: Union[str, bytes, None] = None,
    lock_wait: float = 10.0,
    lock_lease: float = 10.0,
    **connection: Any,
) -> RedisClient:
    """The cache of this application, created by the first call (later calls
    return it and ignore their arguments, as before).

    redis_conn: from ``RConn()``, a redis-py client (its settings are used),
    or None for ``RConn(application)``. Instead of redis_conn, redis-py's
    connection keywords (``host``, ``port``, ``password``, ``username``,
    ``ssl``, ``socket_timeout``, ``decode_responses``, ...) or ``url=``, as
    ``RConn`` takes them. debug: count hits and misses, shown
    by ``stats()``. with_lock: default of the per-call ``with_lock``.
    fail_gracefully: while Redis is unreachable, compute and return values
    without caching; and when f() raises, return the last value it stored
    for the key instead, if one is kept (see ``RedisClient.max_stale``). db:
    the database, with connection keywords (ignored with redis_conn).
    application: defaults to
    ``current.request.application``. secret_key (str or bytes): sign stored
    values and treat unsigned or forged ones as misses, never unpickling them.
    lock_wait: seconds a locked call waits for another process's computation
    before computing itself. lock_lease: seconds the lock outlives a crashed
    holder; a live holder renews it while computing.
    """
    if application is None:
        application = _web2py.application()
    with _instances_lock:
        cache = _instances.get(application)
        if cache is None:
            cache = _instances[application] = RedisClient(
                redis_conn,
                debug=debug,
                with_lock=with_lock,
                fail_gracefully=fail_gracefully,
                application=application,
                secret_key=secret_key,
                lock_wait=lock_wait,
                lock_lease=lock_lease,
                db=db,
                **connection,
            )
        return cache


class _Miss:
    """A read that found no usable value."""


_MISS = _Miss()


class RedisClient:
    """One application's cache. Use :func:`RedisCache` to get it."""

    #: With fail_gracefully: seconds past its expiry a stored value is kept
    #: (at ``<key>:__stale``, with the value's tags) to be returned when f()
    #: raises; each such return is logged and counted in ``stale_served``.
    #: 0 keeps nothing.
    max_stale: float = 3600.0
    #: Calls that returned a stale value because f() raised.
    stale_served: int = 0

    def __init__(
        self,
        redis_conn: Any = None,
        debug: bool = False,
        with_lock: bool = False,
        fail_gracefully: bool = False,
        application: Optional[str] = None,
        secret_key: Union[str, bytes, None] = None,
        lock_wait: float = 10.0,
        lock_lease: float = 10.0,
        db: object = None,
        **connection: Any,
    ) -> None:
        if application is None:
            application = _web2py.application()
        self.application = application
        self.debug = debug
        self.with_lock = with_lock
        self.fail_gracefully = fail_gracefully
        self.lock_wait = _seconds(lock_wait, "lock_wait")
        self.lock_lease = _seconds(lock_lease, "lock_lease")
        self.prefix = f"w2p:cache:{application}:"
        self.r_server: Any = redis_conn
        self._connection = as_connection(redis_conn, application, db, connection)
        if self.r_server is None:
            self.r_server = self._connection
        #: redis-py's commands on this cache's own keys (see :class:`NamespaceClient`).
        self.redis_client = NamespaceClient(
            lambda: self._connection.client_for(self.prefix),
            _key,
            decode_responses=self._connection.decode_responses,
            encoding=self._connection.encoding,
            encoding_errors=self._connection.encoding_errors,
        )
        secret = secret_key_bytes(secret_key)
        # Signed values: see rcache._signing.
        self._signer = None if secret is None else Signer(secret, self.prefix.encode("utf-8"))
        self._stats_keys = (f"w2p:{application}:___cache_stats:hit_total", f"w2p:{application}:___cache_stats:misses")
        self._legacy_index = f"w2p:{application}:___cache_set"
        self._counts_lock = threading.Lock()
        self._unflushed = [0, 0]
        self._flushed_at = time.monotonic()

    def __repr__(self) -> str:
        return f"<rcache.web2py RedisCache {self.application!r} on {self._connection!r}>"

    @property
    def _client(self) -> Client:
        """The Client holding this application's entries."""
        return self._connection.client_for(self.prefix, fail_open=self.fail_gracefully)

    def initialize(self) -> None:
        """Nothing to do (web2py's admin calls it)."""

    # --- the cache call ---------------------------------------------------

    def __call__(
        self,
        key: Key,
        f: Optional[Callable[[], _T]],
        time_expire: Optional[float] = 300,
        with_lock: Optional[bool] = None,
        tags: Optional[Iterable[Key]] = None,
    ) -> Optional[_T]:
        """The value cached under key if it has at most time_expire seconds
        left to live, else f() (stored for time_expire seconds and returned).

        time_expire: seconds (int or float); None means one day; 0 or less
        always recomputes. f=None deletes key and returns None. with_lock:
        one process computes while the others wait for its value (default:
        the cache's with_lock). tags: store the value with these tags (see
        invalidate_tag). Exceptions from f propagate and nothing is stored.
        """
        if time_expire is None:
            time_expire = DEFAULT_TIME_EXPIRE
        elif isinstance(time_expire, bool) or not isinstance(time_expire, numbers.Real) or math.isnan(time_expire):
            raise TypeError(f"time_expire must be a number of seconds or None, not {time_expire!r}")
        encoded = _key(key)
        if f is None:
            self.delete(key)
            return None
        try:
            client = self._client
        except _UNAVAILABLE:
            if not self.fail_gracefully:
                raise
            self._count(hit=False)
            return f()
        if time_expire > 0:
            cached = self._read(client, encoded, time_expire)
            if cached is not _MISS:
                self._count(hit=True)
                return cached  # type: ignore[no-any-return]  # what an f stored
        if with_lock is None:
            with_lock = self.with_lock
        if with_lock:
            return self._compute_locked(client, encoded, f, time_expire, tags)
        self._count(hit=False)
        value, stale = self._compute(client, encoded, f)
        if not stale:
            self._store(client, encoded, value, time_expire, tags)
        return value

    def _compute(self, client: Client, key: bytes, f: Callable[[], _T]) -> Tuple[_T, bool]:
        """(f(), False); with fail_gracefully, when f raises, (the stale copy
        of key, True) if one is kept: it is not stored again."""
        try:
            return f(), False
        except Exception:
            if not self.fail_gracefully or self.max_stale <= 0:
                raise
            try:
                stored = client.get(key + _STALE)
            except _UNAVAILABLE:
                stored = None
            stale = _MISS if stored is None else self._decode(key, stored)
            if stale is _MISS:
                raise
            self.stale_served += 1
            logger.warning("computing %r failed: returning its last stored value (stale)", key, exc_info=True)
            return cast(_T, stale), True  # what an f stored

    def _read(self, client: Client, key: bytes, time_expire: float) -> Any:
        """The value at key if it has at most time_expire seconds left, else _MISS."""
        found = client.get_with_ttl(key)
        if found is None:
            return _MISS
        stored, ttl = found
        if ttl > time_expire:
            return _MISS
        return self._decode(key, stored)

    def _compute_locked(
        self, client: Client, key: bytes, f: Callable[[], _T], time_expire: float, tags: Optional[Iterable[Key]]
    ) -> _T:
        """f() under the lock ``<key>:__lock`` (the old module's lock key and
        protocol, so old and new processes exclude each other)."""
        lock_key = key + b":__lock"
        owner = uuid.uuid4().hex
        held, found = self._acquire(client, key, lock_key, owner, time_expire)
        if found is not _MISS:
            self._count(hit=True)
            return found  # type: ignore[no-any-return]  # what an f stored
        try:
            if held and time_expire > 0:
                # Someone may have computed it while we waited for the lock.
                cached = self._read(client, key, time_expire)
                if cached is not _MISS:
                    self._count(hit=True)
                    return cached  # type: ignore[no-any-return]  # what an f stored
            self._count(hit=False)
            with _leases.renewing(client, lock_key, owner, self.lock_lease) if held else _nothing():
                value, stale = self._compute(client, key, f)
            if not stale:
                self._store(client, key, value, time_expire, tags)
            return value
        finally:
            if held:
                self._unless_unavailable(lambda: client.unlock(lock_key, owner))

    def _acquire(
        self, client: Client, key: bytes, lock_key: bytes, owner: str, time_expire: float
    ) -> Tuple[bool, Any]:
        """(True, _MISS) once the lock is ours; (False, _MISS) when lock_wait
        passed (or Redis is unavailable and fail_gracefully is set); (False,
        value) when another process computed the value meanwhile."""
        deadline = time.monotonic() + self.lock_wait
        delay = 0.002
        while True:
            try:
                if client.lock(lock_key, owner, self.lock_lease):
                    return True, _MISS
                if time_expire > 0:
                    value = self._read(client, key, time_expire)
                    if value is not _MISS:
                        return False, value
            except _UNAVAILABLE:
                if not self.fail_gracefully:
                    raise
                return False, _MISS
            if time.monotonic() >= deadline:
                logger.warning("waited %.1f s for the lock on %r; computing without it", self.lock_wait, key)
                return False, _MISS
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _store(
        self, client: Client, key: bytes, value: object, time_expire: float, tags: Optional[Iterable[Key]]
    ) -> None:
        data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        if self._signer is not None:
            data = self._signer.sign(key, data)
        ttl = time_expire if time_expire > 0 else 1
        if self.fail_gracefully and self.max_stale > 0:
            # First: if the value's write then fails, the copy is still the newest.
            client.set(key + _STALE, data, ttl=ttl + self.max_stale, tags=tags)
        client.set(key, data, ttl=ttl, tags=tags)

    def _decode(self, key: bytes, stored: bytes) -> Any:
        """The value stored at key, or _MISS when it cannot be trusted or read."""
        if _COUNTER.fullmatch(stored):
            if self._signer is not None:
                # Nobody signed it: anyone able to write to Redis could have put it there.
                logger.warning("%r holds an unsigned counter: treated as a miss with secret_key", key)
                return _MISS
            return int(stored)
        if stored.startswith(SIGNED):
            if self._signer is None:
                logger.warning("%r holds a signed value but this cache has no secret_key: treated as a miss", key)
                return _MISS
            verified = self._signer.verify(key, stored)
            if verified is None:
                logger.warning("%r holds a value with a wrong signature: treated as a miss", key)
                return _MISS
            data = verified
        elif self._signer is not None:
            logger.warning("%r holds an unsigned value: treated as a miss", key)
            return _MISS
        else:
            data = stored
        try:
            return pickle.loads(data)
        except Exception as error:
            logger.warning("%r holds a value that does not unpickle (%s): treated as a miss", key, error)
            return _MISS

    # --- tags (web2py's SmartCache pattern) ---------------------------------

    def tag_cache(
        self, key: Key, value: _T, tags: Optional[Iterable[Key]] = None, time_expire: Optional[float] = None
    ) -> _T:
        """Stores value under key, tagged with tags, for time_expire seconds
        (None: one day), and returns it. ``invalidate_tag(tag)`` later makes
        every entry tagged with tag a miss, in every process."""
        if time_expire is None:
            time_expire = DEFAULT_TIME_EXPIRE
        self._store(self._client, _key(key), value, time_expire, list(tags or ()))
        return value

    def invalidate_tag(self, tag: Key) -> None:
        """Makes every entry stored with tag a miss, at the cost of one write."""
        self._client.invalidate_tags([tag])

    # --- counters, deletion, clearing -------------------------------------

    def increment(self, key: Key, value: int = 1) -> Optional[int]:
        """Adds value to the integer at key and returns the result. A missing
        counter starts at 0 and lives one day; an existing one keeps its TTL.
        A cached int (from ``cache()``) becomes a counter. Readable through
        ``cache(key, f, time_expire)``. With fail_gracefully, None while
        Redis is unavailable."""
        encoded = _key(key)

        def increment() -> int:
            client = self._client
            try:
                return client.incr(encoded, value, ttl=DEFAULT_TIME_EXPIRE)
            except WrongTypeError:
                return self._increment_cached_int(client, encoded, value)

        return self._unless_unavailable(increment)

    def _increment_cached_int(self, client: Client, key: bytes, value: int) -> int:
        """Turns the pickled int at key into a counter holding it plus value."""
        for _ in range(100):
            found = client.get_with_ttl(key)
            if found is None:
                return client.incr(key, value, ttl=DEFAULT_TIME_EXPIRE)
            stored, _ttl = found
            current = self._decode(key, stored)
            if isinstance(current, bool) or not isinstance(current, int):
                raise WrongTypeError(f"increment: the value cached at {key!r} is not an integer")
            result = current + value
            if client.compare_and_set(key, stored, str(result).encode(), ttl=KEEP_TTL):
                return result
        raise ConflictError(f"increment: {key!r} kept changing under 100 attempts")

    def delete(self, key: Key) -> int:
        """Deletes key: 1 if it existed, else 0."""
        encoded = _key(key)
        self._unless_unavailable(lambda: self._client.delete(encoded + _STALE))
        return 1 if self._unless_unavailable(lambda: self._client.delete(encoded)) else 0

    def clear(self, regex: Union[str, re.Pattern[str], None] = None) -> int:
        """Deletes the entries whose keys (without the ``w2p:cache:<app>:``
        prefix) match regex from their start, as web2py's RAM cache does; with
        no regex, every entry of this application, tags and counters included,
        and the old module's bucket index. Other applications' keys are never
        touched. Returns how many keys were deleted."""
        client = self._client
        if regex is None:
            deleted = client.clear()
            legacy = self._connection.client_for(b"", fail_open=False)
            deleted += legacy.clear(_glob_escape(self._legacy_index) + "*")
            return deleted
        matcher = re.compile(regex)
        deleted = 0
        for key in client.keys():
            if matcher.match(key.decode("utf-8", "surrogateescape")) and client.delete(key):
                deleted += 1
        return deleted

    # --- statistics --------------------------------------------------------

    def _count(self, hit: bool) -> None:
        if not self.debug:
            return
        with self._counts_lock:
            self._unflushed[0 if hit else 1] += 1
            due = time.monotonic() - self._flushed_at >= 1.0
        if due:
            self._flush_counts()

    def _flush_counts(self) -> None:
        """Adds the counts of this process to the application's counters in Redis."""
        with self._counts_lock:
            counts, self._unflushed = self._unflushed, [0, 0]
            self._flushed_at = time.monotonic()
        try:
            client = self._connection.client_for(b"", fail_open=False)
            for name, count in zip(self._stats_keys, counts):
                if count:
                    client.incr(name, count)
        except Exception as error:  # statistics never fail a cache call
            logger.warning("cache statistics not recorded: %s", error)

    def stats(self) -> Dict[str, Any]:
        """The server's INFO as a dict; with debug, plus ``w2p_stats``: this
        application's ``hit_total`` and ``misses`` over every process."""
        client = self._connection.client_for(b"", fail_open=False)
        info = client.server_info()
        if self.debug:
            self._flush_counts()
            hits, misses = (client.get(name) for name in self._stats_keys)
            info["w2p_stats"] = dict(hit_total=int(hits or 0), misses=int(misses or 0))
        return info

    def _unless_unavailable(self, operation: Callable[[], _T]) -> Optional[_T]:
        """operation(); with fail_gracefully, None while Redis is unavailable."""
        try:
            return operation()
        except _UNAVAILABLE as error:
            if not self.fail_gracefully:
                raise
            logger.error("cache operation skipped: %s", error)
            return None


def _key(key: object) -> bytes:
    """A cache key as bytes, spaces replaced by underscores as before."""
    if isinstance(key, str):
        return key.replace(" ", "_").encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key).replace(b" ", b"_")
    raise TypeError(f"key must be str or bytes, not {type(key).__name__}")


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) > 0:
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")
    return float(value)


def _glob_escape(text: str) -> str:
    """text as a Redis glob matching only itself."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class _LeaseKeeper:
    """Renews held locks every third of their lease, from one daemon thread
    per process, so a lock lasts as long as its computation and no longer."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        # id(entry) -> [client, key, owner, lease, when due]
        self._held: Dict[int, List[Any]] = {}
        self._thread_pid: Optional[int] = None

    @contextmanager
    def renewing(self, client: Client, key: bytes, owner: str, lease: float) -> Iterator[None]:
        entry = [client, key, owner, lease, time.monotonic() + lease / 3]
        with self._changed:
            self._held[id(entry)] = entry
            self._start()
            self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self._held.pop(id(entry), None)

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's computations are not ours to renew,
        and the parent's lock and thread are gone."""
        self._changed = threading.Condition()
        self._held = {}
        self._thread_pid = None

    def _start(self) -> None:
        if self._thread_pid != os.getpid():
            self._thread_pid = os.getpid()
            threading.Thread(target=self._run, name="rcache-lock-leases", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [entry for entry in self._held.values() if entry[4] <= now]
                if not due:
                    next_due = min((entry[4] for entry in self._held.values()), default=None)
                    self._changed.wait(None if next_due is None else next_due - now)
                    continue
                for entry in due:
                    entry[4] = now + entry[3] / 3
            for client, key, owner, lease, _ in due:
                try:
                    if not client.extend_lock(key, owner, lease):
                        logger.warning("lost the lock %r while computing", key)
                except Exception as error:
                    logger.warning("could not renew the lock %r: %s", key, error)


_leases = _LeaseKeeper()
os.register_at_fork(after_in_child=_leases.forget_after_fork)
