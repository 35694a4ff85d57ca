"""Bad input raises the documented exception, with a message, and the client keeps working."""

import math
import socket
import time

import pytest

import rcache
from rcache import Client
from conftest import free_port


def still_works(client):
    client.set("after", b"ok")
    assert client.get("after") == b"ok"


def check_error(info, cls):
    assert isinstance(info.value, cls)
    assert str(info.value)
    if isinstance(info.value, rcache.RCacheError):
        assert info.value.message


KEY_CALLS = {
    "get": lambda c, k: c.get(k),
    "set": lambda c, k: c.set(k, b"v"),
    "delete": lambda c, k: c.delete(k),
    "exists": lambda c, k: c.exists(k),
    "ttl": lambda c, k: c.ttl(k),
    "expire": lambda c, k: c.expire(k, 10),
    "incr": lambda c, k: c.incr(k),
    "get_many": lambda c, k: c.get_many(["fine", k]),
    "set_many": lambda c, k: c.set_many([("fine", b"v"), (k, b"v")]),
}


@pytest.mark.parametrize("call", KEY_CALLS.values(), ids=KEY_CALLS.keys())
@pytest.mark.parametrize("key", [None, 42, 1.5, ["list"]], ids=["None", "int", "float", "list"])
def test_key_of_wrong_type(client, call, key):
    with pytest.raises(TypeError) as info:
        call(client, key)
    check_error(info, TypeError)
    still_works(client)


@pytest.mark.parametrize("call", KEY_CALLS.values(), ids=KEY_CALLS.keys())
@pytest.mark.parametrize("key", ["", b""], ids=["str", "bytes"])
def test_empty_key(client, call, key):
    with pytest.raises(rcache.InvalidArgumentError) as info:
        call(client, key)
    check_error(info, ValueError)
    assert info.value.status == "RCACHE_STATUS_INVALID_ARGUMENT"
    assert "empty" in info.value.message
    still_works(client)


def test_set_many_is_all_or_nothing(client):
    with pytest.raises(rcache.InvalidArgumentError):
        client.set_many([("first", b"v"), ("", b"v")])
    assert client.get("first") is None


def test_unencodable_str_key(client):
    with pytest.raises(rcache.InvalidArgumentError) as info:
        client.get("\ud800")
    check_error(info, ValueError)
    still_works(client)


def test_key_over_limit(make_client):
    client = make_client(max_key_bytes=8)
    client.set("12345678", b"v")  # at the limit: fine (the prefix does not count)
    for call in KEY_CALLS.values():
        with pytest.raises(rcache.TooLargeError) as info:
            call(client, "123456789")
        check_error(info, ValueError)
        assert info.value.status == "RCACHE_STATUS_TOO_LARGE"
    still_works(client)


def test_value_over_limit(make_client):
    client = make_client(max_value_bytes=16)
    client.set("k", b"x" * 16)
    with pytest.raises(rcache.TooLargeError) as info:
        client.set("k", b"x" * 17)
    check_error(info, ValueError)
    assert client.get("k") == b"x" * 16
    with pytest.raises(rcache.TooLargeError):
        client.set_many([("a", b"small"), ("b", b"x" * 17)])
    assert client.get_many(["a", "b"]) == [None, None]
    still_works(client)


def test_entry_over_memory_bound():
    # Few entries: one shard, so the byte bound applies as configured.
    with Client(memory_max_entries=100, memory_max_bytes=1024) as client:
        client.set("fits", b"x" * 800)
        with pytest.raises(rcache.TooLargeError) as info:
            client.set("k", b"x" * 2048)
        check_error(info, ValueError)
        still_works(client)


def test_memory_default_accepts_values_up_to_max_value_bytes():
    with Client() as client:
        client.set("k", b"x" * (20 * 1024 * 1024))
        assert len(client.get("k")) == 20 * 1024 * 1024


TTL_CALLS = {
    "set": lambda c, ttl: c.set("k", b"v", ttl=ttl),
    "set_many": lambda c, ttl: c.set_many({"k": b"v"}, ttl=ttl),
    "expire": lambda c, ttl: c.expire("k", ttl),
    "incr": lambda c, ttl: c.incr("n", ttl=ttl),
}


@pytest.mark.parametrize("call", TTL_CALLS.values(), ids=TTL_CALLS.keys())
@pytest.mark.parametrize("ttl", [-1, -0.5, 0, 0.0, math.nan, math.inf, -math.inf, 10**12, 1e300])
def test_invalid_ttl(client, call, ttl):
    client.set("k", b"v")
    with pytest.raises(rcache.InvalidArgumentError) as info:
        call(client, ttl)
    check_error(info, ValueError)
    still_works(client)
    assert client.ttl("k") == -1.0  # unchanged


@pytest.mark.parametrize("call", TTL_CALLS.values(), ids=TTL_CALLS.keys())
@pytest.mark.parametrize("ttl", [True, False, "10", b"10", [10]])
def test_ttl_of_wrong_type(client, call, ttl):
    with pytest.raises(TypeError) as info:
        call(client, ttl)
    check_error(info, TypeError)
    still_works(client)


