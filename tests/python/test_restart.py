"""Real faults: the Redis server dies and comes back on the same port."""

import time

import pytest

import rcache
from rcache import Client


def test_server_killed_and_restarted(private_redis, prefix):
    client = Client(private_redis.url, prefix=prefix, connect_timeout=0.5, response_timeout=0.5)
    try:
        client.set("k", b"v")
        assert client.get("k") == b"v"

        private_redis.kill()
        for call in (lambda: client.get("k"), lambda: client.set("k", b"x"), lambda: client.incr("n")):
            start = time.monotonic()
            with pytest.raises((rcache.ConnectionError, rcache.TimeoutError)) as info:
                call()
            assert time.monotonic() - start < 10  # bounded, never a hang
            assert info.value.message

        private_redis.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                assert client.get("k") is None  # no persistence: the data is gone
                break
            except (rcache.ConnectionError, rcache.TimeoutError):
                assert time.monotonic() < deadline, "client did not reconnect"
                time.sleep(0.05)
        client.set("k", b"again")
        assert client.get("k") == b"again"
    finally:
        client.close()


def test_graceful_restart_while_idle(private_redis, prefix):
    with Client(private_redis.url, prefix=prefix, connect_timeout=0.5, response_timeout=0.5) as client:
        client.set("k", b"v")
        private_redis.stop()
        private_redis.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                client.set("k", b"after")
                break
            except (rcache.ConnectionError, rcache.TimeoutError):
                assert time.monotonic() < deadline, "client did not reconnect"
                time.sleep(0.05)
        assert client.get("k") == b"after"


def test_connect_while_server_down_then_up(private_redis, prefix):
    private_redis.kill()
    with pytest.raises(rcache.ConnectionError):
        Client(private_redis.url, prefix=prefix, connect_timeout=0.5)
    private_redis.start()
    with Client(private_redis.url, prefix=prefix) as client:
        client.set("k", b"v")
        assert client.get("k") == b"v"
