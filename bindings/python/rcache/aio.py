"""asyncio: :class:`Client` and :class:`SessionStore` for event loops, which
must never block on I/O.

Calls go through librcache's completion queue (``rcache_queue_*`` in
rcache.h): a coroutine submits its call, which returns at once, and awaits a
future; a fixed pool of library threads (``workers``, 8 by default) runs the
calls, however many are pending, and the event loop watches the queue's file
descriptor (``loop.add_reader``) and resolves the futures of finished calls.

get, set (tags included), delete, invalidate_tags and the session store's
create, load, save and destroy go through the queue. The other methods run
the synchronous :class:`rcache.Client` method in the loop's default executor
(``loop.run_in_executor``); their docstrings say "(executor)". stats() reads
counters in memory and does not wait.
"""

from __future__ import annotations

import asyncio
import functools
import numbers
from ctypes import byref, c_size_t, c_void_p, string_at
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union

from . import _lib
from ._lib import lib as _c
from ._convert import BytesLike, FieldValue, Key, Seconds, Ttl, _key, _tags, _ttl_ms, _uint64, _value
from .client import Client as _SyncClient
from .errors import ClosedError, InvalidArgumentError, from_status, with_message
from .session import Session, _fields, _read_record
from .session import SessionStore as _SyncSessionStore

__all__ = ["Client", "SessionStore"]

_OK = _lib.STATUS_OK
_MISS = _lib.STATUS_MISS
_Completion = _lib.rcache_completion
# Completions collected per turn of the loop: the descriptor stays readable
# while more wait, so the loop runs other callbacks between batches.
_BATCH = 64

_poll = _c.rcache_queue_poll
_completion_free = _c.rcache_completion_free
_submit_get = _c.rcache_queue_submit_get
_submit_set = _c.rcache_queue_submit_set
_submit_set_tagged = _c.rcache_queue_submit_set_tagged
_submit_invalidate_tags = _c.rcache_queue_submit_invalidate_tags
_submit_delete = _c.rcache_queue_submit_delete

_T = TypeVar("_T")

# --- what each kind of call gives back, from its completion (OK or MISS) ------


def _nothing(_completion: _Completion) -> None:
    return None


def _was_found(completion: _Completion) -> bool:
    found: bool = completion.status == _OK
    return found


def _value_or_none(completion: _Completion) -> Optional[bytes]:
    if completion.status == _MISS:
        return None
    return string_at(completion.value.data, completion.value.len)


def _new_session(completion: _Completion) -> Tuple[str, str]:
    new = completion.session
    return new.id.decode("ascii"), new.secret.decode("ascii")


def _session_or_none(completion: _Completion) -> Optional[Session]:
    if completion.status == _MISS:
        return None
    return _read_record(completion.record)


def _version_or_none(completion: _Completion) -> Optional[int]:
    if completion.status == _MISS:
        return None
    version: int = completion.version
    return version


def _workers(workers: object) -> int:
    """The worker count as rcache_queue_new takes it (0 for the default)."""
    if workers is None:
        return 0
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral):
        raise TypeError(f"workers must be an int, not {type(workers).__name__}")
    if not 1 <= int(workers) <= _lib.QUEUE_MAX_WORKERS:
        raise InvalidArgumentError(f"workers must be between 1 and {_lib.QUEUE_MAX_WORKERS}")
    return int(workers)


