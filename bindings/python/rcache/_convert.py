"""The argument converters of the Python package: every Python value that
becomes a fixed-width C argument is checked against its C range here, so a
value out of range is an error instead of a silent wrap."""

from __future__ import annotations

import ctypes
import datetime
import math
import numbers
import operator
from ctypes import string_at
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar, Union

from . import _lib
from .errors import InvalidArgumentError, from_status

_OK = _lib.STATUS_OK
_MISS = _lib.STATUS_MISS
_INT64_MIN = _lib.INT64_MIN
_INT64_MAX = _lib.INT64_MAX
_Bytes = _lib.rcache_bytes

_S = TypeVar("_S", bound="_Sentinel")


class _Sentinel:
    """A named singleton: one instance per subclass, pickled by its name."""

    _instance: Optional[_Sentinel] = None
    _name = ""

    def __new__(cls: Type[_S]) -> _S:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance  # type: ignore[return-value]  # set to a cls just above

    def __repr__(self) -> str:
        return f"rcache.{self._name}"

    def __reduce__(self) -> str:
        return self._name


class _NoExpiry(_Sentinel):
    """Type of NO_EXPIRY (a singleton)."""

    _name = "NO_EXPIRY"


class _KeepTtl(_Sentinel):
    """Type of KEEP_TTL (a singleton)."""

    _name = "KEEP_TTL"


#: Pass as ``ttl`` (or ``default_ttl``) to store without expiry.
NO_EXPIRY = _NoExpiry()
#: Pass as ``ttl`` to set(), compare_and_set() and hash_set() to keep the
#: key's current expiry (a new key gets none), like Redis's ``KEEPTTL``;
#: other methods refuse it with InvalidArgumentError.
KEEP_TTL = _KeepTtl()

#: What values may be: any bytes-like object (they come back as bytes).
BytesLike = Union[bytes, bytearray, memoryview]
#: What keys, tags, owners and patterns may be: str (stored as UTF-8) or bytes-like.
Key = Union[str, bytes, bytearray, memoryview]
#: A duration in seconds: int, float or timedelta (rounded up to whole milliseconds).
Seconds = Union[int, float, datetime.timedelta]
#: A ``ttl`` argument: seconds, None for the client's default, NO_EXPIRY or KEEP_TTL.
Ttl = Union[int, float, datetime.timedelta, _NoExpiry, _KeepTtl, None]
#: A hash record field's value as hash_set() takes it.
FieldValue = Union[bytes, bytearray, memoryview, str, int, float]


# --- conversions -------------------------------------------------------------


def _as_bytes(obj: Any, what: str) -> bytes:
    """bytes of a bytes-like object, or TypeError."""
    if isinstance(obj, str):
        raise TypeError(f"{what} must be bytes-like, not str (encode it first)")
    try:
        return memoryview(obj).tobytes()
    except TypeError:
        raise TypeError(f"{what} must be bytes-like, not {type(obj).__name__}") from None


def _key(key: Any, what: str = "key") -> bytes:
    """A key (or a tag, or a pattern: what names it in errors) as bytes: str
    is encoded as UTF-8, bytes-like objects are copied."""
    if type(key) is bytes:
        return key
    if type(key) is str:
        try:
            return key.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidArgumentError(f"{what} is not encodable as UTF-8: {error}") from None
    if key is None:
        raise TypeError(f"{what} must be str or bytes-like, not None")
    if isinstance(key, str):
        return _key(str(key), what)
    try:
        return memoryview(key).tobytes()
    except TypeError:
        raise TypeError(f"{what} must be str or bytes-like, not {type(key).__name__}") from None


def _field_value(value: Any) -> bytes:
    """A hash field's value as bytes: bytes-like as it is, str as UTF-8, int
    and float as str() writes them (bool is refused: it would read back as
    b"True")."""
    if type(value) is bytes:
        return value
    if type(value) is str:
        return _key(value, "field value")
    if isinstance(value, bool):
        raise TypeError("field value must be bytes-like, str, int or float, not bool")
    if isinstance(value, (int, float)):
        return str(value).encode("ascii")
    try:
        return memoryview(value).tobytes()
    except TypeError:
        raise TypeError(f"field value must be bytes-like, str, int or float, not {type(value).__name__}") from None


