"""Client.get_or_compute with soft_timeout and hard_timeout: past the soft
timeout callers with a stale value get it while the computation finishes in
the background and stores its value; past the hard timeout they get
TimeoutError; one computation per key however many callers, in any process."""

import logging
import multiprocessing
import threading

import pytest

import rcache
from rcache import client as client_module
from conftest import wait_until


class SourceDown(Exception):
    pass


def must_not_compute():
    raise AssertionError("another caller computes this key")


def expire(client, key, value):
    """Stores value at key with fail-safe and a short TTL, and waits until it expires."""
    assert client.get_or_compute(key, lambda: value, ttl=0.08, beta=0) == (value, False)
    wait_until(lambda: client.get(key) is None, 10, message="the entry expired")


def held(client, gate, value):
    """A computation that counts its runs in the cache and waits for gate."""

    def compute():
        client.incr("runs")
        assert gate.wait(30), "the test releases the computation"
        return value

    return compute


def no_computation_left():
    wait_until(lambda: not client_module._timed, 10, message="the library released every computation")


def test_past_the_soft_timeout_the_stale_value_comes_back_and_the_computation_stores_later(make_client):
    client = make_client(max_stale=60)
    expire(client, "k", b"good")
    gate = threading.Event()
    served = client.get_or_compute("k", held(client, gate, b"new"), ttl=60, beta=0, soft_timeout=0.1)
    assert served == rcache.Computed(b"good", True)
    # A waiter (another thread) gets the stale value at its soft timeout, without computing.
    assert client.get_or_compute("k", must_not_compute, ttl=60, soft_timeout=0.1) == (b"good", True)
    assert client.get("k") is None, "still computing"
    gate.set()
    wait_until(lambda: client.get("k") == b"new", 10, message="the background computation stored its value")
    assert client.get("runs") == b"1"
    assert client.get_or_compute("k", must_not_compute, soft_timeout=0.1) == (b"new", False)
    no_computation_left()


def test_past_the_hard_timeout_without_a_stale_value_the_caller_gets_a_timeout(make_client):
    client = make_client(max_stale=60)
    gate = threading.Event()
    with pytest.raises(rcache.TimeoutError, match="hard timeout"):
        client.get_or_compute("k", held(client, gate, b"late"), ttl=60, hard_timeout=0.1)
    with pytest.raises(rcache.TimeoutError):
        client.get_or_compute("k", must_not_compute, ttl=60, hard_timeout=0.1)
    gate.set()
    wait_until(lambda: client.get("k") == b"late", 10, message="the late value is stored")
    assert client.get("runs") == b"1"
    # Within the timeouts, compute's own exception and "no value" come back as usual.
    with pytest.raises(SourceDown):
        client.get_or_compute("other", lambda: (_ for _ in ()).throw(SourceDown()), hard_timeout=30)
    assert client.get_or_compute("none", lambda: None, hard_timeout=30) == (None, False)
    no_computation_left()


def test_an_exception_after_the_caller_returned_is_logged_and_nothing_stored(make_client, caplog):
    client = make_client(max_stale=60)
    expire(client, "k", b"good")
    gate = threading.Event()

    def fails_late():
        gate.wait(30)
        raise SourceDown("the database is down")

    assert client.get_or_compute("k", fails_late, ttl=60, soft_timeout=0.1) == (b"good", True)
    with caplog.at_level(logging.WARNING, logger="rcache"):
        gate.set()
        wait_until(lambda: "outlived its call" in caplog.text, 10, message="the late exception is logged")
    assert client.get("k") is None
    no_computation_left()


def test_timeouts_that_cannot_be_honoured_are_refused(make_client):
    client = make_client()
    with pytest.raises(rcache.InvalidArgumentError, match="fail-safe"):
        client.get_or_compute("k", must_not_compute, soft_timeout=0.1)
    with pytest.raises(rcache.InvalidArgumentError, match="shorter"):
        client.get_or_compute("k", must_not_compute, max_stale=60, soft_timeout=2, hard_timeout=1)
    with pytest.raises(rcache.InvalidArgumentError):
        client.get_or_compute("k", must_not_compute, hard_timeout=-1)
    with pytest.raises(TypeError):
        client.get_or_compute("k", must_not_compute, hard_timeout="soon")
    no_computation_left()


def _wait_for_stale(url, prefix, results):
    """In another process: four threads miss the key while it is being computed."""
    with rcache.Client(url, prefix=prefix, max_stale=60) as client:

        def wait():
            try:
                results.put(tuple(client.get_or_compute("k", must_not_compute, ttl=60, soft_timeout=0.2)))
            except Exception as error:  # reported to the parent
                results.put(repr(error))

        threads = [threading.Thread(target=wait) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def test_waiters_in_other_processes_get_the_stale_value_while_one_computation_runs(redis_server, prefix):
    with rcache.Client(redis_server.url, prefix=prefix, max_stale=60) as client:
        expire(client, "k", b"good")
        gate = threading.Event()
        served = client.get_or_compute("k", held(client, gate, b"new"), ttl=60, beta=0, soft_timeout=0.1)
        assert served == (b"good", True)
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        processes = [context.Process(target=_wait_for_stale, args=(redis_server.url, prefix, results)) for _ in range(3)]
        for process in processes:
            process.start()
        answers = [results.get(timeout=60) for _ in range(12)]
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0
        assert answers == [(b"good", True)] * 12
        gate.set()
        wait_until(lambda: client.get("k") == b"new", 10, message="the background computation stored its value")
        assert client.get("runs") == b"1", "one computation for thirteen callers in four processes"
        no_computation_left()