class Client:
    """An asyncio client: the methods of :class:`rcache.Client`, as coroutines.

    ``Client(url, workers=None, **options)`` takes the URL and keyword options
    of :class:`rcache.Client` and connects at once, which may block up to
    ``connect_timeout``; ``await Client.connect(...)`` connects in the
    executor instead. workers is the number of library threads running calls
    (``RCACHE_QUEUE_DEFAULT_WORKERS``, 8, when None); more calls than that
    wait their turn, in order, without blocking the loop.

    A Client belongs to the event loop that first uses it (the loop watches
    its descriptor); use it from that loop's thread only. If that loop is
    closed, the next loop to use it takes it over. A cancelled call still
    runs; its result is dropped. Close it with ``await client.close()`` or
    ``async with``; calls still pending then raise :class:`rcache.ClosedError`.
    """

    def __init__(self, url: Union[str, bytes, None] = None, *, workers: Optional[int] = None, **options: Any) -> None:
        self._queue: Optional[c_void_p] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._pending: Dict[int, Tuple[asyncio.Future[Any], Callable[[_Completion], Any]]] = {}
        self._next_token = 0
        self._batch = (_Completion * _BATCH)()
        self._count = c_size_t()
        count = _workers(workers)
        #: The synchronous client behind this one: its connection is shared.
        self.sync = _SyncClient(url, **options)
        queue = c_void_p()
        status = self.sync._invoke(_c.rcache_queue_new, count, byref(queue))
        if status != _OK:
            error = from_status(status)
            self.sync.close()
            raise error
        self._queue = queue
        self._fd: int = _c.rcache_queue_fd(queue)

    @classmethod
    async def connect(cls, url: Union[str, bytes, None] = None, *, workers: Optional[int] = None, **options: Any) -> Client:
        """A Client made in the loop's default executor, so that waiting for
        the first connection does not block the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(cls, url, workers=workers, **options))

    def __repr__(self) -> str:
        return f"<rcache.aio.Client {self.sync._url!r} {'closed' if self._queue is None else 'open'}>"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __reduce__(self) -> str:
        raise TypeError("an rcache.aio.Client cannot be pickled; create one in each process")

    def __del__(self) -> None:
        try:
            self._close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._queue is None

    async def close(self) -> None:
        """Stops watching the descriptor, frees the queue (calls running
        finish in the background and their results are dropped), fails the
        calls still pending with ClosedError, then closes the synchronous
        client in the loop's default executor: that waits for the executor
        calls still running, and the loop keeps running meanwhile. Idempotent."""
        self._close_queue()
        if not self.sync.closed:
            await asyncio.get_running_loop().run_in_executor(None, self.sync.close)

    def _close(self) -> None:
        """close() without a loop (for __del__): the synchronous client's
        close waits here for its executor calls."""
        self._close_queue()
        self.sync.close()

    def _close_queue(self) -> None:
        queue = self._queue
        if queue is not None:
            self._queue = None
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.remove_reader(self._fd)
            _c.rcache_queue_free(queue)
            pending, self._pending = self._pending, {}
            for future, _ in pending.values():
                if not future.done() and not future.get_loop().is_closed():
                    future.set_exception(ClosedError("this Client was closed while the call was pending"))

    def _watch(self) -> asyncio.AbstractEventLoop:
        """The running loop, watching the queue's descriptor."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise RuntimeError("this rcache.aio.Client belongs to another event loop, which is still open")
            # Futures of a closed loop can never be awaited again.
            self._pending.clear()
            loop.add_reader(self._fd, self._drain)
            self._loop = loop
        return loop

    def _submit(self, convert: Callable[[_Completion], _T], submit: Callable[..., int], *args: Any) -> asyncio.Future[_T]:
        """Submits submit(queue, token, *args); the future of its converted result."""
        queue = self._queue
        if queue is None:
            raise self.sync._unusable() if self.sync.closed else ClosedError("this Client is closed")
        loop = self._watch()
        token = self._next_token
        self._next_token = token + 1
        status = submit(queue, token, *args)
        if status != _OK:
            raise from_status(status)
        future: asyncio.Future[_T] = loop.create_future()
        self._pending[token] = (future, convert)
        return future

    def _drain(self) -> None:
        """The loop's reader callback: resolves the futures of up to _BATCH
        finished calls. The descriptor stays readable while more are
        finished, so the loop calls it again on its next turn, after the
        other ready callbacks: the work per turn does not grow with the
        number of calls finishing at once."""
        queue = self._queue
        if queue is None:
            return
        batch, count = self._batch, self._count
        status = _poll(queue, batch, _BATCH, byref(count))
        if status != _OK:
            error = from_status(status)
            pending, self._pending = self._pending, {}
            for future, _ in pending.values():
                if not future.done():
                    future.set_exception(error)
            return
        for index in range(count.value):
            completion = batch[index]
            try:
                entry = self._pending.pop(completion.token, None)
                if entry is None or entry[0].done():
                    continue
                future, convert = entry
                status = completion.status
                if status == _OK or status == _MISS:
                    try:
                        result = convert(completion)
                    except Exception as error:  # e.g. a session field name that is not UTF-8
                        future.set_exception(error)
                    else:
                        future.set_result(result)
                else:
                    message = completion.message
                    future.set_exception(with_message(status, message.decode("utf-8", "replace") if message else ""))
            finally:
                if completion.value.data or completion.record or completion.message:
                    _completion_free(byref(completion))

    async def _in_executor(self, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(function, *args, **kwargs))

    # --- through the queue -----------------------------------------------

    async def get(self, key: Key) -> Optional[bytes]:
        """The value stored under key (bytes), or None if it is missing."""
        key = _key(key)
        return await self._submit(_value_or_none, _submit_get, key, len(key))

    async def set(self, key: Key, value: BytesLike, ttl: Ttl = None, tags: Optional[Iterable[Key]] = None) -> None:
        """Stores value under key, as :meth:`rcache.Client.set` (ttl, tags)."""
        key = _key(key)
        value = _value(value)
        ttl_ms = _ttl_ms(ttl)
        tag_array, tag_count = (None, 0) if tags is None else _tags(tags)
        if tag_count:
            await self._submit(_nothing, _submit_set_tagged, key, len(key), value, len(value), ttl_ms, tag_array, tag_count)
        else:
            await self._submit(_nothing, _submit_set, key, len(key), value, len(value), ttl_ms)

    async def delete(self, key: Key) -> bool:
        """Deletes key; True if it existed."""
        key = _key(key)
        return await self._submit(_was_found, _submit_delete, key, len(key))

    async def invalidate_tags(self, tags: Iterable[Key]) -> None:
        """Invalidates every tag of tags, as :meth:`rcache.Client.invalidate_tags`."""
        tag_array, tag_count = _tags(tags)
        await self._submit(_nothing, _submit_invalidate_tags, tag_array, tag_count)

    # --- in the executor ---------------------------------------------------

    async def get_with_ttl(self, key: Key) -> Optional[Tuple[bytes, float]]:
        """(executor) As :meth:`rcache.Client.get_with_ttl`."""
        return await self._in_executor(self.sync.get_with_ttl, key)

    async def compare_and_set(self, key: Key, expected: BytesLike, value: BytesLike, ttl: Ttl = None) -> bool:
        """(executor) As :meth:`rcache.Client.compare_and_set`."""
        return await self._in_executor(self.sync.compare_and_set, key, expected, value, ttl)

    async def add_tags(self, key: Key, tags: Iterable[Key]) -> bool:
        """(executor) As :meth:`rcache.Client.add_tags`."""
        return await self._in_executor(self.sync.add_tags, key, list(tags))

    async def clear(self, pattern: Optional[Key] = None) -> int:
        """(executor) As :meth:`rcache.Client.clear`."""
        return await self._in_executor(self.sync.clear, pattern)

    async def keys(self, pattern: Optional[Key] = None) -> List[bytes]:
        """(executor) As :meth:`rcache.Client.keys`."""
        return await self._in_executor(self.sync.keys, pattern)

    async def hash_get(self, key: Key) -> Optional[Dict[bytes, bytes]]:
        """(executor) As :meth:`rcache.Client.hash_get`."""
        return await self._in_executor(self.sync.hash_get, key)

    async def hash_set(
        self,
        key: Key,
        mapping: Union[Mapping[str, FieldValue], Mapping[bytes, FieldValue], Iterable[Tuple[Key, FieldValue]]],
        ttl: Ttl = None,
        condition: str = "always",
    ) -> bool:
        """(executor) As :meth:`rcache.Client.hash_set`."""
        return await self._in_executor(self.sync.hash_set, key, mapping, ttl, condition)

    async def lock(self, key: Key, owner: Key, lease: Seconds) -> bool:
        """(executor) As :meth:`rcache.Client.lock`."""
        return await self._in_executor(self.sync.lock, key, owner, lease)

    async def extend_lock(self, key: Key, owner: Key, lease: Seconds) -> bool:
        """(executor) As :meth:`rcache.Client.extend_lock`."""
        return await self._in_executor(self.sync.extend_lock, key, owner, lease)

    async def unlock(self, key: Key, owner: Key) -> bool:
        """(executor) As :meth:`rcache.Client.unlock`."""
        return await self._in_executor(self.sync.unlock, key, owner)

    async def server_info(self) -> Dict[str, Any]:
        """(executor) As :meth:`rcache.Client.server_info`."""
        return await self._in_executor(self.sync.server_info)

    async def exists(self, key: Key) -> bool:
        """(executor) As :meth:`rcache.Client.exists`."""
        return await self._in_executor(self.sync.exists, key)

    async def ttl(self, key: Key) -> Optional[float]:
        """(executor) As :meth:`rcache.Client.ttl`."""
        return await self._in_executor(self.sync.ttl, key)

    async def expire(self, key: Key, ttl: Ttl) -> bool:
        """(executor) As :meth:`rcache.Client.expire`."""
        return await self._in_executor(self.sync.expire, key, ttl)

    async def get_many(self, keys: Iterable[Key]) -> List[Optional[bytes]]:
        """(executor) As :meth:`rcache.Client.get_many`."""
        return await self._in_executor(self.sync.get_many, list(keys))

    async def set_many(
        self,
        items: Union[Mapping[str, BytesLike], Mapping[bytes, BytesLike], Iterable[Tuple[Key, BytesLike]]],
        ttl: Ttl = None,
    ) -> None:
        """(executor) As :meth:`rcache.Client.set_many`."""
        await self._in_executor(self.sync.set_many, items, ttl)

    async def get_or_set(self, key: Key, compute: Callable[[], BytesLike], ttl: Ttl = None, **options: Any) -> bytes:
        """(executor) As :meth:`rcache.Client.get_or_set`: compute is a plain
        function, and it runs on the executor's thread, not in the loop."""
        return await self._in_executor(self.sync.get_or_set, key, compute, ttl, **options)

    async def incr(self, key: Key, delta: int = 1, ttl: Ttl = None) -> int:
        """(executor) As :meth:`rcache.Client.incr`."""
        return await self._in_executor(self.sync.incr, key, delta, ttl)

    def stats(self) -> Dict[str, int]:
        """The client's counters, as :meth:`rcache.Client.stats` (no I/O, not a coroutine)."""
        return self.sync.stats()


