"""Runs the Python examples of the design document for web2py's Redis cache
(data/gluon_contrib_redis_cache.md) as written, with rcache's drop-ins
(``rcache/web2py/gluon_contrib/``) standing in for web2py's
``gluon.contrib.redis_*`` modules, and checks that each did what it claims.

Each scenario is one application whose model runs some of the document's
blocks in order, in web2py's model environment: request, response, session
and cache (gluon.cache.Cache), from the real web2py when WEB2PY_PATH names a
web2py tree, else from stand-ins. The names the blocks take from the
application itself (``db.users``, ``get_user_profile``,
``expensive_computation``, ``os``) are provided here.

The first block connects to localhost:6379 exactly as written, so this runs
in a network namespace of its own (``unshare -rn``, started by
test_web2py_design.py) where this script starts a private redis-server on
port 6379; REDIS_HOST, REDIS_PORT and REDIS_DB, which the other blocks read,
name it too. Exits with status 0 when every scenario passed.
"""

import fcntl
import os
import pickle
import re
import socket
import struct
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCUMENT = HERE / "data" / "gluon_contrib_redis_cache.md"
sys.path.insert(0, str(HERE))

from conftest import ROOT, RedisServer  # noqa: E402  (also puts the bindings on sys.path)
import web2py_support  # noqa: E402  (web2py, real or stand-in, before rcache's modules)

import redis  # noqa: E402

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up():
    """Brings up lo, which a new network namespace starts with down."""
    with socket.socket() as sock:
        flags = struct.unpack("16sh", fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack("16sh", b"lo", 0)))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def blocks():
    """{heading: code} of the document's Python blocks, under their ### heading."""
    found, heading = {}, None
    for match in re.finditer(r"^### ([^\n]+)$|^```python\n(.*?)^```", DOCUMENT.read_text(), re.M | re.S):
        if match.group(1):
            heading = match.group(1).strip()
        else:
            assert heading not in found, f"two blocks under {heading!r}"
            found[heading] = match.group(2)
    return found


def install_drop_ins():
    """rcache's gluon_contrib files as gluon.contrib.redis_*: what copying
    them over web2py's own does."""
    import importlib.util

    import gluon

    contrib = sys.modules.get("gluon.contrib")
    if contrib is None:
        contrib = sys.modules["gluon.contrib"] = types.ModuleType("gluon.contrib")
        contrib.__path__ = []
        gluon.contrib = contrib
    for name in ("redis_utils", "redis_cache", "redis_session"):
        path = ROOT / "bindings" / "python" / "rcache" / "web2py" / "gluon_contrib" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"gluon.contrib.{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[f"gluon.contrib.{name}"] = module
        setattr(contrib, name, module)


class Application:
    """The names a model of this application finds, and one request's objects."""

    def __init__(self, name, folder):
        self.name = name
        self.folder = folder
        self.users = {1: {"name": "Ann"}, 123: {"name": "Bob"}}
        self.computations = []

    def get_user_profile(self, user_id):
        return {"id": user_id, **self.users[user_id]}

    def expensive_computation(self, a, b):
        self.computations.append((a, b))
        return a * b

    def request(self, cookie=None):
        """(environment, request, response, session) of a new request
        carrying the session cookie (name, value)."""
        from gluon import current
        from gluon.cache import Cache

        if web2py_support.REAL_WEB2PY:
            from gluon.globals import Request, Response, Session

            request = Request({})
            if cookie:
                request.cookies.load(f"{cookie[0]}={cookie[1]}")
            response, session = Response(), Session()
        else:
            sys.path.insert(0, str(ROOT / "examples" / "web2py_app"))
            from run import Session

            request = web2py_support.Storage(env=web2py_support.Storage(), cookies=dict([cookie] if cookie else []))
            response, session = web2py_support.Storage(cookies={}), Session()
        request.application, request.folder = self.name, self.folder
        current.request, current.response, current.session = request, response, session
        environment = dict(
            request=request,
            response=response,
            session=session,
            cache=Cache(request),
            db=types.SimpleNamespace(users=self.users),
            get_user_profile=self.get_user_profile,
            expensive_computation=self.expensive_computation,
            os=os,
        )
        return environment, request, response, session


def store_session(session, request, response):
    """Ends the request as web2py does: the session is saved; returns its cookie."""
    if web2py_support.REAL_WEB2PY:
        session._try_store_in_db(request, response)
        return response.session_id_name, response.cookies[response.session_id_name].value
    session.save()
    (name, value), = response.cookies.items()
    return name, value