def _bytes_array(items: Sequence[bytes]) -> ctypes.Array[_lib.rcache_bytes]:
    """An rcache_bytes array borrowing each of items (keep items alive while it is used)."""
    # ctypes converts each (data, len) tuple into the struct.
    return (_Bytes * len(items))(*[(item, len(item)) for item in items])  # type: ignore[misc]


def _fields(mapping: Any) -> Tuple[ctypes.Array[_lib.rcache_bytes], ctypes.Array[_lib.rcache_bytes], int]:
    """(names array, values array, count) of a mapping or iterable of (name, value) pairs."""
    if hasattr(mapping, "items"):
        mapping = mapping.items()
    names, values = [], []
    for name, value in mapping:
        names.append(_key(name, "field name"))
        values.append(_field_value(value))
    return _bytes_array(names), _bytes_array(values), len(names)


_CONDITIONS: Dict[str, int] = {"always": _lib.WRITE_ALWAYS, "if_exists": _lib.WRITE_IF_EXISTS, "if_absent": _lib.WRITE_IF_ABSENT}


def _condition(condition: object) -> int:
    if not isinstance(condition, str):
        raise TypeError(f"condition must be str, not {type(condition).__name__}")
    try:
        return _CONDITIONS[condition]
    except KeyError:
        raise InvalidArgumentError(f"condition must be one of {', '.join(map(repr, _CONDITIONS))}, not {condition!r}") from None


def _read_array(array: Any, count: int) -> List[bytes]:
    """The bytes of the count buffers of a library-allocated array (not freed here)."""
    return [string_at(array[index].data, array[index].len) for index in range(count)]


def _info_value(value: str) -> Any:
    """One INFO value as redis-py's info() reads it: int, float, a dict for
    ``a=1,b=2``, a list for ``a,b``, else the text."""
    if "," not in value and "=" not in value:
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    if "=" not in value:
        return [_info_value(item) for item in value.split(",") if item]
    parsed = {}
    for item in value.split(","):
        if "=" in item:
            name, _, item_value = item.rpartition("=")
            parsed[name] = _info_value(item_value)
        elif item:
            parsed[item] = True
    return parsed


def _parse_info(text: str) -> Dict[str, Any]:
    """INFO text as a dict: ``name:value`` lines, ``# Section`` headers
    skipped; ``module:`` lines gathered in a "modules" list, lines without a
    colon in "__raw__", as redis-py does."""
    info: Dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, colon, value = line.partition(":")
        if not colon:
            info.setdefault("__raw__", []).append(line)
        elif name == "module":
            info.setdefault("modules", []).append(_info_value(value))
        else:
            info[name] = _info_value(value)
    return info


def _tags(tags: Any) -> Tuple[ctypes.Array[_lib.rcache_bytes], int]:
    """An iterable of tags (each str or bytes-like) as (rcache_bytes array, count).
    A single str or bytes-like object is refused rather than iterated."""
    if isinstance(tags, (str, bytes, bytearray, memoryview)):
        raise TypeError("tags must be an iterable of tags, not a single tag (wrap it in a list)")
    try:
        tags = iter(tags)
    except TypeError:
        raise TypeError(f"tags must be an iterable of tags, not {type(tags).__name__}") from None
    encoded = [_key(tag, "tag") for tag in tags]
    return _bytes_array(encoded), len(encoded)


