"""rcache: a Redis-backed application cache (Python bindings to librcache).

``Client`` stores bytes; ``Cache`` stores pickled Python objects. Both talk
to Redis (``redis://host:port/db``, ``rediss://``, ``unix://``, a primary
found through Sentinel with ``redis+sentinel://h:26379,h:26379/service/db``,
a Cluster with ``redis+cluster://h:7000,h:7001``) or to an embedded
in-process store (``memory://``, the default). Set ``RCACHE_LIB`` to
choose the librcache.so to load.
"""

from __future__ import annotations

from . import _lib
from .cache import Cache
from .client import KEEP_TTL, NO_EXPIRY, Client, Computed
from .session import Session, SessionStore
from .errors import (
    ClosedError,
    ComputeError,
    ConflictError,
    ConnectionError as ConnectionError,
    CorruptValueError,
    ForkedError,
    InternalError,
    InvalidArgumentError,
    RCacheError,
    ServerError,
    TimeoutError as TimeoutError,
    TooLargeError,
    UnknownOutcomeError,
    UnsupportedError,
    WrongTypeError,
)

# ConnectionError and TimeoutError are imported "as" themselves: that marks
# them exported for type checkers although __all__ leaves them out (below).

#: Version of the loaded librcache (rcache_version()).
__version__ = _lib.version
#: ABI version of the loaded librcache.
ABI_VERSION = _lib.abi_version
#: Most tags one call (set, add_tags, invalidate_tags) may name.
MAX_TAGS = _lib.MAX_TAGS

# rcache.ConnectionError and rcache.TimeoutError are left out of __all__ so
# that `from rcache import *` does not shadow the builtins they subclass.
__all__ = [
    "Client",
    "Computed",
    "Cache",
    "NO_EXPIRY",
    "KEEP_TTL",
    "MAX_TAGS",
    "RCacheError",
    "InvalidArgumentError",
    "ClosedError",
    "ServerError",
    "WrongTypeError",
    "TooLargeError",
    "ForkedError",
    "UnsupportedError",
    "InternalError",
    "CorruptValueError",
    "ComputeError",
    "ConflictError",
    "UnknownOutcomeError",
    "Session",
    "SessionStore",
    "__version__",
]
