"""rcache.web2py.redis_cache against web2py's cache contract, the old
module's data in Redis, and each defect of the old module it fixes.

Defect tests run twice: against rcache, and against a re-implementation of
the old module (tests/python/legacy_web2py.py) where they must fail."""

import pickle
import threading
import time

import pytest

from web2py_support import Storage, app, conn, current, legacy, rconn_for, redis, redis_cache, redis_session, redis_utils, rpy  # noqa: F401
import legacy_web2py

import rcache

RedisCache = redis_cache.RedisCache


@pytest.fixture
def cache(conn, app):
    return RedisCache(redis_conn=conn, application=app)


def counting(value):
    """f() returning value and counting its calls in .calls."""

    def f():
        f.calls += 1
        return value

    f.calls = 0
    return f


def full_key(app, key):
    return f"w2p:cache:{app}:{key}"


# --- the call contract, on both backends ------------------------------------


def test_call_shapes(cache):
    assert cache("k1", lambda: "v", 100) == "v"
    assert cache("k1", lambda: "other", time_expire=100) == "v"
    assert cache("k1", lambda: "other", 100, with_lock=True) == "v"
    assert cache("k1", None) is None
    assert cache("k1", lambda: "new", 100) == "new"
    assert cache("with space", lambda: [1, 2], None) == [1, 2]
    assert cache("with space", lambda: [3], None) == [1, 2]
    client = cache._client
    assert client.exists("with_space")
    assert 86390 < client.ttl("with_space") <= 86400


def test_ram_cache_contract(cache):
    assert cache("a", lambda: 1, 0) == 1
    assert cache("a", lambda: 2, 100) == 1
    cache.clear("b")
    assert cache("a", lambda: 2, 100) == 1
    cache.clear("a")
    assert cache("a", lambda: 2, 100) == 2
    cache.clear()
    assert cache("a", lambda: 3, 100) == 3
    cache.clear()
    assert cache("a", lambda: 5, 100) == 5
    assert cache.increment("a") == 6
    assert cache("a", lambda: 0, 100) == 6


def test_a_hit_needs_at_most_time_expire_seconds_left(cache):
    assert cache("k", lambda: "first", 100) == "first"
    # 100 s left is more than 50: the caller wants fresher data.
    assert cache("k", lambda: "second", 50) == "second"
    assert cache("k", lambda: "third", 200) == "second"
    assert cache("k", lambda: "fourth", 50) == "second"


def test_zero_or_negative_time_expire_always_recomputes(cache):
    f = counting("v")
    for time_expire in (0, -1, 0, -5.5):
        assert cache("k", f, time_expire) == "v"
    assert f.calls == 4
    assert cache("k", counting("later"), 100) == "v"  # stored for 1 s


def test_float_time_expire(cache):
    assert cache("k", lambda: "v", 0.5) == "v"
    assert 0 < cache._client.ttl("k") <= 0.5


def test_bad_time_expire_is_refused_before_computing(cache):
    f = counting("v")
    for bad in ("10", [], True, float("nan")):
        with pytest.raises(TypeError):
            cache("k", f, bad)
    assert f.calls == 0


def test_cached_none_is_a_hit(cache):
    assert cache("n", lambda: None, 100) is None
    f = counting(1)
    assert cache("n", f, 100) is None
    assert f.calls == 0


def test_exception_in_f_propagates_and_stores_nothing(cache):
    def boom():
        raise KeyError("boom")

    for with_lock in (False, True):
        with pytest.raises(KeyError):
            cache("k", boom, 100, with_lock=with_lock)
        assert not cache._client.exists("k")
        assert not cache._client.exists("k:__lock")


def test_fail_gracefully_returns_the_last_value_when_f_raises(conn, app):
    cache = redis_cache.RedisClient(conn, application=app, fail_gracefully=True)
    strict = redis_cache.RedisClient(conn, application=app)

    def boom():
        raise KeyError("the database is down")

    for with_lock in (False, True):
        assert cache("k", lambda: {"v": 1}, 0.05, with_lock=with_lock, tags=["t"]) == {"v": 1}
        deadline = time.monotonic() + 10
        while cache._client.exists("k") and time.monotonic() < deadline:
            time.sleep(0.01)
        before = cache.stale_served
        assert cache("k", boom, 0.05, with_lock=with_lock) == {"v": 1}
        assert cache.stale_served == before + 1
        with pytest.raises(KeyError):
            strict("k", boom, 0.05, with_lock=with_lock)
    # An invalidated tag or a delete removes the copy.
    cache.invalidate_tag("t")
    with pytest.raises(KeyError):
        cache("k", boom, 0.05)
    cache("d", lambda: 1, 100)
    cache.delete("d")
    with pytest.raises(KeyError):
        cache("d", boom, 100)


def test_delete_initialize_and_r_server(cache, conn):
    cache("k", lambda: 1, 100)
    assert cache.delete("k") == 1
    assert cache.delete("k") == 0
    assert cache.initialize() is None
    assert cache.r_server is conn


