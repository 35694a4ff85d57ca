"""Behaviour of rcache.Client on both backends (memory:// and a private Redis)."""

import datetime

import pytest

import rcache
from rcache import NO_EXPIRY, Client
from conftest import wait_until


def test_set_get_and_miss(client):
    assert client.get("missing") is None
    client.set("k", b"value")
    assert client.get("k") == b"value"
    client.set("k", b"replaced")
    assert client.get("k") == b"replaced"


def test_str_key_is_its_utf8_bytes(client):
    client.set("clé-ключ-🔑", b"v")
    assert client.get("clé-ключ-🔑".encode("utf-8")) == b"v"


@pytest.mark.parametrize(
    "key, value",
    [
        (b"\x00", b"\x00"),
        (b"a\x00b", b"x\x00\x00y"),
        (bytes(range(256)), bytes(range(256)) * 4),
        (b"\xff\xfe\x80", b"\xc3\x28\xa0\xa1"),  # not UTF-8
        (b" spaces and\r\nnewlines ", b"*1\r\n$4\r\nPING\r\n"),
    ],
)
def test_binary_safe_keys_and_values(client, key, value):
    client.set(key, value)
    assert client.get(key) == value
    assert client.get_many([key]) == [value]
    assert client.exists(key)


def test_bytes_like_keys_and_values(client):
    client.set(bytearray(b"ba"), bytearray(b"one"))
    client.set(memoryview(b"mv"), memoryview(b"two"))
    assert client.get(b"ba") == b"one"
    assert client.get(bytearray(b"mv")) == b"two"
    assert type(client.get(b"ba")) is bytes


def test_empty_value_is_not_a_miss(client):
    client.set("empty", b"")
    assert client.get("empty") == b""
    assert client.exists("empty")
    assert client.get_many(["empty", "missing"]) == [b"", None]


def test_large_value(client):
    value = bytes(range(256)) * 8192  # 2 MiB
    client.set("large", value)
    assert client.get("large") == value


def test_short_ttl_expires(client):
    client.set("short", b"v", ttl=0.3)
    remaining = client.ttl("short")
    # Still there with at most its TTL left, unless it already expired.
    assert remaining is None or 0 < remaining <= 0.3
    wait_until(lambda: client.get("short") is None, timeout=5, message="expiry")
    assert not client.exists("short")
    assert client.ttl("short") is None


def test_sub_millisecond_ttl_rounds_up(client):
    client.set("tiny", b"v", ttl=0.0004)  # 1 ms, not 0 (which would mean "default")
    wait_until(lambda: client.get("tiny") is None, timeout=5, message="expiry")


def test_no_expiry(client):
    client.set("forever", b"v", ttl=NO_EXPIRY)
    assert client.ttl("forever") == -1.0
    client.set("plain", b"v")  # no default_ttl configured: no expiry either
    assert client.ttl("plain") == -1.0


def test_ttl_types(client):
    client.set("int", b"v", ttl=100)
    client.set("float", b"v", ttl=99.5)
    client.set("td", b"v", ttl=datetime.timedelta(minutes=2))
    assert 99.0 < client.ttl("int") <= 100.0
    assert 98.5 < client.ttl("float") <= 99.5
    assert 119.0 < client.ttl("td") <= 120.0


def test_default_ttl_option(make_client):
    client = make_client(default_ttl=50)
    client.set("default", b"v")
    assert 49.0 < client.ttl("default") <= 50.0
    client.set("explicit", b"v", ttl=200)
    assert 199.0 < client.ttl("explicit") <= 200.0
    client.set("forever", b"v", ttl=NO_EXPIRY)
    assert client.ttl("forever") == -1.0
    client.set_many({"m": b"v"})
    assert 49.0 < client.ttl("m") <= 50.0
    assert client.incr("counter") == 1
    assert 49.0 < client.ttl("counter") <= 50.0


def test_default_ttl_expires(make_client):
    client = make_client(default_ttl=0.2)
    client.set("k", b"v")
    wait_until(lambda: client.get("k") is None, timeout=5, message="expiry")


def test_default_ttl_no_expiry(make_client):
    client = make_client(default_ttl=NO_EXPIRY)
    client.set("k", b"v")
    assert client.ttl("k") == -1.0


def test_ttl_and_expire(client):
    assert client.ttl("missing") is None
    assert client.expire("missing", 10) is False
    client.set("k", b"v", ttl=NO_EXPIRY)
    assert client.expire("k", 50) is True
    assert 49.0 < client.ttl("k") <= 50.0
    assert client.expire("k", NO_EXPIRY) is True
    assert client.ttl("k") == -1.0
    assert client.expire("k", 0.2) is True
    wait_until(lambda: not client.exists("k"), timeout=5, message="expiry")
    assert client.expire("k", 10) is False


def test_delete_and_exists(client):
    assert client.exists("k") is False
    assert client.delete("k") is False
    client.set("k", b"v")
    assert client.exists("k") is True
    assert client.delete("k") is True
    assert client.exists("k") is False
    assert client.get("k") is None
    assert client.delete("k") is False