def _count(value: object) -> int:
    """A positive 32-bit count."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"breaker_threshold must be an int, not {type(value).__name__}")
    count = int(value)
    if not 0 < count <= _lib.UINT32_MAX:
        raise InvalidArgumentError(f"breaker_threshold must be between 1 and {_lib.UINT32_MAX}")
    return count


def _found(status: int) -> bool:
    """True for OK, False for MISS; any other status raises its exception."""
    if status == _OK:
        return True
    if status == _MISS:
        return False
    raise from_status(status)


def _beta(beta: object) -> float:
    """The early-refresh factor: a finite number >= 0."""
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f"beta must be a number, not {type(beta).__name__}")
    beta = float(beta)
    if not (math.isfinite(beta) and beta >= 0):
        raise InvalidArgumentError(f"beta must be a finite number >= 0, got {beta!r}")
    return beta


def _value(value: Any) -> bytes:
    """A value as bytes; only bytes-like objects are accepted."""
    if type(value) is bytes:
        return value
    return _as_bytes(value, "value")


def _seconds_to_ms(seconds: Any, what: str) -> int:
    """Positive seconds (int, float, timedelta or other real) to whole
    milliseconds, rounded up so that any positive duration is at least 1 ms;
    clamped to INT64_MAX (the library refuses anything over 100 years)."""
    if type(seconds) is int:
        if seconds <= 0:
            raise InvalidArgumentError(f"{what} must be positive, not {seconds!r}")
        return min(seconds * 1000, _INT64_MAX)
    kind = type(seconds)
    if kind is bool or isinstance(seconds, bool):
        raise TypeError(f"{what} must be a number of seconds, not bool")
    number: float
    if kind is datetime.timedelta:
        number = seconds.total_seconds()
    elif kind is float:
        number = seconds
    else:
        if not isinstance(seconds, numbers.Real):
            raise TypeError(f"{what} must be a number of seconds, not {kind.__name__}")
        number = float(seconds)
    if math.isnan(number) or number <= 0:
        raise InvalidArgumentError(f"{what} must be positive, not {number!r}")
    millis = number * 1000.0
    if millis >= _INT64_MAX:  # also inf
        return _INT64_MAX
    # round() first so that float noise (0.007 * 1000 == 7.000000000000001)
    # does not add a millisecond.
    return max(1, math.ceil(round(millis, 6)))


def _ttl_ms(ttl: object, what: str = "ttl") -> int:
    """The C per-call TTL: None -> client default, NO_EXPIRY -> none,
    KEEP_TTL -> keep (the library refuses it where it makes no sense), else ms."""
    if ttl is None:
        return _lib.TTL_DEFAULT
    if ttl is NO_EXPIRY:
        return _lib.TTL_NONE
    if ttl is KEEP_TTL:
        return _lib.TTL_KEEP
    return _seconds_to_ms(ttl, what)


def _seconds_left(millis: int) -> float:
    """A remaining TTL from C: seconds as float, -1.0 for no expiry."""
    return -1.0 if millis == _lib.TTL_NONE else millis / 1000.0


def _u32_ms(seconds: object, what: str) -> int:
    """Positive seconds as milliseconds that fit a uint32_t."""
    millis = _seconds_to_ms(seconds, what)
    if millis > _lib.UINT32_MAX:
        raise InvalidArgumentError(f"{what} must be at most {_lib.UINT32_MAX // 1000} seconds")
    return millis


def _timeout_ms(seconds: object, what: str) -> int:
    if seconds is None:
        return 0
    return _u32_ms(seconds, what)


def _zero_or_ms(seconds: object, what: str) -> int:
    """0 for 0 (off), else positive seconds as uint32_t milliseconds."""
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds == 0:
        return 0
    return _u32_ms(seconds, what)


def _size(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not bool")
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    if not 0 < size <= _lib.SIZE_MAX:
        raise InvalidArgumentError(f"{what} must be between 1 and {_lib.SIZE_MAX}, not {size}")
    return size


def _int64(value: Any, what: str) -> int:
    if type(value) is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
    elif isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not bool")
    else:
        try:
            return _int64(operator.index(value), what)
        except TypeError:
            raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    raise InvalidArgumentError(f"{what} {value} does not fit in a signed 64-bit integer")


def _prefix(prefix: object) -> Optional[bytes]:
    if prefix is None:
        return None
    if isinstance(prefix, str):
        prefix = prefix.encode("utf-8")
    else:
        prefix = _as_bytes(prefix, "prefix")
    if b"\0" in prefix:
        raise InvalidArgumentError("prefix must not contain NUL bytes")
    return prefix or None


def _redact(url: str) -> str:
    """The URL without its password, for repr()."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url


def _uint64(value: Any, what: str) -> int:
    """A non-negative int that fits a uint64_t."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    if not 0 <= number <= _lib.UINT64_MAX:
        raise InvalidArgumentError(f"{what} {number} does not fit in an unsigned 64-bit integer")
    return number


def _idle_ms(seconds: Any, what: str) -> int:
    """Seconds >= 0 (0 included, unlike a TTL) as milliseconds; None is refused."""
    if seconds is None:
        raise TypeError(f"{what} must be a number of seconds, not None")
    if type(seconds) is int and seconds == 0:
        return 0
    return _seconds_to_ms(seconds, what)