def test_one_cache_per_application(conn, app):
    first = RedisCache(redis_conn=conn, debug=True, application=app)
    second = RedisCache(redis_conn=None, debug=False, application=app)
    assert second is first and second.debug
    assert RedisCache() is first  # current.request.application


def test_stats_counts_hits_and_misses_with_debug(conn, app):
    cache = RedisCache(redis_conn=conn, debug=True, application=app)
    cache("k", lambda: 1, 100)
    cache("k", lambda: 1, 100)
    cache("k", lambda: 1, 100)
    stats = cache.stats()
    assert stats["w2p_stats"] == {"hit_total": 2, "misses": 1}
    assert "used_memory" in stats


def test_increment(cache):
    assert cache.increment("c") == 1
    assert cache.increment("c", 5) == 6
    assert cache.increment("c", -2) == 4
    assert cache("c", counting(0), 100000) == 4
    cache("text", lambda: "abc", 100)
    with pytest.raises(rcache.WrongTypeError):
        cache.increment("text")
    assert cache("text", counting(0), 100) == "abc"


def test_increment_of_a_cached_int_from_many_threads(cache):
    cache("n", lambda: 100, 1000)
    threads = [threading.Thread(target=lambda: [cache.increment("n") for _ in range(50)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache("n", counting(0), 1000) == 300
    assert 900 < cache._client.ttl("n") <= 1000  # kept the cached value's TTL


def test_tag_cache_and_invalidate_tag(cache):
    assert cache.tag_cache("page:1", "<html>1", tags=["pages", "user:7"], time_expire=100) == "<html>1"
    cache.tag_cache("page:2", "<html>2", tags=["pages"])  # for a day
    cache("plain", lambda: "p", 100)
    assert cache("page:1", counting("x"), 100) == "<html>1"
    cache.invalidate_tag("user:7")
    assert cache("page:1", lambda: "fresh", 100) == "fresh"
    assert cache("page:2", counting("x"), 86400) == "<html>2"
    cache.invalidate_tag("pages")
    assert cache("page:2", lambda: "fresh2", 100) == "fresh2"
    assert cache("plain", counting("x"), 100) == "p"
    assert cache("t", lambda: 1, 100, tags=["calls"]) == 1
    cache.invalidate_tag("calls")
    assert cache("t", lambda: 2, 100) == 2


def test_cached_booleans_under_the_lock(cache):
    for value in (False, True):
        cache(f"b{value}", lambda value=value: value, 100)
        assert cache(f"b{value}", counting("computed"), 100, with_lock=True) is value
    # A waiter that finds a cached False returns it, and does not compute.
    cache._client.set("w:__lock", b"someone else")
    cache._client.set("w", pickle.dumps(False), ttl=100)
    assert cache("w", counting("computed"), 100, with_lock=True) is False


def test_fail_gracefully_with_debug_never_raises(app):
    cache = redis_cache.RedisClient(
        redis_utils.Connection(host="127.0.0.1", port=1, socket_connect_timeout=0.2), application=app,
        debug=True, fail_gracefully=True,
    )
    for _ in range(3):
        assert cache("k", lambda: "computed", 100) == "computed"
        cache._flushed_at -= 2  # statistics are due: flushing them must not raise either
    assert cache.increment("n") is None


def test_with_lock_computes_once_across_threads(cache):
    f_calls = []

    def slow():
        f_calls.append(1)
        time.sleep(0.2)
        return "v"

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache("k", slow, 100, with_lock=True))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["v"] * 8
    assert len(f_calls) == 1


def test_clear_leaves_other_applications_alone(conn, app):
    mine = RedisCache(redis_conn=conn, application=app)
    other = RedisCache(redis_conn=conn, application=app + "x")
    mine("k", lambda: 1, 100)
    other("k", lambda: 2, 100)
    mine.clear()
    assert other("k", counting(0), 100) == 2
    assert mine("k", lambda: 3, 100) == 3


def test_corrupt_value_is_a_miss_and_is_replaced(cache):
    cache._client.set("k", b"\x80\x05not a pickle")
    assert cache("k", lambda: "good", 100) == "good"
    assert cache("k", counting(0), 100) == "good"


def test_signed_values(conn, app):
    signed = redis_cache.RedisClient(conn, application=app, secret_key="s3cret")
    plain = redis_cache.RedisClient(conn, application=app)
    other_key = redis_cache.RedisClient(conn, application=app, secret_key=b"other")
    assert signed("k", lambda: {"a": 1}, 100) == {"a": 1}
    assert signed("k", counting(0), 100) == {"a": 1}
    # Without the key, or with another one, a signed value is not trusted.
    assert plain("k", lambda: "plain", 100) == "plain"
    assert signed("k", lambda: "resigned", 100) == "resigned"
    assert other_key("k", lambda: "mine", 100) == "mine"
    assert signed("k", lambda: "again", 100) == "again"
    # A signature binds the value to its key.
    stored = signed._client.get("k")
    signed._client.set("k2", stored)
    assert signed("k2", lambda: "own", 100) == "own"
    # Nobody signs a raw integer: with a secret key it is a miss too.
    signed._client.set("k3", b"42")
    assert signed("k3", lambda: "computed", 100) == "computed"
    assert signed.increment("c") == 1
    assert signed("c", lambda: "not trusted", 100000) == "not trusted"


def test_a_cache_made_before_fork_works_in_the_child(cache, url):
    import os

    cache("k", lambda: "parent", 100)
    # A memory:// store is private to its process: the child starts empty.
    expected = "child" if url.startswith("memory:") else "parent"
    pid = os.fork()
    if pid == 0:
        try:
            ok = cache("k", counting("child"), 100) == expected and cache("c", lambda: "child", 100) == "child"
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache("k", counting("again"), 100) == "parent"


# --- the old module's data ---------------------------------------------------


@pytest.fixture
def old(rpy, app):
    return legacy_web2py.LegacyCache(rpy, app)


@pytest.fixture
def new(redis_server, app):
    return RedisCache(redis_conn=rconn_for(redis_server, app), application=app)


def test_reads_what_the_old_module_wrote(old, new, rpy, app):
    assert old("k", lambda: {"x": [1, 2]}, 100) == {"x": [1, 2]}
    assert old("with space", lambda: 3.5, 100) == 3.5
    assert new("k", counting(0), 100) == {"x": [1, 2]}
    assert new("with space", counting(0), 100) == 3.5
    # The same freshness rule on both sides.
    assert new("k", lambda: "fresher", 10) == "fresher"
    assert old("k", counting(0), 100) == "fresher"
    assert old.increment("n", 4) == 4
    assert new("n", counting(0), 100) == 4
    assert new.increment("n") == 5
    assert old.increment("n") == 6


def test_old_module_reads_what_rcache_wrote(old, new, rpy, app):
    assert new("k", lambda: ("tuple", None), 100) == ("tuple", None)
    assert old("k", counting(0), 100) == ("tuple", None)
    assert pickle.loads(rpy.get(full_key(app, "k"))) == ("tuple", None)
    assert 99 <= rpy.ttl(full_key(app, "k")) <= 100
    new("gone", lambda: 1, 100)
    old("gone", None)
    assert new("gone", lambda: 2, 100) == 2


def test_old_and_new_processes_share_the_compute_lock(old, new, rpy, app):
    rpy.set(full_key(app, "k") + ":__lock", "12345.6", ex=10)
    results = []
    thread = threading.Thread(target=lambda: results.append(new("k", counting("mine"), 100, with_lock=True)))
    thread.start()
    time.sleep(0.1)
    assert thread.is_alive()  # waiting for the old process's lock
    old.cache_it(full_key(app, "k"), lambda: "theirs", 100)
    thread.join(5)
    assert results == ["theirs"]


def test_near_cache_sees_writes_of_old_processes(redis_server, rpy, app):
    """With near_cache, hits are served from process memory; a write by an
    old process (redis-py) still reaches the next read."""
    cache = RedisCache(redis_conn=rconn_for(redis_server, app, near_cache=1000), application=app)
    old = legacy_web2py.LegacyCache(rpy, app)
    assert cache("k", lambda: "v1", 100) == "v1"
    deadline = time.monotonic() + 2
    while cache._client.stats()["near_hits"] == 0:  # the copy is held once the write's own report has passed
        assert cache("k", counting(0), 100) == "v1"
        assert time.monotonic() < deadline, "never served from the near cache"
    old("k", lambda: "v2", 0)  # a forced refresh: SETEX with the new value
    deadline = time.monotonic() + 2
    while cache("k", counting("computed"), 100) != "v2":
        assert time.monotonic() < deadline, "the near cache kept serving the old value"
        time.sleep(0.01)


def test_accepts_a_redis_py_client(redis_server, app):
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=0)
    cache = RedisCache(redis_conn=client, application=app)
    assert cache.r_server is client
    assert cache("k", lambda: "v", 100) == "v"
    assert pickle.loads(client.get(full_key(app, "k"))) == "v"


# --- the defects of the old module, each shown on it --------------------------


@pytest.fixture
def make(redis_server, rpy, app):
    """make(impl, **options): a cache of the test's application, rcache's or the old module's."""

    def build(impl, **options):
        if impl == "legacy":
            return legacy_web2py.LegacyCache(rpy, app, **options)
        return redis_cache.RedisClient(rconn_for(redis_server, app), application=app, **options)

    return build


@pytest.mark.parametrize("impl", ["rcache", legacy("C1: clear(regex) matches the text b'<key>'")])
def test_C1_clear_matches_keys_without_their_prefix(make, impl):
    cache = make(impl)
    cache("a", lambda: 1, 100)
    cache("b", lambda: 2, 100)
    cache.clear("a")
    assert cache("a", lambda: "recomputed", 100) == "recomputed"
    assert cache("b", counting(0), 100) == 2
    cache.clear("^b$")
    assert cache("a", counting(0), 100) == "recomputed"


@pytest.mark.parametrize("impl", ["rcache", legacy("C2: clear() raises TypeError")])
def test_C2_clear_without_argument_clears_the_application(make, impl, rpy, app):
    rpy.set("unrelated", "keep")
    rpy.set(f"w2p:cache:{app}x:k", "another app")
    cache = make(impl)
    cache("a", lambda: 1, 100)
    cache.clear()
    assert cache("a", lambda: 2, 100) == 2
    assert rpy.get("unrelated") == b"keep"
    assert rpy.get(f"w2p:cache:{app}x:k") == b"another app"


@pytest.mark.parametrize("impl", ["rcache", legacy("C3: counters are unreadable through cache() and never expire")])
def test_C3_counters_are_readable_clearable_and_expire(make, impl, rpy, app):
    cache = make(impl)
    assert cache.increment("hits") == 1
    assert cache("hits", counting(0), 100000) == 1
    assert rpy.ttl(full_key(app, "hits")) > 0
    cache("other", lambda: 1, 100)
    cache.clear("hits")
    assert not rpy.exists(full_key(app, "hits"))


@pytest.mark.parametrize("impl", ["rcache", legacy("C4: the locked path returns the old value")])
def test_C4_locked_refresh_honours_time_expire(make, impl):
    cache = make(impl)
    cache("k", lambda: "old", 100)
    assert cache("k", lambda: "new", 0, with_lock=True) == "new"
    cache("j", lambda: "old", 100)
    # 100 s left is more than the caller accepts.
    assert cache("j", lambda: "newer", 50, with_lock=True) == "newer"


@pytest.mark.parametrize("impl", ["rcache", legacy("C6: negative or float time_expire raises after f() ran")])
def test_C6_negative_and_float_time_expire(make, impl):
    cache = make(impl)
    f = counting("v")
    assert cache("k", f, -1) == "v"
    assert cache("k", f, -1) == "v"
    assert f.calls == 2
    assert cache("j", lambda: "w", 2.5) == "w"


def _write_calls(rpy):
    stats = rpy.info("commandstats")
    writes = ("set", "setex", "psetex", "sadd", "expire", "expireat", "pexpire", "hset", "evalsha", "eval", "multi")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in writes}


