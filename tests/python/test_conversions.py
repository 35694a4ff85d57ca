"""Python-side conversions: seconds to milliseconds, and what the GIL does."""

import datetime
import fractions
import gc
import pickle
import socket
import threading

import pytest

import rcache
from conftest import wait_until
from rcache._convert import _seconds_to_ms, _ttl_ms


@pytest.mark.parametrize(
    "seconds, millis",
    [
        (1, 1000),
        (0.0004, 1),  # rounds up: never 0, which would mean "default"
        (1e-12, 1),
        (0.001, 1),
        (0.007, 7),  # 0.007 * 1000 is 7.000000000000001 in floats
        (1.0005, 1001),
        (2.5, 2500),
        (datetime.timedelta(microseconds=1), 1),
        (datetime.timedelta(hours=1), 3_600_000),
        (fractions.Fraction(1, 3), 334),
        (10**30, 2**63 - 1),  # clamped; the library refuses it as over 100 years
        (float("inf"), 2**63 - 1),
    ],
)
def test_seconds_to_ms(seconds, millis):
    assert _seconds_to_ms(seconds, "ttl") == millis


def test_ttl_conventions():
    assert _ttl_ms(None) == 0
    assert _ttl_ms(rcache.NO_EXPIRY) == -1
    assert repr(rcache.NO_EXPIRY) == "rcache.NO_EXPIRY"
    assert pickle.loads(pickle.dumps(rcache.NO_EXPIRY)) is rcache.NO_EXPIRY


def test_client_is_not_picklable(client):
    with pytest.raises(TypeError):
        pickle.dumps(client)


def test_gil_is_released_during_calls():
    # Connecting to a server that never answers blocks in C for the connect
    # timeout; other Python threads must run meanwhile.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        done = threading.Event()

        def blocked():
            try:
                rcache.Client(url, connect_timeout=0.5, response_timeout=0.5)
            except rcache.RCacheError:
                pass
            finally:
                done.set()

        thread = threading.Thread(target=blocked)
        thread.start()
        spins = 0
        while not done.is_set():
            spins += 1
        thread.join(30)
        assert spins > 1000


def redis_connections(server):
    return len(server.command("CLIENT", "LIST").splitlines())


def test_dropped_clients_are_freed(redis_server):
    before = redis_connections(redis_server)
    clients = [rcache.Client(redis_server.url) for _ in range(5)]
    for client in clients:
        client.exists("x")
    assert redis_connections(redis_server) == before + 5
    del clients, client
    gc.collect()
    wait_until(lambda: redis_connections(redis_server) == before, timeout=5, message="connections closed")
