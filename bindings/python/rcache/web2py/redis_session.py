"""Drop-in for web2py's ``gluon.contrib.redis_session`` over rcache.

``RedisSession(...)`` returns the object web2py's ``session.connect(request,
response, db=...)`` uses as its session table. Records keep the old layout, so
old and new processes share sessions during a rolling upgrade: a hash per
session at ``w2p:sess:<masterapp>:<id>`` with the fields web2py writes
(``locked``, ``client_ip``, ``modified_datetime``, ``session_data``,
``unique_key``), ids from the counter ``w2p:sess:<masterapp>:serial``.

Fixed on purpose (see docs/web2py.md): ``update()`` reports
whether the record existed, so a session keeps its id; listing returns every
field, with ``modified_datetime`` as a datetime; reads never take a lock, so
no request waits for another's read and a wrong key changes nothing; every
query is its own object, so threads never act on each other's records; a
read with its key renews ``session_expiry``; there is no index set to grow (listing
scans the application's records; run the cleanup from a process using this
module).
"""

from __future__ import annotations

import datetime
import hmac
import numbers
import threading
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from ..client import KEEP_TTL, NO_EXPIRY, Client
from ..errors import ConflictError
from . import _web2py
from ._web2py import Storage
from .redis_utils import as_connection

__all__ = ["RedisSession", "RedisClient"]

#: How modified_datetime is written: what web2py's cleanup script parses.
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

_instances: Dict[str, RedisClient] = {}
_instances_lock = threading.Lock()


def RedisSession(
    redis_conn: Any = None,
    session_expiry: Union[float, bool] = False,
    with_lock: bool = False,
    db: object = None,
    application: Optional[str] = None,
    **connection: Any,
) -> RedisClient:
    """The session database of this application, created by the first call
    (later calls return it and ignore their arguments, as before).

    redis_conn: from ``RConn()``, a redis-py client (its settings are used),
    or None for ``RConn(application)``. Instead of redis_conn, redis-py's
    connection keywords (``host``, ``port``, ``password``, ...) or ``url=``,
    as ``RConn`` takes them. session_expiry: seconds a session
    lives after its last keyed read or write (False: until deleted).
    with_lock: accepted for compatibility; reads never lock and each write is
    atomic. db: the database, with connection keywords (ignored with
    redis_conn). application: defaults to ``current.request.application``.
    """
    if application is None:
        application = _web2py.application()
    with _instances_lock:
        sessions = _instances.get(application)
        if sessions is None:
            sessions = _instances[application] = RedisClient(
                redis_conn,
                session_expiry=session_expiry,
                with_lock=with_lock,
                application=application,
                db=db,
                **connection,
            )
        return sessions


class RedisClient:
    """The stand-in for a DAL database holding one session table per
    masterapp. Use :func:`RedisSession` to get it."""

    def __init__(
        self,
        redis_conn: Any = None,
        session_expiry: Union[float, bool] = False,
        with_lock: bool = False,
        application: Optional[str] = None,
        db: object = None,
        **connection: Any,
    ) -> None:
        if session_expiry and (isinstance(session_expiry, bool) or not isinstance(session_expiry, numbers.Real)):
            raise TypeError(f"session_expiry must be a number of seconds or False, not {session_expiry!r}")
        self.r_server: Any = redis_conn
        self._connection = as_connection(redis_conn, application, db, connection)
        if self.r_server is None:
            self.r_server = self._connection
        self.session_expiry: Optional[float] = session_expiry or None
        self.with_lock = with_lock
        self._tables: Dict[str, SessionTable] = {}

    def __repr__(self) -> str:
        return f"<rcache.web2py RedisSession on {self._connection!r}>"

    def __bool__(self) -> bool:
        return True

    def get(self, name: str, default: Any = None) -> Any:
        """The table called name once defined, else default."""
        return self._tables.get(name, default)

    def Field(
        self,
        fieldname: str,
        type: str = "string",
        length: Optional[int] = None,
        default: object = None,
        required: bool = False,
        requires: object = None,
    ) -> None:
        """Field definitions are not needed: records store what they are given."""
        return None

    def define_table(self, tablename: str, *fields: object, **options: object) -> SessionTable:
        """The session table tablename (``web2py_session_<masterapp>``)."""
        table = self._tables.get(tablename)
        if table is None:
            table = self._tables[tablename] = SessionTable(self, tablename)
        return table

    def __getitem__(self, name: str) -> SessionTable:
        return self._tables[name]

    def __call__(self, query: _Query) -> _Query:
        """The records selected by query (``table.id == n`` or ``table.id > 0``)."""
        return query

    def commit(self) -> None:
        """Nothing to commit: every write is applied at once."""

    def client_for(self, prefix: str) -> Client:
        """The Client for keys under prefix."""
        return self._connection.client_for(prefix)


class SessionTable:
    """The records of one masterapp, addressed as ``table(id, unique_key=...)``,
    ``table.insert(**fields)`` and the queries ``table.id == n`` and ``table.id > 0``."""

    def __init__(self, db: RedisClient, tablename: str) -> None:
        self._db = db
        self._tablename = tablename
        self.keyprefix = "w2p:sess:" + tablename.replace("web2py_session_", "", 1)
        self.id = _IdField(self)

    def __repr__(self) -> str:
        return f"<rcache.web2py session table {self._tablename!r}>"

    def __bool__(self) -> bool:
        return True

    @property
    def _client(self) -> Client:
        return self._db.client_for(self.keyprefix + ":")

    def __call__(self, record_id: object, unique_key: Union[str, bytes, None] = None) -> Storage:
        """The record as a row, or an empty (falsy) Storage when it is missing
        or, if unique_key is given, its key differs (an empty key never matches)."""
        rows = _Query(self, "eq", record_id, unique_key).select()
        return rows[0] if rows else Storage()

    def insert(self, **fields: object) -> str:
        """Stores a new record and returns its id (as text, as before)."""
        client = self._client
        encoded = _encode(fields)
        for _ in range(1000):
            record_id = client.incr("serial", 1, ttl=NO_EXPIRY)
            if client.hash_set(str(record_id), encoded, ttl=self._db.session_expiry or NO_EXPIRY, condition="if_absent"):
                return str(record_id)
        raise ConflictError(f"{self.keyprefix}:serial keeps naming existing records")