@pytest.mark.parametrize("impl", ["rcache", legacy("C7: a miss writes the value twice and the index separately")])
def test_C7_a_miss_is_one_write(make, impl, rpy):
    cache = make(impl)
    cache("warm", lambda: 0, 100)
    before = _write_calls(rpy)
    cache("k", lambda: "v", 100)
    after = _write_calls(rpy)
    spent = {name: after[name] - before[name] for name in after if after[name] != before[name]}
    # rcache: one script call to read (with the remaining TTL), one SET.
    assert sum(count for name, count in spent.items() if name not in ("evalsha", "eval")) == 1, spent


@pytest.mark.parametrize("impl", ["rcache", legacy("C8: statistics are global and stats() uses KEYS")])
def test_C8_per_application_statistics_without_keys(redis_server, rpy, app, impl):
    if impl == "legacy":
        first = legacy_web2py.LegacyCache(rpy, app, debug=True)
        second = legacy_web2py.LegacyCache(rpy, app + "2", debug=True)
    else:
        conn = rconn_for(redis_server, app)
        first = redis_cache.RedisClient(conn, debug=True, application=app)
        second = redis_cache.RedisClient(conn, debug=True, application=app + "2")
    keys_before = rpy.info("commandstats").get("cmdstat_keys", {}).get("calls", 0)
    first("k", lambda: 1, 100)
    first("k", lambda: 1, 100)
    second("k", lambda: 1, 100)
    first_stats, second_stats = first.stats(), second.stats()
    assert {name: int(value) for name, value in first_stats["w2p_stats"].items()} == {"hit_total": 1, "misses": 1}
    assert {name: int(value) for name, value in second_stats["w2p_stats"].items()} == {"hit_total": 0, "misses": 1}
    assert rpy.info("commandstats").get("cmdstat_keys", {}).get("calls", 0) == keys_before


