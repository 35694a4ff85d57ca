"""The near cache from Python: other Clients and other processes write, tags
are invalidated elsewhere, the server restarts; stats() reports it all.

A change made elsewhere reaches a near cache after the writer's call has
returned plus delivery time: the tests poll with a bounded deadline.
"""

import subprocess
import sys
import textwrap

import pytest

import rcache
from conftest import BINDINGS, wait_until

DELIVERY = 2.0
NEAR_FIELDS = ("near_hits", "near_misses", "near_invalidations", "near_evictions", "near_flushes",
               "near_entries", "near_bytes")


def near_hit(client, key):
    """Reads key once; True when the near cache answered."""
    before = client.stats()["near_hits"]
    client.get(key)
    return client.stats()["near_hits"] > before


def in_another_process(url, prefix, statement):
    """Runs `statement` with `client` bound to a new Client, in a new Python process."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(BINDINGS)!r})
        import rcache
        with rcache.Client({url!r}, prefix={prefix!r}) as client:
            {statement}
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_stats_have_the_near_fields(near_client):
    assert all(name in near_client.stats() for name in NEAR_FIELDS)
    with rcache.Client("memory://") as memory:
        memory.set("k", b"v")
        assert memory.get("k") == b"v"
        assert all(memory.stats()[name] == 0 for name in NEAR_FIELDS)


def test_memory_takes_no_near_cache():
    with pytest.raises(rcache.InvalidArgumentError, match="near"):
        rcache.Client("memory://?near_cache=100")


def test_bad_near_parameters_are_refused(redis_server):
    for query in ("near_cache=many", "near_cache_bytes=100", "near_cache=10&near_cache_bytes=0"):
        with pytest.raises(rcache.InvalidArgumentError):
            rcache.Client(f"{redis_server.url}?{query}")
        # Checked before any server is asked, on every kind of Redis URL.
        for url in ("redis+sentinel://127.0.0.1:1/mymaster", "redis+cluster://127.0.0.1:1"):
            with pytest.raises(rcache.InvalidArgumentError, match="near_cache"):
                rcache.Client(f"{url}?{query}")


def test_bad_staleness_and_mode_are_refused_by_name(redis_server):
    for query, named in (("near_cache=10&near_cache_staleness_ms=soon", "near_cache_staleness_ms"),
                         ("near_cache=10&near_cache_staleness_ms=1", "near_cache_staleness_ms"),
                         ("near_cache=10&near_cache_mode=sometimes", "near_cache_mode"),
                         ("near_cache_mode=bcast", "near_cache_mode")):
        with pytest.raises(rcache.InvalidArgumentError, match=named):
            rcache.Client(f"{redis_server.url}?{query}")


def test_broadcast_mode_serves_near_and_sees_other_writes(redis_server, other_client, prefix):
    with rcache.Client(f"{redis_server.url}?near_cache=100&near_cache_mode=bcast&near_cache_staleness_ms=1000",
                       prefix=prefix) as near_client:
        other_client.set("k", b"one")
        assert near_client.get("k") == b"one"
        wait_until(lambda: near_hit(near_client, "k"), DELIVERY, message="a near hit")
        other_client.set("k", b"two")
        wait_until(lambda: near_client.get("k") == b"two", DELIVERY, message="the other client's write")


def test_reads_are_answered_near_until_another_client_writes(near_client, other_client):
    other_client.set("k", b"one")
    assert near_client.get("k") == b"one"
    wait_until(lambda: near_hit(near_client, "k"), DELIVERY, message="a near hit")
    stats = near_client.stats()
    assert stats["near_entries"] >= 1 and stats["near_bytes"] > 0
    assert stats["hits"] >= stats["near_hits"] >= 1

    other_client.set("k", b"two")
    wait_until(lambda: near_client.get("k") == b"two", DELIVERY, message="the other client's write")
    assert near_client.stats()["near_invalidations"] >= 1
    near_client.set("k", b"three")
    assert near_client.get("k") == b"three", "a client reads its own writes at once"


def test_a_write_in_another_process_reaches_the_near_cache(near_client, redis_server, prefix):
    near_client.set("k", b"before")
    wait_until(lambda: near_hit(near_client, "k"), DELIVERY, message="a near hit")
    in_another_process(redis_server.url, prefix, "client.set('k', b'after')")
    wait_until(lambda: near_client.get("k") == b"after", DELIVERY, message="the other process's write")


def test_a_tag_invalidated_in_another_process_empties_tagged_entries(near_client, redis_server, prefix):
    near_client.set("profile:1", b"ada", tags=["user:1", "profiles"])
    near_client.set("profile:2", b"bob", tags=["user:2", "profiles"])
    near_client.set("plain", b"stays")
    for key in ("profile:1", "profile:2", "plain"):
        wait_until(lambda key=key: near_hit(near_client, key), DELIVERY, message=f"a near hit of {key}")
    in_another_process(redis_server.url, prefix, "client.invalidate_tags(['profiles'])")
    wait_until(lambda: near_client.get_many(["profile:1", "profile:2"]) == [None, None], DELIVERY,
               message="the other process's invalidation")
    assert near_client.get("plain") == b"stays"


def test_get_or_set_is_answered_near(near_client, other_client):
    assert near_client.get_or_set("c", lambda: b"computed", tags=["t"]) == b"computed"

    def computed_again():
        raise AssertionError("a hit must not compute")

    def answered_near():
        before = near_client.stats()["near_hits"]
        assert near_client.get_or_set("c", computed_again) == b"computed"
        return near_client.stats()["near_hits"] == before + 1

    wait_until(answered_near, DELIVERY, message="a near hit of get_or_set")
    other_client.invalidate_tags(["t"])
    wait_until(lambda: near_client.get_or_set("c", lambda: b"again") == b"again", DELIVERY,
               message="the invalidation")


def test_bounds_hold(redis_server, other_client, prefix):
    with rcache.Client(f"{redis_server.url}?near_cache=50&near_cache_bytes=10000", prefix=prefix) as near:
        other_client.set_many({f"key{index}": b"x" * 100 for index in range(300)})
        for index in range(300):
            assert near.get(f"key{index}") == b"x" * 100
        stats = near.stats()
        assert stats["near_entries"] <= 50 and stats["near_bytes"] <= 10000
        assert stats["near_evictions"] >= 200


def test_nothing_from_before_a_restart_is_served_after_it(private_redis, prefix):
    with rcache.Client(f"{private_redis.url}?near_cache=100", prefix=prefix,
                       connect_timeout=0.5, response_timeout=0.5) as near:
        near.set("k", b"before")
        wait_until(lambda: near_hit(near, "k"), DELIVERY, message="a near hit")
        flushes = near.stats()["near_flushes"]
        private_redis.kill()
        private_redis.start()
        with rcache.Client(private_redis.url, prefix=prefix) as other:
            other.set("k", b"after")
        seen = []

        def read():
            try:
                value = near.get("k")
            except (rcache.ConnectionError, rcache.TimeoutError):
                return False
            seen.append(value)
            return value == b"after"

        wait_until(read, 15, message="the value written after the restart")
        assert b"before" not in seen
        assert near.stats()["near_flushes"] > flushes
