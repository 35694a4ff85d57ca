"""get_or_set: one computation per key across threads and processes."""

import multiprocessing
import os
import threading
import time

import pytest

import rcache


def test_a_miss_computes_and_a_hit_does_not(url, prefix):
    with rcache.Client(url, prefix=prefix) as client:
        assert client.get_or_set("k", lambda: b"fresh", ttl=60, tags=["t"]) == b"fresh"
        assert client.get_or_set("k", lambda: pytest.fail("computed on a hit")) == b"fresh"
        client.invalidate_tags(["t"])
        assert client.get_or_set("k", lambda: b"again", ttl=60) == b"again"


def test_an_exception_propagates_and_nothing_is_stored(url, prefix):
    class Boom(Exception):
        pass

    def fails():
        raise Boom("no data")

    with rcache.Client(url, prefix=prefix) as client:
        with pytest.raises(Boom, match="no data"):
            client.get_or_set("k", fails, ttl=60)
        assert client.get("k") is None
        started = time.monotonic()
        assert client.get_or_set("k", lambda: b"ok", ttl=60) == b"ok"
        assert time.monotonic() - started < 5, "the lock was released, not left to expire"


def test_a_non_bytes_result_is_a_type_error(url, prefix):
    with rcache.Client(url, prefix=prefix) as client:
        with pytest.raises(TypeError):
            client.get_or_set("k", lambda: "text", ttl=60)
        assert client.get("k") is None


def test_threads_compute_once(url, prefix):
    calls = []
    with rcache.Client(url, prefix=prefix) as client:

        def compute():
            calls.append(1)
            time.sleep(0.2)
            return b"expensive"

        results = []
        threads = [
            threading.Thread(target=lambda: results.append(client.get_or_set("slow", compute, ttl=60, lock_lease=0.06)))
            for _ in range(16)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [b"expensive"] * 16
    assert len(calls) == 1


def _compete(url, prefix, key, counter_key, start_at, results):
    with rcache.Client(url, prefix=prefix) as client:

        def compute():
            client.incr(counter_key, ttl=60)
            time.sleep(0.2)
            return b"shared"

        def worker():
            while time.time() < start_at:
                time.sleep(0.001)
            results.put(client.get_or_set(key, compute, ttl=60))

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def test_64_threads_in_4_processes_compute_once(redis_server, prefix):
    redis_url = redis_server.url
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 2.0
    processes = [
        context.Process(target=_compete, args=(redis_url, prefix, "key", "computations", start_at, results))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    values = [results.get(timeout=60) for _ in range(64)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert values == [b"shared"] * 64
    with rcache.Client(redis_url, prefix=prefix) as client:
        assert client.get("computations") == b"1"


def test_a_waiter_can_give_up(url, prefix):
    with rcache.Client(url, prefix=prefix) as client:
        holder = threading.Thread(target=lambda: client.get_or_set("k", lambda: time.sleep(0.5) or b"slow", ttl=60))
        holder.start()
        time.sleep(0.1)
        with pytest.raises(rcache.TimeoutError):
            client.get_or_set("k", lambda: b"mine", wait_timeout=0.05, wait_fails=True)
        assert client.get_or_set("k", lambda: b"mine", wait_timeout=0.05) == b"mine"
        holder.join()


def test_fail_open_and_the_breaker_while_redis_is_down(private_redis, prefix):
    client = rcache.Client(
        private_redis.url, prefix=prefix, fail_open=True, breaker_threshold=2, breaker_cooldown=0.2,
        connect_timeout=0.3, response_timeout=0.3,
    )
    client.set("k", b"v", ttl=60)
    private_redis.kill()
    assert client.get("k") is None
    client.set("k", b"dropped", ttl=60)
    assert client.get_or_set("k", lambda: b"computed", ttl=60) == b"computed"
    with pytest.raises(rcache.ConnectionError):
        client.delete("k")
    stats = client.stats()
    assert stats["fail_opens"] >= 3
    assert stats["breaker_trips"] >= 1
    client.close()


def test_the_cache_decorator_computes_once_per_arguments(url, prefix):
    calls = []
    with rcache.Cache(url, prefix=prefix) as cache:

        @cache.cached(ttl=60, tags=["squares"])
        def square(number):
            calls.append(number)
            return {"square": number * number}

        assert square(3) == {"square": 9}
        assert square(3) == {"square": 9}
        assert square(4) == {"square": 16}
        assert calls == [3, 4]
        cache.invalidate_tags(["squares"])
        assert square(3) == {"square": 9}
        assert calls == [3, 4, 3]


def _stampede(url, prefix, key, start_at, ttl, beta, results):
    with rcache.Client(url, prefix=prefix) as client:

        def compute():
            client.incr("computations", ttl=120)
            if client.incr("computing", ttl=120) > 1:
                client.incr("overlaps", ttl=120)
            time.sleep(0.2)
            client.incr("computing", -1)
            return b"shared"

        def worker():
            while time.time() < start_at:
                time.sleep(0.001)
            for _ in range(40):
                results.put(client.get_or_set(key, compute, ttl=ttl, beta=beta))
                time.sleep(0.02)

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_a_value_expiring_under_load_is_recomputed_one_at_a_time(redis_server, prefix, beta):
    # 64 threads in 4 processes read, 40 times each, a value that lives 0.3 s:
    # it is recomputed as it expires, never by two callers at once, and no
    # read fails.
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 2.0
    processes = [
        context.Process(target=_stampede, args=(redis_server.url, prefix, "key", start_at, 0.3, beta, results))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    values = [results.get(timeout=120) for _ in range(4 * 16 * 40)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert set(values) == {b"shared"}
    with rcache.Client(redis_server.url, prefix=prefix) as client:
        computations = int(client.get("computations"))
        overlaps = int(client.get("overlaps") or 0)
    # How many expiries the run spans depends on how fast the machine is; what
    # must hold is that no computation ever started while another ran.
    assert computations >= 1
    assert overlaps == 0, (overlaps, computations)


def test_close_inside_the_compute_function_raises_instead_of_waiting_for_itself(client):
    outcome = {}

    def compute():
        try:
            client.close()
        except rcache.InvalidArgumentError as error:
            outcome["error"] = str(error)
        return b"v"

    def call():
        outcome["value"] = client.get_or_set("close-inside", compute)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(10)
    assert not caller.is_alive(), "get_or_set never returned: close() waited for its own call"
    assert outcome["value"] == b"v"
    assert "get_or_set" in outcome["error"]
    assert not client.closed
    client.close()
    assert client.closed
