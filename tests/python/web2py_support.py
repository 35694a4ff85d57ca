"""web2py for the compatibility tests: the real one when WEB2PY_PATH names a
web2py source tree (its dependencies pydal, yatl and rocket3 importable),
else a stand-in for the parts the tests use (``gluon.current``,
``gluon.storage.Storage`` and ``gluon.cache.Cache``), installed before
``rcache.web2py`` is imported; and fixtures shared by the web2py tests."""

import os
import sys
import threading
import types
import uuid

import pytest


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


class _Current(threading.local):
    request = None
    response = None
    session = None


class Cache:
    """gluon.cache.Cache reduced to what applications call: ``cache.ram``,
    ``cache.disk`` and the decorator ``@cache(key, time_expire, cache_model)``,
    which calls ``cache_model(key, f, time_expire)`` (``cache.ram`` by
    default) as web2py's CacheAction does."""

    def __init__(self, request):
        self.ram = self.disk = None

    def __call__(self, key=None, time_expire=300, cache_model=None):
        def decorator(func):
            def cached(*a, **b):
                key2 = key or f"{func.__name__}:{a!r}:{b!r}"
                model = cache_model
                if not model or isinstance(model, str):
                    model = getattr(self, model or "ram")
                return model(key2, lambda: func(*a, **b), time_expire)

            return cached

        return decorator


def _install_gluon():
    if "gluon" in sys.modules and not getattr(sys.modules["gluon"], "_rcache_standin", False):
        return sys.modules["gluon"].current
    tree = os.environ.get("WEB2PY_PATH")
    if tree:
        sys.path.insert(0, tree)
        import gluon.cache  # noqa: F401  (asked for by WEB2PY_PATH: an import error is the test's failure)

        return sys.modules["gluon"].current
    gluon = types.ModuleType("gluon")
    gluon._rcache_standin = True
    storage = types.ModuleType("gluon.storage")
    storage.Storage = Storage
    cache = types.ModuleType("gluon.cache")
    cache.Cache = Cache
    gluon.storage = storage
    gluon.cache = cache
    gluon.current = _Current()
    sys.modules["gluon"] = gluon
    sys.modules["gluon.storage"] = storage
    sys.modules["gluon.cache"] = cache
    return gluon.current


current = _install_gluon()
#: True when the tests run against a real web2py tree (WEB2PY_PATH).
REAL_WEB2PY = not getattr(sys.modules["gluon"], "_rcache_standin", False)

import redis  # noqa: E402  (redis-py: the old modules' client, for interoperability tests)

from rcache.web2py import redis_cache, redis_session, redis_utils  # noqa: E402


@pytest.fixture
def app():
    """A fresh application name, set as current.request.application."""
    name = f"app{uuid.uuid4().hex[:10]}"
    current.request = Storage(application=name)
    yield name
    current.request = None


@pytest.fixture
def conn(url, app):
    """RConn() of the test's application on the test's backend."""
    return redis_utils.RConn(app, url=url)


@pytest.fixture
def rpy(redis_server):
    """A redis-py client on the session's private Redis."""
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    yield client
    client.close()


def rconn_for(server, app, **kw):
    """RConn of app for a private server, given as redis-py arguments."""
    return redis_utils.RConn(app, host="127.0.0.1", port=server.port, **kw)


def legacy(reason):
    """A pytest param running a test against the old modules' behaviour,
    where it must fail: it shows the defect the test checks is real."""
    return pytest.param("legacy", marks=pytest.mark.xfail(strict=True, reason=f"defect of the old module: {reason}"))
