"""A redis-py-style client confined to one key prefix: ``RedisCache(...).redis_client``.

Application code written for redis-py (``get``, ``set``, ``delete``,
``expire``, ``sadd``, ``smembers``, ...) runs on it unchanged, but every key
it names lives under the cache's prefix ``w2p:cache:<app>:`` and is mapped as
``cache(key, ...)`` maps keys (spaces become ``_``), so both name the same
entries. There is no way to name a key outside the prefix. Each command is
one or two calls of an rcache :class:`~rcache.Client` on that prefix.

Sets are hash records: each member is a field holding ``1``, and ``srem``
writes ``0`` over it, because rcache's primitives write hash fields but never
remove them. A set therefore exists (and keeps its removed members' fields)
until it is deleted or expires.
"""

from __future__ import annotations

import datetime
import numbers
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Set, Tuple, Union

from ..client import KEEP_TTL, NO_EXPIRY, Client, Ttl

__all__ = ["NamespaceClient"]

_MEMBER = b"1"
_REMOVED = b"0"

Encoded = Union[bytes, str]


class NamespaceClient:
    """redis-py's commands on the keys of one namespace. Replies are what
    redis-py returns: bytes, or str when the connection was made with
    ``decode_responses=True``; missing keys read as None, empty sets and dicts."""

    def __init__(
        self,
        client: Callable[[], Client],
        key: Callable[[bytes], bytes],
        decode_responses: bool = False,
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
    ) -> None:
        """client: returns the Client of the namespace (made again after fork).
        key: maps an encoded key to the key the cache stores it under.
        decode_responses, encoding, encoding_errors: as redis-py's."""
        self._client = client
        self._map_key = key
        self._decode = encoding if decode_responses else None
        self._encoding = encoding
        self._errors = encoding_errors

    def __repr__(self) -> str:
        return f"<rcache.web2py redis_client on {self._client()!r}>"

    # --- conversions ------------------------------------------------------

    def _encode(self, value: Any) -> bytes:
        """A key, field, member or value as redis-py encodes it."""
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode(self._encoding, self._errors)
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, bool):
            raise TypeError("a bool cannot be stored: convert it to bytes, str, int or float first")
        if isinstance(value, (int, float)):
            return repr(value).encode("ascii")
        raise TypeError(f"{type(value).__name__} cannot be stored: convert it to bytes, str, int or float first")

    def _key(self, name: Any) -> bytes:
        return self._map_key(self._encode(name))

    def _reply(self, value: Optional[bytes]) -> Optional[Encoded]:
        if value is None or self._decode is None:
            return value
        return value.decode(self._decode, self._errors)

    # --- strings ------------------------------------------------------------

    def get(self, name: Any) -> Optional[Encoded]:
        """The value at name, None if missing."""
        return self._reply(self._client().get(self._key(name)))

    def mget(self, keys: Any, *args: Any) -> List[Optional[Encoded]]:
        """The values of keys (a list, or several arguments), None for each missing one."""
        names = _list_or_args(keys, args)
        return [self._reply(value) for value in self._client().get_many([self._key(name) for name in names])]

    def set(
        self,
        name: Any,
        value: Any,
        ex: Union[int, datetime.timedelta, None] = None,
        px: Union[int, datetime.timedelta, None] = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
        get: bool = False,
        exat: Any = None,
        pxat: Any = None,
    ) -> Optional[bool]:
        """Stores value at name: True. ex/px: seconds/milliseconds to live;
        keepttl keeps the current expiry. nx (with ex or px): only if name
        is missing, else None. xx, get, exat and pxat are not supported."""
        if xx or get or exat is not None or pxat is not None:
            raise NotImplementedError("redis_client.set supports ex, px, keepttl and nx (with ex or px)")
        seconds = _ttl(ex, px)
        if keepttl and seconds is not None:
            raise ValueError("keepttl cannot be combined with ex or px")
        key, data = self._key(name), self._encode(value)
        if nx:
            if seconds is None:
                raise NotImplementedError("redis_client.set(nx=True) needs ex or px")
            # SET key value NX PX: the primitive rcache's locks are made of.
            return True if self._client().lock(key, data, seconds) else None
        ttl: Ttl = KEEP_TTL if keepttl else NO_EXPIRY if seconds is None else seconds
        self._client().set(key, data, ttl=ttl)
        return True

    def setex(self, name: Any, time: Union[int, datetime.timedelta], value: Any) -> bool:
        """Stores value at name for time seconds."""
        return bool(self.set(name, value, ex=time))

    def incr(self, name: Any, amount: int = 1) -> int:
        """Adds amount to the integer at name (a missing one is 0, stored without expiry)."""
        return self._client().incr(self._key(name), amount, ttl=NO_EXPIRY)

    incrby = incr

    def decr(self, name: Any, amount: int = 1) -> int:
        """Subtracts amount from the integer at name."""
        return self.incr(name, -amount)

    decrby = decr

    # --- keys -----------------------------------------------------------------

    def delete(self, *names: Any) -> int:
        """Deletes each of names: how many existed."""
        client = self._client()
        return sum(1 for name in names if client.delete(self._key(name)))

    unlink = delete

    def exists(self, *names: Any) -> int:
        """How many of names exist (a name given twice counts twice)."""
        client = self._client()
        return sum(1 for name in names if client.exists(self._key(name)))

    def expire(self, name: Any, time: Union[int, datetime.timedelta]) -> bool:
        """Gives name time seconds to live: False if it is missing. Zero or
        less deletes it, as Redis does."""
        seconds = _seconds(time)
        key = self._key(name)
        if seconds <= 0:
            return self._client().delete(key)
        return self._client().expire(key, seconds)

    def persist(self, name: Any) -> bool:
        """Removes the expiry of name: False if it is missing or has none."""
        key = self._key(name)
        client = self._client()
        return client.ttl(key) not in (None, -1.0) and client.expire(key, NO_EXPIRY)

    def ttl(self, name: Any) -> int:
        """Seconds name has left (rounded as Redis does): -1 without expiry, -2 if missing."""
        millis = self.pttl(name)
        return millis if millis < 0 else (millis + 500) // 1000

    def pttl(self, name: Any) -> int:
        """Milliseconds name has left: -1 without expiry, -2 if missing."""
        left = self._client().ttl(self._key(name))
        if left is None:
            return -2
        if left == -1.0:
            return -1
        return round(left * 1000)

    def keys(self, pattern: Any = "*") -> List[Encoded]:
        """The names in the namespace matching pattern (a Redis glob), without the prefix."""
        return [self._reply(key) for key in self._client().keys(self._encode(pattern))]  # type: ignore[misc]

    def scan_iter(
        self, match: Any = None, count: Optional[int] = None, _type: Optional[str] = None
    ) -> Iterator[Encoded]:
        """The names matching match, as keys() lists them (count is a hint, ignored)."""
        if _type is not None:
            raise NotImplementedError("redis_client.scan_iter does not filter by type")
        return iter(self.keys("*" if match is None else match))

    # --- hashes ---------------------------------------------------------------

    def _hash(self, name: Any) -> Dict[bytes, bytes]:
        return self._client().hash_get(self._key(name)) or {}

    def hset(
        self,
        name: Any,
        key: Any = None,
        value: Any = None,
        mapping: Optional[Mapping[Any, Any]] = None,
        items: Optional[List[Any]] = None,
    ) -> int:
        """Sets fields of the hash at name (key and value, mapping, and/or
        items as a flat [field, value, ...] list): how many fields are new."""
        fields: Dict[bytes, bytes] = {}
        if key is not None:
            fields[self._encode(key)] = self._encode(value)
        for field, field_value in (mapping or {}).items():
            fields[self._encode(field)] = self._encode(field_value)
        flat = list(items or ())
        if len(flat) % 2:
            raise ValueError("items must hold field, value pairs")
        for field, field_value in zip(flat[::2], flat[1::2]):
            fields[self._encode(field)] = self._encode(field_value)
        if not fields:
            raise ValueError("hset needs a key and value, a mapping or items")
        before = self._hash(name)
        self._client().hash_set(self._key(name), fields, ttl=KEEP_TTL)
        return sum(1 for field in fields if field not in before)

    def hget(self, name: Any, key: Any) -> Optional[Encoded]:
        """The value of field key of the hash at name, None if either is missing."""
        return self._reply(self._hash(name).get(self._encode(key)))

    def hmget(self, name: Any, keys: Any, *args: Any) -> List[Optional[Encoded]]:
        """The values of fields keys (a list, or several arguments)."""
        fields = _list_or_args(keys, args)
        record = self._hash(name)
        return [self._reply(record.get(self._encode(field))) for field in fields]

    def hgetall(self, name: Any) -> Dict[Encoded, Encoded]:
        """Every field of the hash at name ({} if missing)."""
        record = self._hash(name).items()
        return {self._reply(field): self._reply(value) for field, value in record}  # type: ignore[misc]

    def hexists(self, name: Any, key: Any) -> bool:
        """True if the hash at name has field key."""
        return self._encode(key) in self._hash(name)

    def hlen(self, name: Any) -> int:
        """How many fields the hash at name has."""
        return len(self._hash(name))

    def hkeys(self, name: Any) -> List[Encoded]:
        """The field names of the hash at name."""
        return [self._reply(field) for field in self._hash(name)]  # type: ignore[misc]

    def hvals(self, name: Any) -> List[Encoded]:
        """The field values of the hash at name."""
        return [self._reply(value) for value in self._hash(name).values()]  # type: ignore[misc]

    # --- sets (hash records: member -> 1, removed member -> 0) -----------------

    def _members(self, name: Any) -> Set[bytes]:
        return {member for member, flag in self._hash(name).items() if flag == _MEMBER}

    def sadd(self, name: Any, *values: Any) -> int:
        """Adds values to the set at name (its expiry unchanged): how many were new."""
        if not values:
            raise ValueError("sadd needs at least one value")
        members = {self._encode(value) for value in values}
        before = self._members(name)
        self._client().hash_set(self._key(name), {member: _MEMBER for member in members}, ttl=KEEP_TTL)
        return len(members - before)

    def srem(self, name: Any, *values: Any) -> int:
        """Removes values from the set at name: how many were members."""
        if not values:
            raise ValueError("srem needs at least one value")
        present = {self._encode(value) for value in values} & self._members(name)
        if present:
            self._client().hash_set(
                self._key(name), {member: _REMOVED for member in present}, ttl=KEEP_TTL, condition="if_exists"
            )
        return len(present)

    def smembers(self, name: Any) -> Set[Encoded]:
        """The members of the set at name (an empty set if missing)."""
        return {self._reply(member) for member in self._members(name)}  # type: ignore[misc]

    def sismember(self, name: Any, value: Any) -> int:
        """1 if value is a member of the set at name, else 0."""
        return 1 if self._hash(name).get(self._encode(value)) == _MEMBER else 0

    def scard(self, name: Any) -> int:
        """How many members the set at name has."""
        return len(self._members(name))


def _seconds(time: Union[int, float, datetime.timedelta]) -> float:
    if isinstance(time, datetime.timedelta):
        return time.total_seconds()
    if isinstance(time, bool) or not isinstance(time, numbers.Real):
        raise TypeError(f"time must be a number of seconds or a timedelta, not {type(time).__name__}")
    return float(time)


def _ttl(ex: Any, px: Any) -> Optional[float]:
    """Seconds to live from set()'s ex or px (None: neither given)."""
    if ex is not None and px is not None:
        raise ValueError("give ex or px, not both")
    if ex is None and px is None:
        return None
    seconds = _seconds(ex) if ex is not None else (
        px.total_seconds() if isinstance(px, datetime.timedelta) else _seconds(px) / 1000
    )
    if seconds <= 0:
        raise ValueError("ex and px must be positive")
    return seconds


def _list_or_args(first: Any, rest: Tuple[Any, ...]) -> List[Any]:
    """redis-py's reading of ``(keys, *args)``: a list of names, or names as arguments."""
    if isinstance(first, (str, bytes, bytearray, memoryview)) or not hasattr(first, "__iter__"):
        return [first, *rest]
    return [*first, *rest]