_ran = set()


def run(code, heading, environment):
    _ran.add(heading)
    exec(compile(code, f"{DOCUMENT.name}: {heading}", "exec"), environment)


def settings_given_to_the_cache(examples, app):
    env, request, response, session = app.request()
    for heading in ("Setup and Configuration", "Simple Caching", "Custom Cache Keys", "Cache Invalidation Patterns"):
        run(examples[heading], heading, env)
    cache = env["cache"]
    assert cache.ram is cache.redis and cache.disk is cache.redis
    check_caching(env, app)
    check_smart_cache(env, app)
    # host='localhost', port=6379, db=0 as written: the private server's db 0.
    stored = redis.Redis(host="localhost", port=6379, db=0).get(f"w2p:cache:{app.name}:user_data_1")
    assert pickle.loads(stored) == {"name": "Ann"}


def settings_dict_with_decode_responses(examples, app):
    models = ("Web2py Integration", "Distributed Session Storage")
    env, request, response, session = app.request()
    for heading in models + ("Simple Caching", "Custom Cache Keys", "Cache Invalidation Patterns"):
        run(examples[heading], heading, env)
    assert env["REDIS_CONFIG"]["decode_responses"] is True
    check_caching(env, app)
    check_smart_cache(env, app)
    # REDIS_DB from the environment selected the database.
    host, port, db = os.environ["REDIS_HOST"], int(os.environ["REDIS_PORT"]), int(os.environ["REDIS_DB"])
    database = redis.Redis(host=host, port=port, db=db)
    assert pickle.loads(database.get(f"w2p:cache:{app.name}:user_data_1")) == {"name": "Ann"}
    # The session outlives the request: the next one (the models run again) finds it.
    session.visits = 1
    cookie = store_session(session, request, response)
    env, request, response, session = app.request(cookie)
    for heading in models:
        run(examples[heading], heading, env)
    assert session.visits == 1, "the session was not stored in Redis"


def check_caching(env, app):
    """The functions the blocks defined cache through cache.redis."""
    cache = env["cache"]
    assert env["get_user_data"](1) == {"name": "Ann"}
    app.users[1] = {"name": "changed"}
    assert env["get_user_data"](1) == {"name": "Ann"}, "get_user_data was not cached"
    app.users[1] = {"name": "Ann"}
    assert env["cached_function"](6, 7) == env["cached_function"](6, 7) == 42
    assert app.computations == [(6, 7)], "cached_function computed twice"
    # @cache('expensive_operation', ...) stores through cache.ram, which is cache.redis.
    assert env["expensive_operation"]() == "Computed result"
    assert cache.redis.redis_client.exists("expensive_operation") == 1
    assert env["expensive_operation"]() == "Computed result"


def check_smart_cache(env, app):
    """The block's invalidate_tag ran: the next read recomputes; and again by hand."""
    redis_cache, smart_cache = env["cache"].redis, env["smart_cache"]
    assert redis_cache("user_profile_123", lambda: "recomputed", 3600) == "recomputed"
    smart_cache.tag_cache("user_profile_1", app.get_user_profile(1), tags=["user:1"], time_expire=3600)
    assert redis_cache("user_profile_1", lambda: "not cached", 3600) == {"id": 1, "name": "Ann"}
    smart_cache.invalidate_tag("user:1")
    assert redis_cache("user_profile_1", lambda: "recomputed", 3600) == "recomputed"


SCENARIOS = [settings_given_to_the_cache, settings_dict_with_decode_responses]


def main():
    loopback_up()
    examples = blocks()
    install_drop_ins()
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(workdir, port=6379, args=["--bind", "127.0.0.1", "-::1"]).start()
        try:
            os.environ.update(REDIS_HOST="127.0.0.1", REDIS_PORT="6379", REDIS_DB="1")
            os.environ.pop("REDIS_PASSWORD", None)
            for number, scenario in enumerate(SCENARIOS):
                folder = Path(workdir) / f"app{number}"
                folder.mkdir()
                scenario(examples, Application(f"design{number}", str(folder)))
                print(f"ok: {scenario.__name__} (web2py {'real' if web2py_support.REAL_WEB2PY else 'stand-in'})")
        finally:
            server.stop()
    assert _ran == set(examples), f"blocks no scenario runs: {sorted(set(examples) - _ran)}"
    print(f"ran all {len(examples)} Python blocks of {DOCUMENT.name}")


if __name__ == "__main__":
    main()
