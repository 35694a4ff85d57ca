"""Near-cache hits from Python without leaving the interpreter lock: get()
answers a held value through rcache_client_near_get (a ctypes.PyDLL call,
which cannot block) and reads anything else the usual way. These tests check
that the fast path serves exactly what the usual path would (other clients'
writes are seen, values never go back), from many threads sharing one
Client; and that get_many through the near cache fetches only the keys it
does not hold, in one round trip.
"""

import threading
import time

import pytest

import rcache
import rcache.client as client_module
from conftest import wait_until

DELIVERY = 2.0


def held(client, key):
    """What the fast path alone answers for key (bytes): the value, or None when not held."""
    return client_module._held(client._handle, key)


def until_held(client, key, value):
    """Reads key until the near cache holds value."""
    wait_until(lambda: client.get(key) == value and held(client, key) == value, DELIVERY, message=f"{key!r} held")


class CountingGet:
    """Stands in for rcache_client_get, counting the calls that reach it."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args):
        self.calls += 1
        return self.function(*args)


def test_a_held_value_is_answered_without_the_usual_call(near_client, other_client, monkeypatch):
    other_client.set("k", b"v")
    until_held(near_client, b"k", b"v")
    counting = CountingGet(client_module._get)
    monkeypatch.setattr(client_module, "_get", counting)
    before = near_client.stats()
    for key in (b"k", "k", bytearray(b"k"), memoryview(b"k")):
        assert near_client.get(key) == b"v"
    after = near_client.stats()
    assert counting.calls == 0
    assert after["near_hits"] == before["near_hits"] + 4
    assert after["near_misses"] == before["near_misses"]
    assert near_client.get("absent") is None
    assert counting.calls == 1, "a key not held is read the usual way"
    assert near_client.stats()["near_misses"] == after["near_misses"] + 1, "and its miss is counted once"


def test_without_a_near_cache_get_never_tries_the_fast_path(other_client, monkeypatch):
    def refuse(*args):
        raise AssertionError("rcache_client_near_get called without a near cache")

    monkeypatch.setattr(client_module, "_near_get", refuse)
    other_client.set("k", b"v")
    assert other_client.get("k") == b"v"
    with rcache.Client("memory://") as memory:
        memory.set("k", b"v")
        assert memory.get("k") == b"v"


def test_bad_keys_raise_as_on_the_usual_path(near_client):
    with pytest.raises(rcache.InvalidArgumentError):
        near_client.get("")
    with pytest.raises(rcache.InvalidArgumentError, match="reserved"):
        near_client.get("__rcache_tag:x")
    with pytest.raises(TypeError):
        near_client.get(None)
    near_client.close()
    with pytest.raises(rcache.ClosedError):
        near_client.get("k")


def test_a_value_longer_than_the_fast_buffer_is_read_whole_and_counted_once(near_client, other_client):
    value = bytes(range(256)) * (client_module._HELD_BYTES // 256 + 1)
    other_client.set("big", value)
    wait_until(lambda: near_client.get("big") == value and near_client.get("big") == value
               and near_client.stats()["near_entries"] >= 1, DELIVERY, message="the big value held")
    before = near_client.stats()["near_hits"]
    assert near_client.get("big") == value
    assert near_client.stats()["near_hits"] == before + 1


def test_the_fast_path_follows_another_clients_writes(near_client, other_client):
    """Every value the fast path gives was current at some point after the
    previous one: never an older value, and each write is seen once reported."""
    for version in range(30):
        current = b"v%d" % version
        previous = b"v%d" % (version - 1)
        other_client.set("k", current)
        seen = set()

        def reads_current():
            answer = held(near_client, b"k")
            seen.add(answer)
            return near_client.get("k") == current and held(near_client, b"k") == current

        wait_until(reads_current, DELIVERY, interval=0.001, message=f"{current!r} held")
        assert seen <= {previous, current, None}, seen


def test_threads_sharing_one_client_see_their_own_values_and_other_clients_writes(near_client, other_client):
    """8 threads read their own keys through the fast path (slots are never
    shared between two calls) while another Client rewrites one key; each
    thread's reads of it never go back, and all see the last write."""
    threads_count, versions = 8, 40
    for thread in range(threads_count):
        other_client.set_many({f"own:{thread}:{index}": b"%d:%d" % (thread, index) for index in range(20)})
    other_client.set("shared", b"0")
    until_held(near_client, b"shared", b"0")
    done = threading.Event()
    failures = []

    def reader(thread):
        last = 0
        deadline = time.monotonic() + 60
        try:
            while not done.is_set() or last < versions:
                assert time.monotonic() < deadline, f"the last write never reached this thread: {last}"
                for index in range(20):
                    assert near_client.get(f"own:{thread}:{index}") == b"%d:%d" % (thread, index)
                value = int(near_client.get("shared"))
                assert value >= last, f"went back from {last} to {value}"
                last = value
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    readers = [threading.Thread(target=reader, args=(thread,), daemon=True) for thread in range(threads_count)]
    for thread in readers:
        thread.start()
    for version in range(1, versions + 1):
        other_client.set("shared", b"%d" % version)
    done.set()
    for thread in readers:
        thread.join(90)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in readers)
    assert near_client.stats()["near_hits"] > 0