def test_get_many_order_and_misses(client):
    client.set("a", b"A")
    client.set("c", b"C")
    assert client.get_many(["c", "b", "a", "c"]) == [b"C", None, b"A", b"C"]
    assert client.get_many(key for key in ["a"]) == [b"A"]
    assert client.get_many([]) == []
    assert client.get_many(["x", "y"]) == [None, None]


def test_set_many(client):
    client.set_many({"a": b"1", b"b": b"2", "e": b""})
    client.set_many([("c", b"3"), (b"d", bytearray(b"4"))], ttl=100)
    assert client.get_many(["a", "b", "c", "d", "e"]) == [b"1", b"2", b"3", b"4", b""]
    assert client.ttl("a") == -1.0
    assert 99.0 < client.ttl("d") <= 100.0
    client.set_many({})
    client.set_many([])
    client.set_many({"s1": b"x", "s2": b"y"}, ttl=0.2)
    wait_until(lambda: client.get_many(["s1", "s2"]) == [None, None], timeout=5, message="expiry")


def test_incr(client):
    assert client.incr("n") == 1
    assert client.incr("n", 5) == 6
    assert client.incr("n", -10) == -4
    assert client.get("n") == b"-4"
    client.set("text", b"41")
    assert client.incr("text") == 42
    assert client.incr("big", 2**62) == 2**62


def test_incr_creates_with_ttl_and_keeps_existing_ttl(client):
    assert client.incr("c", ttl=100) == 1
    assert 99.0 < client.ttl("c") <= 100.0
    assert client.incr("c", ttl=5) == 2  # existing counter keeps its TTL
    assert client.ttl("c") > 90.0
    assert client.incr("forever", ttl=NO_EXPIRY) == 1
    assert client.incr("forever", ttl=100) == 2
    assert client.ttl("forever") == -1.0


def test_incr_wrong_type(client):
    client.set("text", b"abc")
    with pytest.raises(rcache.WrongTypeError) as info:
        client.incr("text")
    assert info.value.message
    assert info.value.status == "RCACHE_STATUS_WRONG_TYPE"
    assert isinstance(info.value, TypeError)
    client.set("float", b"1.5")
    with pytest.raises(rcache.WrongTypeError):
        client.incr("float", ttl=10)
    assert client.get("text") == b"abc"
    assert client.incr("ok") == 1


def test_incr_overflow(client):
    client.set("max", str(2**63 - 1).encode())
    with pytest.raises(rcache.InvalidArgumentError) as info:
        client.incr("max")
    assert info.value.message
    assert client.get("max") == str(2**63 - 1).encode()


def test_prefix_isolation_on_redis(redis_server, prefix):
    with Client(redis_server.url, prefix=prefix + "a:") as a, Client(
        redis_server.url, prefix=(prefix + "b:").encode()
    ) as b, Client(redis_server.url) as bare:
        a.set("k", b"from a")
        b.set("k", b"from b")
        assert a.get("k") == b"from a"
        assert b.get("k") == b"from b"
        a.set("only-a", b"x")
        assert b.get("only-a") is None
        assert b.get_many(["k", "only-a"]) == [b"from b", None]
        assert not b.exists("only-a")
        assert b.delete("only-a") is False
        assert a.get("only-a") == b"x"
        # The prefix is literally prepended to the Redis key.
        assert bare.get(prefix + "a:k") == b"from a"
        assert redis_server.command("GET", prefix + "b:k") == b"from b"


def test_memory_clients_are_separate_stores():
    with Client() as one, Client("memory://") as two:
        one.set("k", b"1")
        assert two.get("k") is None


def test_memory_eviction_bounds():
    with Client(memory_max_entries=10) as client:
        for i in range(100):
            client.set(f"k{i}", b"v")
        assert sum(client.exists(f"k{i}") for i in range(100)) <= 10
        assert client.get("k99") == b"v"  # the most recent survives


def test_context_manager_and_close(url, prefix):
    with Client(url, prefix=prefix) as client:
        client.set("k", b"v")
        assert not client.closed
    assert client.closed
    client.close()  # idempotent
    assert "closed" in repr(client)
    for call in (
        lambda: client.get("k"),
        lambda: client.set("k", b"v"),
        lambda: client.delete("k"),
        lambda: client.exists("k"),
        lambda: client.ttl("k"),
        lambda: client.expire("k", 1),
        lambda: client.get_many(["k"]),
        lambda: client.get_many([]),
        lambda: client.set_many({"k": b"v"}),
        lambda: client.incr("k"),
    ):
        with pytest.raises(rcache.ClosedError) as info:
            call()
        assert isinstance(info.value, rcache.InvalidArgumentError)
        assert "closed" in str(info.value)


def test_repr_hides_password():
    with pytest.raises(rcache.RCacheError):
        Client("redis://user:secret@127.0.0.1:1/0", connect_timeout=0.2)
    assert "secret" not in rcache._convert._redact("redis://user:secret@host:1/0")


def test_version():
    assert rcache.__version__ == "0.1.0"
    assert rcache.ABI_VERSION == 2
