"""Runs the web2py application of this folder without web2py.

web2py executes models/db.py and then the controller's action for every
request, with request, response, session and cache in scope, and stores the
session when the request ends. This driver does the same with small
stand-ins for those objects (and for ``gluon.current`` and
``gluon.storage.Storage``, which rcache's drop-ins import when present), so
the application's use of ``cache.redis`` and ``session.connect(..., db=...)``
runs exactly as it would inside web2py.

Runs on memory:// or on the server named by RCACHE_URL, for example
``RCACHE_URL=redis://127.0.0.1:6379/0 python3 examples/web2py_app/run.py``.
"""

import datetime
import os
import pickle
import sys
import threading
import types
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))

APPLICATION = "rcache_example"


# --- the parts of web2py the application touches ------------------------------


class Storage(dict):
    """gluon.storage.Storage: a dict whose keys read as attributes (None when missing)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        self.pop(name, None)


def install_gluon():
    """gluon.current and gluon.storage, unless the real web2py is importable."""
    try:
        import gluon  # noqa: F401

        return sys.modules["gluon"].current
    except ImportError:
        pass
    gluon = types.ModuleType("gluon")
    storage = types.ModuleType("gluon.storage")
    storage.Storage = Storage
    gluon.storage = storage
    gluon.current = threading.local()
    sys.modules["gluon"] = gluon
    sys.modules["gluon.storage"] = storage
    return gluon.current


class Session(Storage):
    """web2py's session, reduced to its database mode: connect() loads the
    record named by the cookie ``<id>:<unique key>``; save() writes it back
    as web2py's globals.py does at the end of a request."""

    def connect(self, request, response, db=None, masterapp=None):
        masterapp = masterapp or request.application
        tablename = f"web2py_session_{masterapp}"
        table = db.get(tablename, None) or db.define_table(
            tablename,
            db.Field("locked", "boolean", default=False),
            db.Field("client_ip", length=64),
            db.Field("modified_datetime", "datetime"),
            db.Field("unique_key", length=64),
            db.Field("session_data", "blob"),
        )
        cookie_name = f"session_id_{masterapp.lower()}"
        record_id, unique_key = None, None
        cookie = request.cookies.get(cookie_name)
        if cookie and ":" in cookie:
            record_id, unique_key = cookie.split(":", 1)
            row = table(record_id, unique_key=unique_key)
            if row:
                self.update(pickle.loads(row.session_data))
            else:
                record_id, unique_key = None, None
        # Kept outside the dict, so they are not pickled with the session.
        object.__setattr__(self, "_store", (table, cookie_name, record_id, unique_key or uuid.uuid4().hex))
        object.__setattr__(self, "_response", response)

    def save(self):
        table, cookie_name, record_id, unique_key = self._store
        fields = dict(
            locked=False,
            client_ip="127.0.0.1",
            modified_datetime=datetime.datetime.now(),
            session_data=pickle.dumps(dict(self), pickle.HIGHEST_PROTOCOL),
            unique_key=unique_key,
        )
        if record_id and not table._db(table.id == record_id).update(**fields):
            record_id = None
        if not record_id:
            record_id = table.insert(**fields)
        self._response.cookies[cookie_name] = f"{record_id}:{unique_key}"


def _source(*parts):
    path = os.path.join(HERE, *parts)
    with open(path) as file:
        return compile(file.read(), path, "exec")


MODEL = _source("models", "db.py")
CONTROLLER = _source("controllers", "default.py")


def request(current, action, cookies):
    """One request: the models, then the action, then the session is stored.
    Returns (the action's result, the response's cookies)."""
    req = Storage(application=APPLICATION, controller="default", function=action, cookies=dict(cookies))
    response = Storage(cookies={})
    session = Session()
    cache = Storage()
    current.request, current.response, current.session = req, response, session
    environment = dict(request=req, response=response, session=session, cache=cache)
    exec(MODEL, environment)
    exec(CONTROLLER, environment)
    result = environment[action]()
    session.save()
    current.request = current.response = current.session = None
    return result, response.cookies


def main():
    current = install_gluon()
    url = os.environ.get("RCACHE_URL") or "memory://"
    print(f"web2py application {APPLICATION!r} on {url}")

    # Start from an empty cache so every run prints the same story.
    _, cookies = request(current, "refresh", {})

    first, cookies = request(current, "index", cookies)
    second, cookies = request(current, "index", cookies)
    print(f"visit {first['visits']}: report generated at {first['report']['generated_at']:.3f}")
    print(f"visit {second['visits']}: report generated at {second['report']['generated_at']:.3f} (from cache.redis)")
    assert (first["visits"], second["visits"]) == (1, 2), "the session did not keep its visits"
    assert first["report"] == second["report"], "the report was computed twice"

    stranger, _ = request(current, "index", {})
    print(f"another visitor (no cookie): visit {stranger['visits']}")
    assert stranger["visits"] == 1

    refreshed, _ = request(current, "refresh", cookies)
    third, cookies = request(current, "index", cookies)
    print(f"refresh cleared {refreshed['cleared']} entry; visit {third['visits']}: a new report")
    assert third["visits"] == 3 and third["report"] != second["report"]

    counts, _ = request(current, "stats", cookies)
    print(f"cache.redis hits and misses: {counts}")

    # Clean up after the example: its cache entries and its sessions.
    from rcache.web2py.redis_cache import RedisCache
    from rcache.web2py.redis_session import RedisSession

    from rcache.web2py.redis_utils import RConn

    RedisCache(application=APPLICATION).clear()
    table = RedisSession(None, application=APPLICATION).define_table(f"web2py_session_{APPLICATION}")
    removed = table._db(table.id > 0).delete()
    # debug=True counts hits and misses per application beside the cache.
    for counter in ("hit_total", "misses"):
        RConn(APPLICATION).client.delete(f"w2p:{APPLICATION}:___cache_stats:{counter}")
    print(f"cleaned up: cache cleared, {removed} session(s) deleted")


if __name__ == "__main__":
    main()
