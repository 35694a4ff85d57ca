"""Client.get_or_compute: fail-safe returns the last good value marked stale
(never silently), throttles a failing source, and covers a killed Redis;
negative caching remembers "no value" apart from values."""

import os
import signal

import pytest

import rcache
from conftest import wait_until


class SourceDown(Exception):
    pass


def failing():
    raise SourceDown("the database is down")


def must_not_compute():
    raise AssertionError("throttled: compute must not run")


def expire(client, key, value, **options):
    """Stores value at key through get_or_compute with a short TTL and waits until it expires."""
    computed = client.get_or_compute(key, lambda: value, ttl=0.08, beta=0, **options)
    assert computed == rcache.Computed(value, False)
    wait_until(lambda: client.get(key) is None, 10, message="the entry expired")


def test_a_failure_returns_the_last_good_value_marked_stale_then_throttles(make_client):
    client = make_client(max_stale=60, stale_throttle=60)
    expire(client, "k", b"good", tags=["t"])
    assert client.get("k") is None, "a plain read never returns the stale copy"
    served = client.get_or_compute("k", failing, ttl=0.08, beta=0)
    assert served.value == b"good" and served.stale
    assert client.get_or_compute("k", must_not_compute, ttl=0.08, beta=0) == (b"good", True)
    stats = client.stats()
    assert (stats["stale_served"], stats["throttles"]) == (2, 1)
    # Per call: fail-safe off, the exception is the caller's; get_or_set never serves stale.
    with pytest.raises(SourceDown):
        client.get_or_compute("other", failing, max_stale=0)
    with pytest.raises(SourceDown):
        client.get_or_set("other", failing)


def test_without_fail_safe_the_exception_propagates(make_client):
    client = make_client()
    expire(client, "k", b"good")
    with pytest.raises(SourceDown):
        client.get_or_compute("k", failing)
    assert client.stats()["stale_served"] == 0


def test_an_invalidated_tag_takes_the_stale_copy_with_it(make_client):
    client = make_client(max_stale=60)
    expire(client, "k", b"old", tags=["t"])
    client.invalidate_tags(["t"])
    with pytest.raises(SourceDown):
        client.get_or_compute("k", failing)


def test_no_value_is_remembered_and_never_an_empty_value(make_client):
    client = make_client()
    calls = []

    def nothing():
        calls.append(1)
        return None

    assert client.get_or_compute("k", nothing, negative_ttl=60) == rcache.Computed(None, False)
    assert client.get_or_compute("k", nothing, negative_ttl=60) == rcache.Computed(None, False)
    assert len(calls) == 1
    assert client.get("k") is None
    assert client.stats()["negative_hits"] == 1
    with pytest.raises(TypeError):
        client.get_or_set("n", lambda: None)
    with pytest.raises(rcache.InvalidArgumentError):
        client.get_or_compute("k", nothing, max_stale=-1)


def test_a_killed_redis_gets_the_last_good_value_without_computing(private_redis, prefix):
    client = rcache.Client(private_redis.url, prefix=prefix, max_stale=60, stale_throttle=60,
                           connect_timeout=0.3, response_timeout=0.3)
    try:
        assert client.get_or_compute("k", lambda: b"good", ttl=60, tags=["t"]) == (b"good", False)
        private_redis.kill()
        assert client.get_or_compute("k", must_not_compute, ttl=60) == (b"good", True)
        with pytest.raises((rcache.ConnectionError, rcache.TimeoutError)):
            client.get("k")
        # An invalidation, though it fails, drops this process's copy.
        with pytest.raises((rcache.ConnectionError, rcache.TimeoutError)):
            client.invalidate_tags(["t"])
        with pytest.raises((rcache.ConnectionError, rcache.TimeoutError)):
            client.get_or_compute("k", must_not_compute, ttl=60)
    finally:
        client.close()


def test_a_delete_while_redis_is_paused_is_replayed_before_the_next_read(private_redis, prefix):
    client = rcache.Client(private_redis.url, prefix=prefix, connect_timeout=0.3, response_timeout=0.3)
    try:
        client.set("k", b"old", ttl=60, tags=["t"])
        client.set("j", b"old", ttl=60, tags=["t"])
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises((rcache.ConnectionError, rcache.TimeoutError)):
                client.delete("k")
            with pytest.raises((rcache.ConnectionError, rcache.TimeoutError)):
                client.invalidate_tags(["t"])
            assert client.stats()["recovery_queue"] == 3  # the entry, its companion, the tag
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        answers = []

        def answered():
            try:
                answers.append((client.get("k"), client.get("j")))
                return True
            except (rcache.ConnectionError, rcache.TimeoutError):
                return False

        wait_until(answered, 10, message="Redis answered again")
        assert answers == [(None, None)], "no read after recovery sees what the outage's removals removed"
        stats = client.stats()
        assert (stats["recovery_queue"], stats["recovery_replays"]) == (0, 3)
    finally:
        client.close()


def test_ttl_jitter_shortens_ttls_within_the_percentage(make_client):
    client = make_client(ttl_jitter=50)
    left = set()
    for index in range(20):
        client.set(f"k{index}", b"v", ttl=60)
        left.add(client.ttl(f"k{index}"))
    assert all(29 <= seconds <= 60 for seconds in left), left
    assert len(left) > 1, "expiries spread"
    client.set_ttl_jitter(0)
    client.set("exact", b"v", ttl=60)
    assert client.ttl("exact") > 58
    with pytest.raises(rcache.InvalidArgumentError):
        client.set_ttl_jitter(101)