class SessionStore:
    """The sessions under ``namespace`` of an aio :class:`Client`, as
    :class:`rcache.SessionStore` keeps them: create, load, save and destroy
    go through the queue; touch, purge, lock and unlock run in the executor."""

    def __init__(self, client: Client, namespace: Key = "sess:") -> None:
        self.client = client
        self._namespace = _key(namespace, "namespace")
        self._sync = _SyncSessionStore(client.sync, self._namespace)

    async def create(self, fields: Optional[Mapping[str, BytesLike]] = None, ttl: Ttl = None) -> Tuple[str, str]:
        """A new session holding fields (dict of str to bytes); (id, secret) as str."""
        names, values, count = _fields(fields)
        namespace = self._namespace
        submit = _c.rcache_queue_submit_session_create
        return await self.client._submit(
            _new_session, submit, namespace, len(namespace), names, values, count, _ttl_ms(ttl)
        )

    async def load(self, session_id: Key, secret: Key, slide: Ttl = None) -> Optional[Session]:
        """The Session, or None when the id is unknown or the secret wrong;
        slide renews its expiry, as :meth:`rcache.SessionStore.load`."""
        session_id, secret = _key(session_id, "session id"), _key(secret, "secret")
        slide_ms = _lib.SESSION_NO_SLIDE if slide is None else _ttl_ms(slide)
        namespace = self._namespace
        return await self.client._submit(
            _session_or_none, _c.rcache_queue_submit_session_load,
            namespace, len(namespace), session_id, len(session_id), secret, len(secret), slide_ms,
        )

    async def save(
        self,
        session_id: Key,
        secret: Key,
        fields: Optional[Mapping[str, BytesLike]] = None,
        delete: Iterable[Key] = (),
        version: Optional[int] = None,
        ttl: Ttl = None,
    ) -> Optional[int]:
        """As :meth:`rcache.SessionStore.save`: the new version, None when
        the session is missing, ConflictError when version is stale."""
        session_id, secret = _key(session_id, "session id"), _key(secret, "secret")
        names, values, count = _fields(fields)
        deleted, deleted_count = _tags([name.encode("utf-8") if isinstance(name, str) else name for name in delete])
        namespace = self._namespace
        return await self.client._submit(
            _version_or_none, _c.rcache_queue_submit_session_save,
            namespace, len(namespace), session_id, len(session_id), secret, len(secret), _uint64(version or 0, "version"),
            names, values, count, deleted, deleted_count, _ttl_ms(ttl),
        )

    async def destroy(self, session_id: Key, secret: Key) -> bool:
        """Deletes the session; False when it is missing or the secret wrong."""
        session_id, secret = _key(session_id, "session id"), _key(secret, "secret")
        namespace = self._namespace
        return await self.client._submit(
            _was_found, _c.rcache_queue_submit_session_destroy,
            namespace, len(namespace), session_id, len(session_id), secret, len(secret),
        )

    async def touch(self, session_id: Key, secret: Key, ttl: Ttl = None) -> bool:
        """(executor) As :meth:`rcache.SessionStore.touch`."""
        return await self.client._in_executor(self._sync.touch, session_id, secret, ttl)

    async def purge(self, idle: Seconds) -> int:
        """(executor) As :meth:`rcache.SessionStore.purge`."""
        return await self.client._in_executor(self._sync.purge, idle)

    async def lock(self, session_id: Key, secret: Key, lease: Seconds = 10) -> Optional[str]:
        """(executor) As :meth:`rcache.SessionStore.lock`."""
        return await self.client._in_executor(self._sync.lock, session_id, secret, lease)

    async def unlock(self, session_id: Key, owner: str) -> bool:
        """(executor) As :meth:`rcache.SessionStore.unlock`."""
        return await self.client._in_executor(self._sync.unlock, session_id, owner)
