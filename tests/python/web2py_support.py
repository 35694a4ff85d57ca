"""A stand-in for the parts of web2py the compatibility modules use
(``gluon.current`` and ``gluon.storage.Storage``), installed before
``rcache.web2py`` is imported, and fixtures shared by the web2py tests."""

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


def _install_gluon():
    if "gluon" in sys.modules and not getattr(sys.modules["gluon"], "_rcache_standin", False):
        return sys.modules["gluon"].current
    gluon = types.ModuleType("gluon")
    gluon._rcache_standin = True
    storage = types.ModuleType("gluon.storage")
    storage.Storage = Storage
    gluon.storage = storage
    gluon.current = _Current()
    sys.modules["gluon"] = gluon
    sys.modules["gluon.storage"] = storage
    return gluon.current


current = _install_gluon()

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
