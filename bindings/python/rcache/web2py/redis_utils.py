"""Drop-in for web2py's ``gluon.contrib.redis_utils``: ``RConn`` and the
classic Redis lock helpers, over rcache.

``RConn(application=None, *args, **kw)`` returns one :class:`Connection` per
application per process (the first call's arguments win, as before). It takes
redis-py's arguments (``host``, ``port``, ``db``, ``password``, ...) and also
``url=`` (any rcache URL, e.g. ``memory://``) and ``near_cache=`` (entries
kept in process memory, served without a round trip and dropped when Redis
reports a change; see docs/near-cache.md). The connection is what
``RedisCache`` and ``RedisSession`` take as ``redis_conn``; it is not a
redis-py client.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import warnings
import weakref
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, TypeVar, Union
from urllib.parse import quote

from ..client import Client, Key, Seconds
from ..errors import ConflictError, ConnectionError, TimeoutError
from . import _web2py

__all__ = [
    "RConn",
    "Connection",
    "acquire_lock",
    "release_lock",
    "register_release_lock",
    "RConnectionError",
    "RWatchError",
]

#: Raised when Redis cannot be reached (was redis-py's ConnectionError).
RConnectionError = ConnectionError
#: Raised when an optimistic update lost a race (was redis-py's WatchError).
RWatchError = ConflictError

# redis-py's StrictRedis(host, port, db, password, socket_timeout,
# socket_connect_timeout, ...): the positional order callers may rely on.
_POSITIONAL = ("host", "port", "db", "password", "socket_timeout", "socket_connect_timeout")

# Accepted without effect: rcache manages connections, encodings and retries itself.
# Seconds during which a failed connect is reported again without a new attempt.
_RETRY_AFTER = 1.0

_T = TypeVar("_T")

_IGNORED = frozenset(
    {
        "charset",
        "errors",
        "connection_pool",
        "max_connections",
        "socket_keepalive",
        "socket_keepalive_options",
        "health_check_interval",
        "retry_on_timeout",
        "retry_on_error",
        "retry",
        "client_name",
        "single_connection_client",
        "protocol",
        "lib_name",
        "lib_version",
        "ssl_check_hostname",
    }
)


class Connection:
    """Where to reach Redis, and the rcache clients talking to it.

    It holds one rcache Client per key prefix (an application's cache, its
    sessions, plain keys for locks), made on first use and made again in a
    child process after ``fork()``, so a connection made before a server
    forks its workers keeps working in each worker. Each ``memory://``
    Client is a separate store.

    ``decode_responses``, ``encoding`` and ``encoding_errors`` are kept for
    the redis-py-style clients that read through this connection (a cache's
    ``redis_client``); cached values are pickles either way.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        if len(args) > len(_POSITIONAL):
            raise TypeError(f"at most {len(_POSITIONAL)} positional arguments, got {len(args)}")
        for name, value in zip(_POSITIONAL, args):
            if name in kw:
                raise TypeError(f"got multiple values for argument {name!r}")
            kw[name] = value
        self.decode_responses = bool(kw.pop("decode_responses", False))
        self.encoding: str = kw.pop("encoding", None) or "utf-8"
        self.encoding_errors: str = kw.pop("encoding_errors", None) or "strict"
        self.url, self.connect_timeout, self.response_timeout = _settings(kw)
        _all_connections.add(self)
        self._memory = self.url.lower().startswith("memory:")
        self._lock = threading.Lock()
        self._pid: Optional[int] = None
        self._clients: Dict[Tuple[bytes, bool], Client] = {}
        # (when, error) of the last failed attempt to connect.
        self._failed: Optional[Tuple[float, Exception]] = None

    def __repr__(self) -> str:
        return f"<rcache.web2py Connection {self.url.split('@')[-1]!r}>"

    def _forget_after_fork(self) -> None:
        """In a forked child: a lock another thread held at fork() would never
        be released here; the clients are made again on first use."""
        self._lock = threading.Lock()
        self._clients = {}
        self._pid = None
        self._failed = None

    def client_for(self, prefix: Union[str, bytes], fail_open: bool = False) -> Client:
        """The Client for keys under prefix (str or bytes, may be empty) in
        this process. fail_open: reads miss and writes are dropped while
        Redis is unreachable (memory:// cannot fail and ignores it)."""
        if isinstance(prefix, str):
            prefix = prefix.encode("utf-8")
        if self._memory:
            fail_open = False
        pid = os.getpid()
        name = (prefix, fail_open)
        if self._pid == pid:
            client = self._clients.get(name)
            if client is not None:
                return client
        with self._lock:
            if self._pid != pid:
                self._clients = {}
                self._pid = pid
            client = self._clients.get(name)
            if client is None:
                failed = self._failed
                if failed is not None and time.monotonic() - failed[0] < _RETRY_AFTER:
                    raise failed[1]
                try:
                    client = Client(
                        self.url,
                        prefix=prefix,
                        connect_timeout=self.connect_timeout,
                        response_timeout=self.response_timeout,
                        fail_open=fail_open,
                    )
                except (ConnectionError, TimeoutError) as error:
                    # Callers failing gracefully come back at once: let them
                    # fail fast rather than wait for a connect each time.
                    self._failed = (time.monotonic(), error)
                    raise
                self._failed = None
                self._clients[name] = client
            return client

    @property
    def client(self) -> Client:
        """The Client for keys as they are (no prefix), in this process."""
        return self.client_for(b"")