@pytest.mark.parametrize("impl", ["rcache", legacy("C9: the bucket index grows with every minute of expiry")])
def test_C9_metadata_stays_bounded(make, impl, rpy, app):
    cache = make(impl)
    for minutes in range(1, 201):
        cache(f"k{minutes}", lambda: 1, minutes * 60)
    metadata = [key for key in rpy.scan_iter(f"w2p:{app}:*")]
    index = rpy.scard(f"w2p:{app}:___cache_set")
    assert len(metadata) + index <= 3, (len(metadata), index)


class _SleepRecorder:
    def __init__(self):
        self.total = 0

    def __call__(self, seconds):
        self.total += seconds


@pytest.mark.parametrize("impl", ["rcache", legacy("C11: a call sleeps 30 s while Redis is down")])
def test_C11_unavailable_redis_is_bounded_and_fail_gracefully_computes(private_redis, impl, app):
    if impl == "legacy":
        sleep = _SleepRecorder()
        client = redis.Redis(host="127.0.0.1", port=private_redis.port, socket_timeout=1, socket_connect_timeout=1)
        strict = legacy_web2py.LegacyCache(client, app, sleep=sleep)
        graceful = legacy_web2py.LegacyCache(client, app, fail_gracefully=True, sleep=sleep)
        elapsed = lambda started: time.monotonic() - started + sleep.total  # noqa: E731
    else:
        conn = redis_utils.Connection(host="127.0.0.1", port=private_redis.port, socket_timeout=1, socket_connect_timeout=1)
        strict = redis_cache.RedisClient(conn, application=app)
        graceful = redis_cache.RedisClient(conn, application=app, fail_gracefully=True)
        elapsed = lambda started: time.monotonic() - started  # noqa: E731
    strict("k", lambda: 1, 100)
    private_redis.kill()
    started = time.monotonic()
    with pytest.raises((redis_utils.RConnectionError, rcache.TimeoutError, redis.ConnectionError)):
        strict("k", lambda: 1, 100)
    assert elapsed(started) < 5
    started = time.monotonic()
    assert graceful("k", lambda: "computed", 100) == "computed"
    assert graceful("k", lambda: "computed", 100, with_lock=True) == "computed"
    assert graceful.increment("n") is None
    assert elapsed(started) < 5