class _IdField:
    """``table.id``: comparing it builds a new query each time."""

    __hash__ = object.__hash__

    def __init__(self, table: SessionTable) -> None:
        self._table = table

    def __eq__(self, value: object) -> _Query:  # type: ignore[override]  # a DAL query, not a bool
        return _Query(self._table, "eq", value)

    def __gt__(self, value: Any) -> _Query:
        return _Query(self._table, "gt", value)

    def __ge__(self, value: Any) -> _Query:
        return _Query(self._table, "gt", value - 1)


class _Query:
    """The records with one id (``eq``) or with ids above a number (``gt``).
    Each query is its own object: concurrent requests never share one."""

    def __init__(
        self, table: SessionTable, op: str, value: Any, unique_key: Union[str, bytes, None] = None
    ) -> None:
        self._table = table
        self._op = op
        self._value = value
        self._unique_key = unique_key

    def _record_key(self) -> Optional[str]:
        """The key of the record this ``eq`` query names, or None for an id
        that names no record (only positive integers do)."""
        value = self._value
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or not text.isascii() or int(text) <= 0:
            return None
        return str(int(text))

    def _records(self) -> Iterator[Tuple[int, str]]:
        """(id, key) of every record with an id above the query's value."""
        floor = int(self._value)
        for key in self._table._client.keys("[1-9]*"):
            text = key.decode("ascii", "replace")
            if text.isdigit() and int(text) > floor:
                yield int(text), text

    def select(self) -> List[Storage]:
        """The selected records as rows (Storage objects)."""
        client = self._table._client
        if self._op == "eq":
            key = self._record_key()
            fields = client.hash_get(key) if key else None
            if key is None or fields is None or not self._key_matches(fields):
                return []
            expiry = self._table._db.session_expiry
            if expiry and self._unique_key is not None:
                client.expire(key, expiry)  # a request's read renews its session
            return [_row(fields)]
        rows: List[Storage] = []
        for record_id, key in self._records():
            fields = client.hash_get(key)
            if fields is not None:
                row = _row(fields)
                row.id = record_id
                modified = _parse_datetime(row.modified_datetime)
                if modified is not None:
                    row.modified_datetime = modified
                row.delete_record = _deleter(client, key)
                rows.append(row)
        return rows

    def _key_matches(self, fields: Mapping[bytes, bytes]) -> bool:
        if self._unique_key is None:
            return True
        given = self._unique_key
        if isinstance(given, str):
            given = given.encode("utf-8")
        stored = fields.get(b"unique_key", b"")
        return bool(given) and hmac.compare_digest(stored, given)

    def update(self, **fields: object) -> int:
        """Updates the record: 1 if it existed (and was updated), else 0."""
        if self._op != "eq":
            raise NotImplementedError("only table.id == n records can be updated")
        key = self._record_key()
        if key is None:
            return 0
        expiry: Union[float, Any] = self._table._db.session_expiry or KEEP_TTL
        return 1 if self._table._client.hash_set(key, _encode(fields), ttl=expiry, condition="if_exists") else 0

    def delete(self) -> int:
        """Deletes the selected records; returns how many existed."""
        client = self._table._client
        if self._op == "eq":
            key = self._record_key()
            return 1 if key and client.delete(key) else 0
        return sum(1 for _, key in self._records() if client.delete(key))

    def count(self) -> int:
        """How many records the query selects."""
        return len(self.select())


def _deleter(client: Client, key: str) -> Callable[[], None]:
    def delete_record() -> None:
        """Deletes this record (returns None, as web2py's cleanup expects)."""
        client.delete(key)

    return delete_record


def _encode(fields: Mapping[str, object]) -> Dict[str, bytes]:
    """Field values as Redis stores them: bytes as they are, booleans as 1/0,
    datetimes in DATETIME_FORMAT, None as empty text, anything else as str()."""
    encoded: Dict[str, bytes] = {}
    for name, value in fields.items():
        if isinstance(value, (bytes, bytearray, memoryview)):
            encoded[name] = bytes(value)
        elif isinstance(value, bool):
            encoded[name] = b"1" if value else b"0"
        elif isinstance(value, datetime.datetime):
            encoded[name] = value.strftime(DATETIME_FORMAT).encode()
        elif value is None:
            encoded[name] = b""
        else:
            encoded[name] = str(value).encode("utf-8")
    if not encoded:
        raise ValueError("a session record needs at least one field")
    return encoded


def _row(fields: Mapping[bytes, bytes]) -> Storage:
    """A record's fields as web2py reads them: session_data bytes, locked an
    int, every other field text."""
    row = Storage()
    for raw_name, value in fields.items():
        name = raw_name.decode("utf-8", "replace")
        if name == "session_data":
            row[name] = value
        elif name == "locked" and value.lstrip(b"-").isdigit():
            row[name] = int(value)
        else:
            row[name] = value.decode("utf-8", "replace")
    return row


def _parse_datetime(value: object) -> Optional[datetime.datetime]:
    """A datetime from text written by this module or the old one (with a
    ``T``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
