"""What web2py's old Redis modules put on the wire, re-implemented over
redis-py and pickle from their documented behaviour (shared/LEGACY.md),
defects included. The tests use it to show that rcache reads what old
processes write and the reverse, and that each defect rcache fixes is real;
the benchmark uses it as the baseline.

Only the behaviour that matters on the wire and to callers is reproduced.
"""

import datetime
import pickle
import re
import time

import redis

STATS_HITS = "web2py_cache_statistics:hit_total"
STATS_MISSES = "web2py_cache_statistics:misses"

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def acquire_lock(conn, lockname, identifier, ltime=10):
    """Polls SET NX EX every 10 ms, with no deadline."""
    while True:
        if conn.set(lockname, identifier, ex=ltime, nx=True):
            return identifier
        time.sleep(0.01)


def release_lock(conn, lockname, identifier):
    return conn.eval(_RELEASE, 1, lockname, identifier)


class LegacyCache:
    """gluon.contrib.redis_cache's RedisClient, as observed."""

    #: The lock's fixed TTL in seconds (tests lower it to show defect C12).
    lock_seconds = 10

    def __init__(self, conn, application, debug=False, with_lock=False, fail_gracefully=False, sleep=time.sleep):
        self.r_server = conn
        self.debug = debug
        self.with_lock = with_lock
        self.fail_gracefully = fail_gracefully
        self.prefix = f"w2p:cache:{application}:"
        self.cache_set_key = f"w2p:{application}:___cache_set"
        self.application = application
        self.retries = 0
        self.sleep = sleep

    def _key(self, key):
        return self.prefix + key.replace(" ", "_")

    def __call__(self, key, f, time_expire=300, with_lock=None):
        if with_lock is None:
            with_lock = self.with_lock
        if time_expire is None:
            time_expire = 24 * 60 * 60
        full = self._key(key)
        try:
            if f is None:
                self.r_server.delete(full)
                return None
            obj = self.r_server.get(full)
            ttl = self.r_server.ttl(full) if obj else 0
            if ttl > time_expire:
                obj = None
            if obj:
                if self.debug:
                    self.r_server.incr(STATS_HITS)
                return pickle.loads(obj)
            if with_lock:
                lock_key = full + ":__lock"
                identifier = acquire_lock(self.r_server, lock_key, str(time.time()), self.lock_seconds)
                try:
                    obj = self.r_server.get(full)
                    if obj is None:
                        return self.cache_it(full, f, time_expire)
                    return pickle.loads(obj)
                finally:
                    release_lock(self.r_server, lock_key, identifier)
            return self.cache_it(full, f, time_expire)
        except redis.ConnectionError:
            return self.retry_call(key, f, time_expire, with_lock)

    def cache_it(self, key, f, time_expire):
        if self.debug:
            self.r_server.incr(STATS_MISSES)
        expire_at = int(time.time() + time_expire) + 120
        bucket_key = f"{self.cache_set_key}:{expire_at // 60}"
        value = f()
        data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        if time_expire == 0:
            time_expire = 1
        self.r_server.execute_command("SETEX", key, time_expire, data)
        pipe = self.r_server.pipeline()
        pipe.sadd(self.cache_set_key, bucket_key)
        pipe.execute_command("SETEX", key, time_expire, data)
        pipe.sadd(bucket_key, key)
        pipe.expireat(bucket_key, ((expire_at // 60) + 1) * 60)
        pipe.execute()
        return value

    def retry_call(self, key, f, time_expire, with_lock):
        self.retries += 1
        if self.retries <= 5:
            self.sleep(2 * self.retries)
            if self.fail_gracefully:
                self.retries = 0
                return f()
            return self(key, f, time_expire, with_lock)
        self.retries = 0
        if self.fail_gracefully:
            return f
        raise redis.ConnectionError("Redis instance is unavailable")

    def increment(self, key, value=1):
        try:
            return self.r_server.incr(self._key(key), value)
        except redis.ConnectionError:
            self.retries += 1
            if self.retries <= 5:
                self.sleep(2 * self.retries)
                return self.increment(key, value)
            self.retries = 0
            raise

    def clear(self, regex):
        matcher = re.compile(regex)
        buckets = self.r_server.smembers(self.cache_set_key)
        if not buckets:
            return
        keys = self.r_server.sunion(buckets)
        pipe = self.r_server.pipeline()
        for key in keys:
            if matcher.match(str(key).replace(self.prefix, "", 1)):
                pipe.delete(key)
        pipe.execute()

    def delete(self, key):
        return self.r_server.delete(self._key(key))

    def stats(self):
        info = self.r_server.info()
        if self.debug:
            info["w2p_stats"] = dict(hit_total=self.r_server.get(STATS_HITS), misses=self.r_server.get(STATS_MISSES))
        info["w2p_keys"] = {
            f"{key}_expire_in_sec": self.r_server.ttl(key) for key in self.r_server.keys(f"w2p:{self.application}:*")
        }
        return info


# --- sessions ------------------------------------------------------------------


class Storage(dict):
    def __getattr__(self, name):
        return self.get(name)

    def __setattr__(self, name, value):
        self[name] = value


class LegacySessionDb:
    """gluon.contrib.redis_session's RedisClient (the fake DAL database)."""

    def __init__(self, conn, session_expiry=False, with_lock=False):
        self.r_server = conn
        self.session_expiry = session_expiry
        self.with_lock = with_lock
        self.tablename = None

    def define_table(self, tablename, *fields, **options):
        if not self.tablename:
            self.tablename = LegacyTable(self, tablename)
        return self.tablename

    def __getitem__(self, name):
        return self.tablename

    def __call__(self, where=""):
        # The query most recently built by `table.id`, whatever was passed (S5).
        return self.tablename.query

    def commit(self):
        pass


def _encode(fields):
    encoded = {}
    for name, value in fields.items():
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, datetime.datetime):
            value = value.isoformat()
        encoded[name] = value
    return encoded


def _decode(raw):
    row = Storage()
    for name, value in raw.items():
        name = name.decode()
        if name == "session_data":
            row[name] = value
        elif name == "locked":
            row[name] = int(value)
        else:
            row[name] = value.decode()
    return row


class LegacyTable:
    def __init__(self, db, tablename):
        self._db = db
        self.keyprefix = "w2p:sess:" + tablename.replace("web2py_session_", "")
        self.serial = self.keyprefix + ":serial"
        self.id_idx = self.keyprefix + ":id_idx"
        self.query = None

    def __getattr__(self, name):
        if name == "id":
            self.query = LegacyQuery(self)
            return self.query
        raise AttributeError(name)

    def __call__(self, record_id, unique_key=None):
        query = self.id
        query.op, query.value, query.unique_key = "eq", record_id, unique_key
        rows = query.select()
        return rows[0] if rows else Storage()

    def insert(self, **fields):
        conn = self._db.r_server
        new_id = str(conn.incr(self.serial))
        key = f"{self.keyprefix}:{new_id}"
        if self._db.with_lock:
            acquire_lock(conn, key + ":lock", new_id)
        pipe = conn.pipeline()
        pipe.sadd(self.id_idx, key)
        pipe.hset(key, mapping=_encode(fields))
        if self._db.session_expiry:
            pipe.expire(key, self._db.session_expiry)
        pipe.execute()
        if self._db.with_lock:
            release_lock(conn, key + ":lock", new_id)
        return new_id


class LegacyQuery:
    def __init__(self, table):
        self.table = table
        self.op = None
        self.value = None
        self.unique_key = None

    def __eq__(self, value):
        self.op, self.value = "eq", value

    def __gt__(self, value):
        self.op, self.value = "gt", value

    __hash__ = object.__hash__

    def _key(self):
        return f"{self.table.keyprefix}:{self.value}"

    def select(self):
        db = self.table._db
        conn = db.r_server
        if self.op == "eq":
            key = self._key()
            if db.with_lock:
                acquire_lock(conn, key + ":lock", str(self.value), 2)
            raw = conn.hgetall(key)
            if raw and self.unique_key:
                given = self.unique_key.encode() if isinstance(self.unique_key, str) else self.unique_key
                if raw.get(b"unique_key") != given:
                    raw = None
            return [_decode(raw)] if raw else []
        rows = []
        for key in conn.smembers(self.table.id_idx):
            if not conn.hgetall(key):
                if db.session_expiry:
                    conn.srem(self.table.id_idx, key)
                continue
            row = Storage()  # the fields are not copied into the row (S2)
            row.delete_record = _LegacyDeleter(conn, key, self.table.id_idx)
            rows.append(row)
        return rows

    def update(self, **fields):
        db = self.table._db
        conn = db.r_server
        key = self._key()
        if not conn.exists(key):
            return None
        pipe = conn.pipeline()
        pipe.hset(key, mapping=_encode(fields))
        if db.session_expiry:
            pipe.expire(key, db.session_expiry)
        result = pipe.execute()[0]
        if db.with_lock:
            release_lock(conn, key + ":lock", str(self.value))
        return result

    def delete(self):
        conn = self.table._db.r_server
        pipe = conn.pipeline()
        pipe.delete(self._key())
        pipe.srem(self.table.id_idx, self._key())
        return pipe.execute()[1]


class _LegacyDeleter:
    def __init__(self, conn, key, id_idx):
        self.conn, self.key, self.id_idx = conn, key, id_idx

    def __call__(self):
        self.conn.srem(self.id_idx, self.key)
        self.conn.delete(self.key)