@pytest.mark.parametrize("value", ["text", 42, None, 1.5, ["list"], {"a": 1}])
def test_value_of_wrong_type(client, value):
    with pytest.raises(TypeError) as info:
        client.set("k", value)
    check_error(info, TypeError)
    with pytest.raises(TypeError):
        client.set_many({"k": value})
    assert client.get("k") is None
    still_works(client)


@pytest.mark.parametrize("delta", [1.0, "1", None, True])
def test_incr_delta_of_wrong_type(client, delta):
    with pytest.raises(TypeError):
        client.incr("n", delta)
    still_works(client)


@pytest.mark.parametrize("delta", [2**63, -(2**63) - 1, 2**100])
def test_incr_delta_out_of_range(client, delta):
    with pytest.raises(rcache.InvalidArgumentError):
        client.incr("n", delta)
    assert client.get("n") is None
    still_works(client)


def test_get_many_rejects_a_single_key(client):
    with pytest.raises(TypeError):
        client.get_many("abc")
    with pytest.raises(TypeError):
        client.get_many(b"abc")
    with pytest.raises(TypeError):
        client.get_many(None)


def test_set_many_rejects_bad_items(client):
    with pytest.raises((TypeError, ValueError)):
        client.set_many([("only-key",)])
    with pytest.raises(TypeError):
        client.set_many(42)
    still_works(client)


@pytest.mark.parametrize(
    "url, cls",
    [
        ("nonsense", rcache.InvalidArgumentError),
        ("redis://", rcache.InvalidArgumentError),
        ("redis://host:99999", rcache.InvalidArgumentError),
        ("ftp://x", rcache.InvalidArgumentError),
        ("memory://somewhere", rcache.InvalidArgumentError),
        ("redis+sentinel://host", rcache.InvalidArgumentError),  # no service name
        ("redis+cluster://host/5", rcache.InvalidArgumentError),  # a Cluster has db 0 only
        ("redis+sentinel://127.0.0.1:1/mymaster", rcache.ConnectionError),  # no sentinel listening
        ("redis+cluster://127.0.0.1:1", rcache.ConnectionError),  # no node listening
        ("memory://\0", rcache.InvalidArgumentError),
    ],
)
def test_bad_url(url, cls):
    with pytest.raises(cls) as info:
        Client(url)
    check_error(info, cls)


def test_url_of_wrong_type():
    with pytest.raises(TypeError):
        Client(42)


@pytest.mark.parametrize(
    "options",
    [
        {"connect_timeout": 0},
        {"connect_timeout": -1},
        {"response_timeout": math.nan},
        {"response_timeout": 5_000_000},  # more than 2**32 - 1 ms
        {"default_ttl": -5},
        {"default_ttl": 10**12},
        {"max_key_bytes": 0},
        {"max_value_bytes": -1},
        {"max_value_bytes": 2**30},  # over the library's 512 MiB ceiling
        {"memory_max_entries": 0},
        {"memory_max_bytes": 2**64},
        {"prefix": "a\0b"},
    ],
)
def test_bad_options(options):
    with pytest.raises(rcache.InvalidArgumentError) as info:
        Client(**options)
    check_error(info, ValueError)


@pytest.mark.parametrize(
    "options",
    [{"connect_timeout": True}, {"max_key_bytes": 1.5}, {"max_key_bytes": True}, {"prefix": 5}, {"default_ttl": "1"}],
)
def test_options_of_wrong_type(options):
    with pytest.raises(TypeError):
        Client(**options)


def test_unreachable_server():
    port = free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(rcache.ConnectionError) as info:
        Client(f"redis://127.0.0.1:{port}/0", connect_timeout=0.5)
    assert time.monotonic() - start < 10
    check_error(info, ConnectionError)  # also the builtin
    assert info.value.status == "RCACHE_STATUS_CONNECTION"
    assert str(port) in info.value.message


def test_silent_server_times_out():
    # Accepts TCP connections (the kernel does, from the backlog) but never answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        start = time.monotonic()
        with pytest.raises((rcache.TimeoutError, rcache.ConnectionError)) as info:
            Client(f"redis://127.0.0.1:{port}/0", connect_timeout=0.3, response_timeout=0.3)
        assert time.monotonic() - start < 10
        check_error(info, OSError)


def test_wrong_type_stored_in_redis(redis_server, prefix):
    redis_server.command("HSET", prefix + "hash", "field", "value")
    with Client(redis_server.url, prefix=prefix) as client:
        with pytest.raises(rcache.WrongTypeError) as info:
            client.get("hash")
        check_error(info, TypeError)
        assert "WRONGTYPE" in info.value.message
        with pytest.raises(rcache.WrongTypeError):
            client.incr("hash")
        with pytest.raises(rcache.WrongTypeError):
            client.incr("hash", ttl=10)
        assert client.exists("hash")
        assert client.ttl("hash") == -1.0
        still_works(client)
        client.set("hash", b"now a string")  # SET replaces any type
        assert client.get("hash") == b"now a string"