@pytest.mark.parametrize("impl", ["rcache", legacy("C12: the lock expires under a long computation")])
def test_C12_lock_lasts_as_long_as_the_computation(redis_server, rpy, app, impl):
    if impl == "legacy":
        legacy_web2py.LegacyCache.lock_seconds = 1
        caches = [legacy_web2py.LegacyCache(rpy, app) for _ in range(2)]
    else:
        conn = rconn_for(redis_server, app)
        caches = [redis_cache.RedisClient(conn, application=app, lock_lease=1.0, lock_wait=30) for _ in range(2)]
    calls = []

    def slow():
        calls.append(1)
        time.sleep(2.5)
        return "v"

    try:
        threads = [threading.Thread(target=cache, args=("k", slow, 100, True)) for cache in caches]
        threads[0].start()
        time.sleep(0.2)
        threads[1].start()
        for thread in threads:
            thread.join()
    finally:
        legacy_web2py.LegacyCache.lock_seconds = 10
    assert len(calls) == 1


@pytest.mark.parametrize("impl", ["rcache", legacy("C12: waiting for a lock has no deadline")])
def test_C12_waiting_for_a_stuck_lock_is_bounded(redis_server, rpy, app, impl):
    rpy.set(full_key(app, "k") + ":__lock", "stuck", ex=4)
    if impl == "legacy":
        cache = legacy_web2py.LegacyCache(rpy, app)
    else:
        cache = redis_cache.RedisClient(rconn_for(redis_server, app), application=app, lock_wait=0.5)
    results = []
    thread = threading.Thread(target=lambda: results.append(cache("k", lambda: "v", 100, with_lock=True)), daemon=True)
    thread.start()
    thread.join(2)
    assert results == ["v"]


@pytest.mark.parametrize("impl", ["rcache", legacy("C14: decode_responses=True breaks every read")])
def test_C14_client_with_decode_responses(redis_server, app, impl):
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
    if impl == "legacy":
        cache = legacy_web2py.LegacyCache(client, app)
    else:
        cache = redis_cache.RedisClient(client, application=app)
    assert cache("k", lambda: {"v": 1}, 100) == {"v": 1}
    assert cache("k", counting(0), 100) == {"v": 1}


UNPICKLED = []


def _mark_unpickled():
    UNPICKLED.append(1)
    return "payload ran"


class _Payload:
    def __reduce__(self):
        return (_mark_unpickled, ())


@pytest.mark.parametrize("impl", ["rcache", legacy("C15: anyone who can write to Redis runs code in web2py")])
def test_C15_signed_values_never_unpickle_foreign_data(redis_server, rpy, app, impl):
    UNPICKLED.clear()
    rpy.set(full_key(app, "k"), pickle.dumps(_Payload()), ex=100)
    if impl == "legacy":
        cache = legacy_web2py.LegacyCache(rpy, app)
    else:
        cache = redis_cache.RedisClient(rconn_for(redis_server, app), application=app, secret_key="key")
    assert cache("k", lambda: "safe", 100) == "safe"
    assert UNPICKLED == []


# --- RConn and the lock helpers ----------------------------------------------


def test_rconn_is_one_connection_per_application(app):
    first = redis_utils.RConn(app, url="memory://")
    assert redis_utils.RConn(app, host="elsewhere") is first
    assert redis_utils.RConn() is first
    assert redis_utils.RConn(app + "b", url="memory://") is not first