def _settings(kw: Dict[str, Any]) -> Tuple[str, Optional[float], Optional[float]]:
    """(url, connect_timeout, response_timeout) from redis-py style arguments."""
    url = kw.pop("url", None)
    near_cache = kw.pop("near_cache", None)
    connect_timeout = kw.pop("socket_connect_timeout", None)
    response_timeout = kw.pop("socket_timeout", None)
    if connect_timeout is None:
        connect_timeout = response_timeout
    unknown = []
    ssl_requested = False
    insecure = False
    host, port, db = "localhost", 6379, 0
    username: Optional[str] = None
    password: Optional[object] = None
    socket_path: Optional[str] = None
    for name, value in kw.items():
        if name == "host":
            host = value or "localhost"
        elif name == "port":
            port = int(value)
        elif name == "db":
            db = int(value or 0)
        elif name == "username":
            username = value
        elif name == "password":
            password = value
        elif name == "unix_socket_path":
            socket_path = value
        elif name == "ssl":
            ssl_requested = bool(value)
        elif name == "ssl_cert_reqs":
            insecure = value in (None, "none", "NONE", 0) or str(value).endswith("CERT_NONE")
        elif name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_ca_path", "ssl_ca_data"):
            if value:
                warnings.warn(
                    f"RConn: {name} is not supported yet; the server certificate is checked "
                    "against the system's trusted roots",
                    RuntimeWarning,
                    stacklevel=4,
                )
        elif name not in _IGNORED:
            unknown.append(name)
    if unknown:
        warnings.warn(f"RConn: ignoring unknown argument(s) {', '.join(sorted(unknown))}", RuntimeWarning, stacklevel=4)
    if url is None:
        url = _url(host, port, db, username, password, socket_path, ssl_requested, insecure)
    if near_cache:
        url = _with_near_cache(url, near_cache)
    return url, connect_timeout, response_timeout


def _with_near_cache(url: str, entries: object) -> str:
    """url asking for a near cache of `entries` entries (see
    docs/near-cache.md): reads served from process memory, kept correct by Redis."""
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 0:
        raise ValueError(f"near_cache must be a number of entries, not {entries!r}")
    base, hash_sign, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}near_cache={entries}{hash_sign}{fragment}"


def _url(
    host: str,
    port: int,
    db: int,
    username: Optional[str],
    password: Optional[object],
    socket_path: Optional[str],
    use_ssl: bool,
    insecure: bool,
) -> str:
    userinfo = ""
    if password is not None:
        userinfo = f"{quote(username or '', safe='')}:{quote(str(password), safe='')}@"
    elif username:
        userinfo = f"{quote(username, safe='')}@"
    if socket_path:
        return f"unix://{userinfo}{socket_path}?db={db}"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "rediss" if use_ssl else "redis"
    url = f"{scheme}://{userinfo}{host}:{port}/{db}"
    return url + "#insecure" if use_ssl and insecure else url