def test_asks_near_cache_reads_the_query():
    asks = client_module._asks_near_cache
    assert asks("redis://h:1/0?near_cache=10")
    assert asks("redis://h:1/0?near_cache_bytes=100&near_cache=1#insecure")
    assert not asks("redis://h:1/0?near_cache=0")
    assert not asks("redis://h:1/0?near_cache_bytes=10")
    assert not asks("redis://h:1/0")
    assert not asks(None)


def reads_since_reset(server):
    """Calls per command since CONFIG RESETSTAT, other than the ones the test
    and the tracking connection's heartbeat send themselves."""
    text = server.command("INFO", "commandstats").decode()
    calls = {}
    for line in text.splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line[len("cmdstat_"):].partition(":")
            calls[name] = int(dict(field.split("=") for field in fields.split(","))["calls"])
    return {name: count for name, count in calls.items() if name not in ("ping", "info", "config|resetstat")}


def test_get_many_fetches_only_the_keys_not_held_in_one_round_trip(private_redis, prefix):
    with rcache.Client(private_redis.url, prefix=prefix) as writer, \
            rcache.Client(f"{private_redis.url}?near_cache=1000", prefix=prefix) as near:
        keys = [f"many:{index}" for index in range(10)]
        writer.set_many({key: key.encode() for key in keys})
        assert near.get_many(["warm-up"]) == [None]
        for key in keys[:5]:
            until_held(near, key.encode(), key.encode())
        before = near.stats()
        private_redis.command("CONFIG", "RESETSTAT")
        assert near.get_many(keys) == [key.encode() for key in keys]
        commands = reads_since_reset(private_redis)
        after = near.stats()
        # INFO commandstats also counts the commands a script runs: one
        # script call (the round trip), reading each of the 5 keys not held.
        scripts = sum(count for name, count in commands.items() if name.startswith(("eval", "fcall")))
        assert scripts == 1, f"one round trip, got {commands}"
        assert commands.get("get") == 5 and "mget" not in commands, f"only the keys not held, got {commands}"
        assert after["near_hits"] - before["near_hits"] == 5
        assert after["near_misses"] - before["near_misses"] == 5

        # The 5 keys fetched were filled: the next get_many sends nothing.
        wait_until(lambda: all(held(near, key.encode()) == key.encode() for key in keys), DELIVERY,
                   message="every key held")
        private_redis.command("CONFIG", "RESETSTAT")
        assert near.get_many(keys) == [key.encode() for key in keys]
        assert reads_since_reset(private_redis) == {}