def test_rconn_builds_urls_from_redis_py_arguments():
    def url(*args, **kw):
        return redis_utils.Connection(*args, **kw).url

    assert url() == "redis://localhost:6379/0"
    assert url("h", 7000, 3) == "redis://h:7000/3"
    assert url(host="h", password="p@ss") == "redis://:p%40ss@h:6379/0"
    assert url(host="h", username="u", password="p") == "redis://u:p@h:6379/0"
    assert url(host="h", ssl=True) == "rediss://h:6379/0"
    assert url(host="h", ssl=True, ssl_cert_reqs="none") == "rediss://h:6379/0#insecure"
    assert url(unix_socket_path="/tmp/r.sock", db=2) == "unix:///tmp/r.sock?db=2"
    assert url(host="::1") == "redis://[::1]:6379/0"
    assert url(url="memory://") == "memory://"
    assert url(host="h", near_cache=1000) == "redis://h:6379/0?near_cache=1000"
    assert url(host="h", ssl=True, ssl_cert_reqs="none", near_cache=5) == "rediss://h:6379/0?near_cache=5#insecure"
    assert url(unix_socket_path="/s", near_cache=5) == "unix:///s?db=0&near_cache=5"
    with pytest.raises(ValueError):
        url(host="h", near_cache="many")
    connection = redis_utils.Connection(host="h", socket_timeout=2.5, socket_connect_timeout=0.5, decode_responses=True)
    assert (connection.response_timeout, connection.connect_timeout) == (2.5, 0.5)
    with pytest.warns(RuntimeWarning, match="frobnicate"):
        redis_utils.Connection(host="h", frobnicate=1)


def test_lock_helpers_interoperate_with_the_classic_protocol(redis_server, rpy, app):
    conn = rconn_for(redis_server, app)
    assert legacy_web2py.acquire_lock(rpy, "job:lock", "old-owner", 10) == "old-owner"
    assert redis_utils.acquire_lock(conn, "job:lock", "new-owner", 10, timeout=0.2) is None
    assert redis_utils.release_lock(conn, "job:lock", "new-owner") == 0
    assert legacy_web2py.release_lock(rpy, "job:lock", "old-owner") == 1
    assert redis_utils.acquire_lock(conn, "job:lock", "new-owner", 10) == "new-owner"
    assert rpy.get("job:lock") == b"new-owner"
    assert 0 < rpy.ttl("job:lock") <= 10
    assert legacy_web2py.release_lock(rpy, "job:lock", "old-owner") == 0
    release = redis_utils.register_release_lock(conn)
    assert release(keys=["job:lock"], args=["new-owner"]) == 1
    assert not rpy.exists("job:lock")


def test_lock_helpers_on_memory(app):
    conn = redis_utils.RConn(app, url="memory://")
    assert redis_utils.acquire_lock(conn, "l", "a", 10) == "a"
    assert redis_utils.acquire_lock(conn, "l", "b", 10, timeout=0.05) is None
    assert redis_utils.release_lock(conn, "l", "a") == 1
    assert redis_utils.acquire_lock(conn, "l", "b", 10) == "b"


def test_exports():
    assert redis_utils.RConnectionError is rcache.ConnectionError
    assert issubclass(redis_utils.RWatchError, rcache.RCacheError)
    for module in (redis_utils, redis_cache, redis_session_module()):
        for name in module.__all__:
            assert hasattr(module, name)


def redis_session_module():
    from rcache.web2py import redis_session

    return redis_session


def test_gluon_contrib_files_re_export_everything():
    import importlib

    for name in ("redis_utils", "redis_cache", "redis_session"):
        shim = importlib.import_module(f"rcache.web2py.gluon_contrib.{name}")
        original = importlib.import_module(f"rcache.web2py.{name}")
        for exported in original.__all__:
            assert getattr(shim, exported) is getattr(original, exported)


# --- the shapes of the design document's examples ------------------------------


@pytest.fixture
def web2py_cache(app, tmp_path):
    """web2py's own cache object (gluon.cache.Cache: the real one under
    WEB2PY_PATH, else the stand-in) of the test's application."""
    from gluon.cache import Cache

    return Cache(Storage(application=app, folder=str(tmp_path)))


def settings(server, **extra):
    """REDIS_CONFIG of the design document, for the private server."""
    return dict(host="127.0.0.1", port=server.port, db=0, password=None, **extra)


def test_connection_settings_given_to_the_cache(redis_server, rpy, app):
    cache = RedisCache(application=app, **settings(redis_server))
    assert cache("user_data_1", lambda: {"name": "Ann"}, time_expire=1800) == {"name": "Ann"}
    assert cache("user_data_1", counting(0), time_expire=1800) == {"name": "Ann"}
    assert pickle.loads(rpy.get(full_key(app, "user_data_1"))) == {"name": "Ann"}
    assert 1790 < rpy.ttl(full_key(app, "user_data_1")) <= 1800
    with_url = RedisCache(application=app + "u", url=redis_server.url)
    assert with_url("k", lambda: "by url", 100) == "by url"
    assert pickle.loads(rpy.get(full_key(app + "u", "k"))) == "by url"


def test_db_selects_the_database_with_settings_and_is_ignored_with_redis_conn(redis_server, rpy, app):
    db3 = redis.Redis(host="127.0.0.1", port=redis_server.port, db=3)
    try:
        cache = RedisCache(application=app, **dict(settings(redis_server), db=3))
        cache("k", lambda: "in db 3", 100)
        assert pickle.loads(db3.get(full_key(app, "k"))) == "in db 3"
        assert not rpy.exists(full_key(app, "k"))
        alone = redis_cache.RedisClient(db=3, application=app + "d")
        assert alone._connection.url == "redis://localhost:6379/3"
        ignored = RedisCache(redis_conn=rconn_for(redis_server, app + "c"), db=3, application=app + "c")
        ignored("k", lambda: "in db 0", 100)
        assert pickle.loads(rpy.get(full_key(app + "c", "k"))) == "in db 0"
        assert not db3.exists(full_key(app + "c", "k"))
    finally:
        db3.delete(full_key(app, "k"))
        db3.close()