def from_redis_py(client: Any) -> Connection:
    """A Connection with the settings of a redis-py client (its pool's
    connection arguments); the redis-py client itself is not used."""
    pool = getattr(client, "connection_pool", None)
    kwargs = dict(getattr(pool, "connection_kwargs", {}) or {})
    connection_class = getattr(pool, "connection_class", None)
    settings = {
        name: kwargs[name]
        for name in ("host", "port", "db", "username", "password", "socket_timeout", "socket_connect_timeout")
        if kwargs.get(name) is not None
    }
    if kwargs.get("path"):
        settings["unix_socket_path"] = kwargs["path"]
    if connection_class is not None and "SSL" in connection_class.__name__:
        settings["ssl"] = True
        settings["ssl_cert_reqs"] = kwargs.get("ssl_cert_reqs", "required")
    for name in ("decode_responses", "encoding", "encoding_errors"):
        if kwargs.get(name) is not None:
            settings[name] = kwargs[name]
    return Connection(**settings)


def as_connection(
    redis_conn: Any, application: Optional[str], db: object = None, settings: Optional[Dict[str, Any]] = None
) -> Connection:
    """The Connection to use for redis_conn: a Connection as it is, a
    redis-py client by its settings, None as RConn(application). With
    redis-py style settings (``host``, ``port``, ``url``, ...) and no
    redis_conn, a new Connection made from them and db; db alone selects
    the database on localhost:6379; db is ignored when redis_conn is given."""
    if settings:
        if redis_conn is not None:
            raise TypeError(
                f"give either redis_conn or connection settings ({', '.join(sorted(settings))}), not both"
            )
        return Connection(**settings) if db is None else Connection(db=db, **settings)
    if redis_conn is None:
        return RConn(application) if db is None else Connection(db=db)
    if isinstance(redis_conn, Connection):
        return redis_conn
    if hasattr(redis_conn, "connection_pool"):
        with _connections_lock:
            connection = _from_redis_py.get(redis_conn)
            if connection is None:
                connection = _from_redis_py[redis_conn] = from_redis_py(redis_conn)
            return connection
    raise TypeError(f"redis_conn must come from RConn() or be a redis-py client, not {type(redis_conn).__name__}")


_connections: Dict[str, Connection] = {}
_connections_lock = threading.Lock()
# Every Connection, so that a forked child can reset their locks.
_all_connections: "weakref.WeakSet[Connection]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _connections_lock
    _connections_lock = threading.Lock()
    for connection in list(_all_connections):
        connection._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
# Connections made from redis-py clients, for as long as each client lives.
_from_redis_py: weakref.WeakKeyDictionary[Any, Connection] = weakref.WeakKeyDictionary()


def RConn(application: Optional[str] = None, *args: Any, **kw: Any) -> Connection:
    """The connection of this application, made by the first call with
    redis-py style arguments (or ``url=``); later calls return it and ignore
    their arguments. ``application=None`` means ``current.request.application``."""
    if application is None:
        application = _web2py.application()
    with _connections_lock:
        connection = _connections.get(application)
        if connection is None:
            connection = _connections[application] = Connection(*args, **kw)
        return connection


def _client_of(conn: Any) -> Client:
    if isinstance(conn, Connection):
        return conn.client
    if hasattr(conn, "r_server"):  # a cache or session object, as release_lock's first argument
        return as_connection(conn.r_server, None).client
    return as_connection(conn, None).client


def acquire_lock(
    conn: Any, lockname: Key, identifier: _T, ltime: Seconds = 10, timeout: Optional[float] = None
) -> Optional[_T]:
    """Takes the lock ``lockname`` (``SET lockname identifier NX PX``, so
    processes using the classic protocol share it), polling until it is free,
    and returns identifier. ltime: seconds the lock lives unless released.
    timeout: seconds to wait at most (None: as long as it takes); after it
    returns None without the lock."""
    client = _client_of(conn)
    owner = str(identifier)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    while not client.lock(lockname, owner, ltime):
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return identifier


def release_lock(owner: Any, lockname: Key, identifier: object) -> int:
    """Releases ``lockname`` if it is still held by identifier: 1 if it was,
    else 0. owner: the connection, or an object with ``r_server``."""
    return 1 if _client_of(owner).unlock(lockname, str(identifier)) else 0


def register_release_lock(conn: Any) -> Callable[..., int]:
    """The compare-and-delete operation as a callable
    ``release(keys=[lockname], args=[identifier]) -> 1 or 0``, the shape of
    the script object callers got before."""
    client = _client_of(conn)

    def release(keys: Sequence[Key], args: Sequence[object], client_: object = None) -> int:
        return 1 if client.unlock(keys[0], str(args[0])) else 0

    return release


def new_identifier() -> str:
    """A random lock owner token."""
    return uuid.uuid4().hex
