"""Cache: a Client that stores pickled Python objects."""

from __future__ import annotations

import functools
import pickle
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union, cast

from ._convert import _key
from ._signing import SIGNED, Signer, secret_key_bytes
from .client import Client, Key, Ttl
from .errors import CorruptValueError

if TYPE_CHECKING:
    from typing import ParamSpec

    _P = ParamSpec("_P")

_T = TypeVar("_T")

__all__ = ["Cache"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_MISSING = object()
# What Client.incr stores: decimal integer text.
_COUNTER = re.compile(rb"-?[0-9]+\Z")


def _dumps(obj: object) -> bytes:
    return pickle.dumps(obj, _PROTOCOL)


def _loads(key: Key, data: bytes) -> Any:
    # Protocol 2+ pickles start with PROTO (0x80, version) and end with STOP.
    # Checking that first keeps raw bytes that happen to parse as a protocol-0
    # pickle (b"N." is None) from being returned as a value.
    if len(data) >= 3 and data[0] == 0x80 and 2 <= data[1] <= _PROTOCOL and data[-1] == 0x2E:
        try:
            return pickle.loads(data)
        except Exception as error:
            raise CorruptValueError(f"value of key {key!r} does not unpickle: {error!r}") from error
    if _COUNTER.match(data):
        return int(data)
    raise CorruptValueError(
        f"value of key {key!r} ({len(data)} bytes) was not written by rcache.Cache: "
        f"it is not a pickle (starts with {data[:8]!r})"
    )


class Cache:
    """Stores Python objects, pickled with the highest protocol, in a Client.

    ``Cache(url, **options)`` opens (and owns) a Client with those arguments;
    ``Cache(client=existing)`` wraps one without owning it (close() then
    leaves it open). ``ttl`` follows Client.set: seconds, None for the default,
    NO_EXPIRY for none. A cached None is a hit.

    Counters written by incr() are plain integer text, which get() reads
    back as int. Any other value that is not a pickle, or fails to
    unpickle, raises CorruptValueError, as does an entry the library finds
    damaged. Unpickling runs code chosen by whoever
    can write to the cache: use it only with a trusted Redis, or give a
    ``secret_key`` (str or bytes): every pickle is then stored signed with an
    HMAC-SHA256 of the key and the pickle, and get() raises
    CorruptValueError, without unpickling, for a value that is unsigned or
    signed with another key or for another key. Counters (incr) are integer
    text, never unpickled, and stay unsigned. A signed value starts with a
    NUL byte: a Cache without the key raises CorruptValueError for it.
    """

    def __init__(
        self,
        url: Union[str, bytes, None] = None,
        *,
        client: Optional[Client] = None,
        secret_key: Union[str, bytes, None] = None,
        **options: Any,
    ) -> None:
        secret = secret_key_bytes(secret_key)
        if client is not None:
            if url is not None or options:
                raise TypeError("pass either client= or url/options, not both")
            if not isinstance(client, Client):
                raise TypeError(f"client must be an rcache.Client, not {type(client).__name__}")
            self._owns_client = False
        else:
            client = Client(url, **options)
            self._owns_client = True
        self.client = client
        self._signer = None if secret is None else Signer(secret, client.prefix)

    def __repr__(self) -> str:
        return f"<rcache.Cache {self.client!r}>"

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the Client if this Cache opened it. Idempotent."""
        if self._owns_client:
            self.client.close()

    def _dumps(self, key: Key, obj: object) -> bytes:
        data = _dumps(obj)
        return data if self._signer is None else self._signer.sign(_key(key), data)

    def _loads(self, key: Key, stored: bytes) -> Any:
        if self._signer is None or _COUNTER.match(stored):
            return _loads(key, stored)
        data = self._signer.verify(_key(key), stored)
        if data is None:
            what = "is signed for another key or with another secret_key" if stored.startswith(SIGNED) else "is not signed"
            raise CorruptValueError(f"value of key {key!r} {what}: not unpickled")
        return _loads(key, data)

    def get(self, key: Key, default: Any = None) -> Any:
        """The object stored under key, or default on a miss."""
        data = self.client.get(key)
        if data is None:
            return default
        return self._loads(key, data)

    def set(self, key: Key, obj: object, ttl: Ttl = None, tags: Optional[Iterable[Key]] = None) -> None:
        """Stores obj (anything picklable) under key; tags as in Client.set."""
        self.client.set(key, self._dumps(key, obj), ttl, tags)

    def add_tags(self, key: Key, tags: Iterable[Key]) -> bool:
        """Adds tags to an existing entry, keeping it and its TTL; False if
        missing (see Client.add_tags)."""
        return self.client.add_tags(key, tags)

    def invalidate_tags(self, tags: Iterable[Key]) -> None:
        """Makes every entry carrying any of tags (an iterable) unreadable
        (see Client.invalidate_tags)."""
        self.client.invalidate_tags(tags)

    def clear(self, pattern: Optional[Key] = None) -> int:
        """Deletes the namespace's keys matching the glob pattern, or all of
        them when None; returns how many (see Client.clear)."""
        return self.client.clear(pattern)

    def get_many(self, keys: Iterable[Key], default: Any = None) -> List[Any]:
        """Objects of keys in one round trip, in order; default for each miss."""
        keys = list(keys) if not isinstance(keys, (str, bytes)) else keys
        values = self.client.get_many(keys)
        return [default if data is None else self._loads(key, data) for key, data in zip(keys, values)]

    def set_many(
        self,
        items: Union[Mapping[str, object], Mapping[bytes, object], Iterable[Tuple[Key, object]]],
        ttl: Ttl = None,
    ) -> None:
        """Stores every (key, obj) of items (a mapping or pairs), all or nothing."""
        if hasattr(items, "items"):
            items = items.items()
        self.client.set_many([(key, self._dumps(key, obj)) for key, obj in items], ttl)

    def delete(self, key: Key) -> bool:
        """Deletes key; True if it existed."""
        return self.client.delete(key)

    def exists(self, key: Key) -> bool:
        """True if key exists."""
        return self.client.exists(key)

    def ttl(self, key: Key) -> Optional[float]:
        """Seconds left, -1.0 for no expiry, None if missing (see Client.ttl)."""
        return self.client.ttl(key)

    def expire(self, key: Key, ttl: Ttl) -> bool:
        """New TTL for an existing key; False if missing (see Client.expire)."""
        return self.client.expire(key, ttl)

    def incr(self, key: Key, delta: int = 1, ttl: Ttl = None) -> int:
        """Adds delta to the integer counter at key; returns the new value.
        The counter is stored as integer text (not pickled); get() reads it as int."""
        return self.client.incr(key, delta, ttl)

    def get_or_set(
        self, key: Key, fn: Callable[[], object], ttl: Ttl = None, tags: Optional[Iterable[Key]] = None, **options: Any
    ) -> Any:
        """The cached object; on a miss fn() makes it, and it is pickled and
        stored with ttl and tags. One computation per key across threads and
        processes (see Client.get_or_set for wait_timeout, lock_lease,
        wait_fails and beta). If fn raises, its exception propagates and
        nothing is stored."""
        data = self.client.get_or_set(key, lambda: self._dumps(key, fn()), ttl=ttl, tags=tags, **options)
        return self._loads(key, data)

    def cached(
        self,
        ttl: Ttl = None,
        tags: Optional[Iterable[Key]] = None,
        key: Union[str, Callable[..., Key], None] = None,
        **options: Any,
    ) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]:
        """Decorator: caches a function's result per arguments with
        get_or_set. The key is ``key`` (a str, or a callable of the
        function's arguments returning one), by default the function's
        qualified name and the repr of its arguments."""

        def decorate(function: Callable[_P, _T]) -> Callable[_P, _T]:
            name = f"{function.__module__}.{function.__qualname__}"

            @functools.wraps(function)
            def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
                if callable(key):
                    entry = key(*args, **kwargs)
                elif key is not None:
                    entry = key
                else:
                    entry = f"{name}:{args!r}:{sorted(kwargs.items())!r}"
                return cast(_T, self.get_or_set(entry, lambda: function(*args, **kwargs), ttl=ttl, tags=tags, **options))

            return wrapper

        return decorate