def test_redis_conn_and_connection_settings_together_are_refused(conn, app):
    with pytest.raises(TypeError, match="not both"):
        redis_cache.RedisClient(conn, application=app, host="127.0.0.1")


@pytest.mark.parametrize("decode_responses", [True, False])
def test_a_settings_dict_with_decode_responses_round_trips_pickles(redis_server, app, decode_responses):
    REDIS_CONFIG = settings(redis_server, decode_responses=decode_responses)
    cache = RedisCache(application=app, **REDIS_CONFIG)
    values = {"dict": {"a": [1, 2.5, None]}, "bytes": b"\x80\xff\x00", "set": {1, 2}, "text": "h\u00e9llo", "int": 7}
    for key, value in values.items():
        assert cache(key, lambda value=value: value, 100) == value
    for key, value in values.items():
        assert cache(key, counting(0), 100) == value
    text = "h\u00e9llo" if decode_responses else "h\u00e9llo".encode()
    cache.redis_client.set("greeting", "h\u00e9llo")
    assert cache.redis_client.get("greeting") == text


def test_sessions_take_connection_settings_and_redis_py_clients_with_decode_responses(redis_server, rpy, app):
    REDIS_CONFIG = settings(redis_server, decode_responses=True)
    by_client = redis_session.RedisSession(redis_conn=redis.Redis(**REDIS_CONFIG), application=app)
    by_settings = redis_session.RedisSession(application=app + "s", **REDIS_CONFIG)
    for db, name in ((by_client, app), (by_settings, app + "s")):
        table = db.define_table(f"web2py_session_{name}")
        record_id = table.insert(session_data=pickle.dumps({"visits": 1}), unique_key="uk", locked=False)
        assert pickle.loads(table(record_id, unique_key="uk").session_data) == {"visits": 1}
        assert rpy.hget(f"w2p:sess:{name}:{record_id}", "unique_key") == b"uk"


def test_cache_ram_replaced_by_cache_redis_under_the_decorator(web2py_cache, redis_server, rpy, app):
    web2py_cache.redis = RedisCache(application=app, **settings(redis_server, decode_responses=True))
    web2py_cache.ram = web2py_cache.redis
    web2py_cache.disk = web2py_cache.redis
    computed = []

    @web2py_cache("expensive_operation", time_expire=3600)
    def expensive_operation():
        computed.append(1)
        return "Computed result"

    @web2py_cache("on_disk", time_expire=3600, cache_model="disk")
    def on_disk():
        computed.append(2)
        return [1, 2]

    assert expensive_operation() == expensive_operation() == "Computed result"
    assert on_disk() == on_disk() == [1, 2]
    assert computed == [1, 2]
    assert pickle.loads(rpy.get(full_key(app, "expensive_operation"))) == "Computed result"
    assert pickle.loads(rpy.get(full_key(app, "on_disk"))) == [1, 2]


class SmartCache:
    """The design document's tag invalidation, as an application writes it."""

    def __init__(self, redis_cache):
        self.cache = redis_cache
        self.redis_client = redis_cache.redis_client

    def tag_cache(self, key, value, tags=None, time_expire=None):
        self.cache(key, lambda: value, time_expire=time_expire)
        if tags:
            for tag in tags:
                tag_key = f"tag:{tag}"
                self.redis_client.sadd(tag_key, key)
                if time_expire:
                    self.redis_client.expire(tag_key, time_expire)

    def invalidate_tag(self, tag):
        tag_key = f"tag:{tag}"
        keys = self.redis_client.smembers(tag_key)
        if keys:
            self.redis_client.delete(*keys)
            self.redis_client.delete(tag_key)


@pytest.mark.parametrize(
    "impl, decode_responses",
    [
        ("rcache", True),
        ("rcache", False),
        pytest.param(
            "legacy", False, marks=pytest.mark.xfail(strict=True, reason="the old module's redis-py client has no prefix")
        ),
    ],
)
def test_smart_cache_invalidation_makes_the_next_read_recompute(redis_server, rpy, app, impl, decode_responses):
    if impl == "legacy":
        # The old module has no redis_client; its redis-py connection is the nearest thing.
        cache = legacy_web2py.LegacyCache(rpy, app)
        cache.redis_client = cache.r_server
    else:
        cache = RedisCache(application=app, **settings(redis_server, decode_responses=decode_responses))
    smart_cache = SmartCache(cache)
    smart_cache.tag_cache("user_profile_123", {"id": 123}, tags=["user:123", "profiles"], time_expire=3600)
    smart_cache.tag_cache("user profile 7", {"id": 7}, tags=["profiles"], time_expire=3600)
    assert cache("user_profile_123", counting(0), 3600) == {"id": 123}
    assert 3590 < rpy.ttl(full_key(app, "tag:user:123")) <= 3600

    smart_cache.invalidate_tag("user:123")
    f = counting({"id": 123, "fresh": True})
    assert cache("user_profile_123", f, 3600) == {"id": 123, "fresh": True}
    assert f.calls == 1
    assert cache("user profile 7", counting(0), 3600) == {"id": 7}
    assert not rpy.exists(full_key(app, "tag:user:123"))

    smart_cache.invalidate_tag("profiles")
    assert cache("user profile 7", lambda: "recomputed", 3600) == "recomputed"
    assert cache("user_profile_123", lambda: "recomputed", 3600) == "recomputed"


