"""rcache.Cache: pickled Python objects on both backends."""

import datetime
import decimal
import pickle
from collections import OrderedDict, namedtuple

import pytest

import rcache
from rcache import NO_EXPIRY, Cache
from conftest import wait_until

Point = namedtuple("Point", "x y")


class Custom:
    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Custom) and other.value == self.value


OBJECTS = [
    None,
    True,
    0,
    -1,
    2**100,
    1.5,
    "text ✓",
    "",
    b"\x00bytes\xff",
    b"",
    [1, "a", None],
    (1, (2, 3)),
    {"a": [1, 2], "b": {"c": b"d"}},
    {1, 2, 3},
    frozenset({"x"}),
    datetime.datetime(2024, 5, 6, 7, 8, 9),
    decimal.Decimal("1.10"),
    OrderedDict(a=1),
    Point(1, 2),
    Custom([1, {"nested": Custom(2)}]),
    list(range(10000)),
]


@pytest.fixture
def cache(client):
    return Cache(client=client)


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda obj: type(obj).__name__)
def test_round_trip(cache, obj):
    cache.set("k", obj)
    got = cache.get("k")
    assert got == obj
    assert type(got) is type(obj)


def test_stored_with_highest_protocol(cache):
    cache.set("k", {"a": 1})
    assert cache.client.get("k") == pickle.dumps({"a": 1}, pickle.HIGHEST_PROTOCOL)


def test_get_default_and_cached_none(cache):
    assert cache.get("missing") is None
    assert cache.get("missing", "fallback") == "fallback"
    cache.set("none", None)
    assert cache.get("none", "fallback") is None


def test_get_many_set_many(cache):
    cache.set_many({"a": 1, "b": [2]})
    cache.set_many([("c", None)], ttl=100)
    assert cache.get_many(["a", "x", "b", "c"]) == [1, None, [2], None]
    assert cache.get_many(["a", "x"], default=0) == [1, 0]
    assert cache.get_many([]) == []
    assert 99.0 < cache.ttl("c") <= 100.0


def test_ttl_delete_exists_expire(cache):
    cache.set("k", "v", ttl=0.2)
    wait_until(lambda: cache.get("k", "gone") == "gone", timeout=5, message="expiry")
    cache.set("k", "v", ttl=NO_EXPIRY)
    assert cache.ttl("k") == -1.0
    assert cache.expire("k", 100)
    assert cache.exists("k")
    assert cache.delete("k")
    assert not cache.exists("k")


def test_incr_is_readable_as_int(cache):
    assert cache.incr("n") == 1
    assert cache.incr("n", 41, ttl=100) == 42
    assert cache.get("n") == 42
    assert cache.get_many(["n"]) == [42]


def test_get_or_set(cache):
    calls = []

    def compute():
        calls.append(1)
        return {"computed": len(calls)}

    assert cache.get_or_set("k", compute) == {"computed": 1}
    assert cache.get_or_set("k", compute) == {"computed": 1}
    assert len(calls) == 1
    assert cache.get_or_set("none", lambda: None) is None
    assert cache.get_or_set("none", compute) is None  # a cached None is a hit
    assert len(calls) == 1
    cache.get_or_set("short", compute, ttl=100)
    assert 99.0 < cache.ttl("short") <= 100.0


def test_get_or_set_stores_nothing_when_fn_raises(cache):
    def fail():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        cache.get_or_set("k", fail)
    assert not cache.exists("k")


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage",
        b"N.",  # a valid protocol-0 pickle of None: not written by Cache
        b"",
        pickle.dumps({"a": list(range(100))}, pickle.HIGHEST_PROTOCOL)[:-10],  # truncated
        b"\x80\x05\xff.",  # protocol header, unknown opcode
        b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x05nomod\x94\x8c\x03cls\x94\x93\x94.",  # missing module
        b"12.5",
    ],
)
def test_corrupt_value(cache, raw):
    cache.client.set("bad", raw)
    with pytest.raises(rcache.CorruptValueError) as info:
        cache.get("bad")
    assert isinstance(info.value, rcache.RCacheError)
    assert "bad" in str(info.value)
    with pytest.raises(rcache.CorruptValueError):
        cache.get_many(["bad"])
    with pytest.raises(rcache.CorruptValueError):
        cache.get_or_set("bad", lambda: 1)
    cache.set("good", 1)
    assert cache.get("good") == 1


def test_unpicklable_object(cache):
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        cache.set("k", lambda: 1)
    assert not cache.exists("k")


def test_owns_its_client(url, prefix):
    with Cache(url, prefix=prefix, default_ttl=100) as cache:
        cache.set("k", "v")
        assert 99.0 < cache.ttl("k") <= 100.0
        assert "Cache" in repr(cache)
    assert cache.client.closed
    with pytest.raises(rcache.ClosedError):
        cache.get("k")


def test_wrapped_client_stays_open(client):
    with Cache(client=client) as cache:
        cache.set("k", 1)
    assert not client.closed
    assert client.get("k") == pickle.dumps(1, pickle.HIGHEST_PROTOCOL)


def test_bad_construction(client):
    with pytest.raises(TypeError):
        Cache("memory://", client=client)
    with pytest.raises(TypeError):
        Cache(client="not a client")
    with pytest.raises(TypeError):
        Cache(no_such_option=1)


def test_a_secret_key_signs_every_pickle_and_refuses_anything_else(client):
    signed = Cache(client=client, secret_key="s3cret")
    signed.set("k", {"a": 1})
    assert signed.get("k") == {"a": 1}
    assert client.get("k").startswith(b"\x00rcache-signed-v1\x00")
    signed.set_many({"m1": [1], "m2": (2,)})
    assert signed.get_many(["m1", "m2", "none"]) == [[1], (2,), None]
    assert signed.get_or_set("computed", lambda: "made") == "made"
    assert signed.get("computed") == "made"
    assert signed.incr("n", 3) == 3 and signed.get("n") == 3

    # An unsigned pickle (as anyone able to write to Redis could store) is never unpickled.
    client.set("k", pickle.dumps("planted", pickle.HIGHEST_PROTOCOL))
    with pytest.raises(rcache.CorruptValueError, match="not signed"):
        signed.get("k")
    # A signed value moved to another key, or signed with another secret_key.
    client.set("moved", client.get("m1"))
    with pytest.raises(rcache.CorruptValueError, match="another"):
        signed.get("moved")
    Cache(client=client, secret_key="other").set("k", "theirs")
    with pytest.raises(rcache.CorruptValueError, match="another"):
        signed.get("k")
    # A Cache without the key does not read signed values either.
    with pytest.raises(rcache.CorruptValueError):
        Cache(client=client).get("m1")


def test_the_signature_covers_the_client_prefix(url, prefix):
    with Cache(url, prefix=prefix + "a:", secret_key=b"k") as first, Cache(url, prefix=prefix + "b:", secret_key=b"k") as second:
        first.set("k", "v")
        second.client.set("k", first.client.get("k"))
        with pytest.raises(rcache.CorruptValueError):
            second.get("k")