def test_redis_client_answers_as_redis_py_does(cache):
    r = cache.redis_client
    assert r.get("k") is None
    assert r.set("k", "v") is True and r.get("k") == b"v"
    assert r.ttl("k") == -1 and r.ttl("missing") == -2
    assert r.set("n", 5, ex=100) is True and r.get("n") == b"5"
    assert 99 <= r.ttl("n") <= 100
    assert r.incr("n") == 6 and r.incr("n", 4) == 10 and r.decr("n", 3) == 7
    assert r.incr("fresh") == 1 and r.ttl("fresh") == -1
    assert r.set("once", "a", nx=True, ex=100) is True
    assert r.set("once", "b", nx=True, ex=100) is None and r.get("once") == b"a"
    assert r.exists("k", "n", "missing", "k") == 3
    assert r.expire("k", 50) is True and 49 <= r.ttl("k") <= 50
    assert r.expire("missing", 50) is False
    assert r.expire("k", 0) is True and r.get("k") is None
    assert r.mget(["n", "missing"]) == r.mget("n", "missing") == r.mget(["n"], "missing") == [b"7", None]

    assert r.sadd("s", "a", "b", "a") == 2 and r.sadd("s", "b", "c") == 1
    assert r.smembers("s") == {b"a", b"b", b"c"} and r.scard("s") == 3
    assert r.sismember("s", "a") == 1 and r.sismember("s", "z") == 0
    assert r.srem("s", "a", "z") == 1 and r.srem("s", "a") == 0
    assert r.smembers("s") == {b"b", b"c"} and r.sismember("s", "a") == 0
    assert r.sadd("s", "a") == 1 and r.smembers("s") == {b"a", b"b", b"c"}
    assert r.expire("s", 100) is True and r.sadd("s", "d") == 1 and 99 <= r.ttl("s") <= 100
    assert r.smembers("no set") == set()

    assert r.hset("h", "f1", "v1") == 1
    assert r.hset("h", mapping={"f1": "w", "f2": 2}) == 1
    assert r.hget("h", "f1") == b"w" and r.hget("h", "nope") is None and r.hget("no hash", "f") is None
    assert r.hgetall("h") == {b"f1": b"w", b"f2": b"2"} and r.hgetall("no hash") == {}
    assert r.hlen("h") == 2 and r.hexists("h", "f2") and r.hmget("h", "f1", "nope") == [b"w", None]

    assert sorted(r.keys()) == [b"fresh", b"h", b"n", b"once", b"s"]
    assert sorted(r.scan_iter(match="[no]*")) == [b"n", b"once"]
    assert r.delete("n", "s", "missing") == 2 and not r.exists("n")
    with pytest.raises(rcache.WrongTypeError):
        r.smembers("once")  # a string, not a set
    with pytest.raises(rcache.InvalidArgumentError):
        r.set("__rcache_tag:x", "forged")


def test_redis_client_names_the_entries_of_cache_calls(cache):
    cache("with space", lambda: [1, 2], 100)
    assert cache.redis_client.exists("with space") == 1
    assert pickle.loads(cache.redis_client.get("with space")) == [1, 2]
    assert cache.redis_client.delete("with space") == 1
    assert cache("with space", lambda: "again", 100) == "again"
    cache.increment("hits", 3)
    assert cache.redis_client.get("hits") == b"3"
    assert cache.redis_client.incr("hits") == 4
    assert cache("hits", counting(0), 100000) == 4


def test_redis_client_never_reaches_outside_its_namespace(redis_server, rpy, app):
    mine = RedisCache(application=app, **settings(redis_server))
    other = RedisCache(application=app + "x", **settings(redis_server))
    other("secret", lambda: "other app's", 100)
    rpy.set("outside", "plain key")
    rpy.sadd("tag:outside", "outside")
    r = mine.redis_client
    for name in ("outside", "secret", full_key(app + "x", "secret"), "../outside", "tag:outside"):
        assert r.get(name) is None
        assert r.exists(name) == 0
        assert r.delete(name) == 0
        assert r.expire(name, 1) is False
        assert r.smembers(name) == set()
    assert r.keys() == [] and list(r.scan_iter()) == []
    r.set("outside", "mine")
    r.sadd("tag:outside", "mine")
    assert rpy.get("outside") == b"plain key"
    assert rpy.smembers("tag:outside") == {b"outside"}
    assert rpy.get(full_key(app, "outside")) == b"mine"
    assert other("secret", counting(0), 100) == "other app's"
    assert sorted(r.keys()) == [b"outside", b"tag:outside"]
    rpy.delete("outside", "tag:outside")
