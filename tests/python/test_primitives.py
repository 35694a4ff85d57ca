"""get_with_ttl, compare_and_set, KEEP_TTL, hash records, keys, locks and
server_info on both backends (memory:// and a private Redis)."""

import pickle
import threading
import time

import pytest

import rcache
from rcache import KEEP_TTL, NO_EXPIRY
from rcache._convert import _parse_info
from conftest import wait_until


# --- get_with_ttl ------------------------------------------------------------------


def test_get_with_ttl_gives_value_and_seconds_left(client):
    assert client.get_with_ttl("missing") is None
    client.set("k", b"v", ttl=100)
    value, ttl = client.get_with_ttl("k")
    assert value == b"v"
    assert 95 < ttl <= 100 and isinstance(ttl, float)
    client.set("forever", b"", ttl=NO_EXPIRY)
    assert client.get_with_ttl("forever") == (b"", -1.0)
    client.set("tagged", b"t", ttl=60, tags=["tag"])
    client.invalidate_tags(["tag"])
    assert client.get_with_ttl("tagged") is None
    stats = client.stats()
    assert (stats["hits"], stats["misses"]) == (2, 2), "counted like get()"


def test_get_with_ttl_of_an_expiring_key(client):
    client.set("short", b"v", ttl=0.2)
    wait_until(lambda: client.get_with_ttl("short") is None, timeout=5, message="expiry")


# --- KEEP_TTL ----------------------------------------------------------------------


def test_keep_ttl_is_a_named_singleton():
    assert repr(KEEP_TTL) == "rcache.KEEP_TTL"
    assert pickle.loads(pickle.dumps(KEEP_TTL)) is KEEP_TTL
    assert pickle.loads(pickle.dumps(NO_EXPIRY)) is NO_EXPIRY
    assert KEEP_TTL is not NO_EXPIRY
    assert "KEEP_TTL" in rcache.__all__


def test_set_with_keep_ttl(client):
    client.set("k", b"one", ttl=100)
    client.set("k", b"two", ttl=KEEP_TTL)
    value, ttl = client.get_with_ttl("k")
    assert value == b"two" and 90 < ttl <= 100
    client.set("new", b"v", ttl=KEEP_TTL)
    assert client.ttl("new") == -1.0, "a new key gets no expiry"


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.expire("k", KEEP_TTL),
        lambda client: client.incr("n", ttl=KEEP_TTL),
        lambda client: client.set_many({"m": b"v"}, ttl=KEEP_TTL),
        lambda client: client.set("t", b"v", ttl=KEEP_TTL, tags=["tag"]),
        lambda client: client.get_or_set("c", lambda: b"v", ttl=KEEP_TTL),
        lambda client: rcache.SessionStore(client).create({"a": b"1"}, ttl=KEEP_TTL),
    ],
    ids=["expire", "incr", "set_many", "set_tagged", "get_or_set", "session_create"],
)
def test_keep_ttl_is_refused_where_there_is_no_value_to_replace(client, call):
    client.set("k", b"v", ttl=100)
    with pytest.raises(rcache.InvalidArgumentError):
        call(client)
    for key in ["n", "m", "t", "c"]:
        assert not client.exists(key)
    assert 90 < client.ttl("k") <= 100


def test_keep_ttl_is_no_default_ttl(make_client):
    with pytest.raises(rcache.InvalidArgumentError):
        make_client(default_ttl=KEEP_TTL)


# --- compare_and_set ---------------------------------------------------------------


def test_compare_and_set(client):
    assert client.compare_and_set("k", b"", b"v") is False
    assert not client.exists("k")
    client.set("k", b"a", ttl=100)
    assert client.compare_and_set("k", b"b", b"c") is False
    assert client.get("k") == b"a"
    assert client.compare_and_set("k", bytearray(b"a"), memoryview(b"b"), ttl=KEEP_TTL) is True
    value, ttl = client.get_with_ttl("k")
    assert value == b"b" and 90 < ttl <= 100
    assert client.compare_and_set("k", b"b", b"c", ttl=NO_EXPIRY) is True
    assert client.get_with_ttl("k") == (b"c", -1.0)
    assert client.compare_and_set("k", b"c", b"d", ttl=5) is True
    assert 0 < client.ttl("k") <= 5


def test_compare_and_set_has_one_winner(client):
    client.set("race", b"start", ttl=60)
    results = []

    def attempt(index):
        results.append(client.compare_and_set("race", b"start", b"thread %d" % index))

    threads = [threading.Thread(target=attempt, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1


def test_compare_and_set_arguments(client):
    with pytest.raises(TypeError):
        client.compare_and_set("k", "text", b"v")
    with pytest.raises(TypeError):
        client.compare_and_set("k", b"v", None)
    with pytest.raises(rcache.InvalidArgumentError):
        client.compare_and_set("", b"a", b"b")


# --- hash records ------------------------------------------------------------------


def test_hash_set_and_get(client):
    assert client.hash_get("h") is None
    assert client.hash_set("h", {"name": "Ada", b"age": 36, "score": 2.5, "raw": b"\x00\xff"}, ttl=100) is True
    assert client.hash_get("h") == {b"name": b"Ada", b"age": b"36", b"score": b"2.5", b"raw": b"\x00\xff"}
    assert client.hash_set("h", [("age", 37), ("city", "Zürich")], ttl=KEEP_TTL) is True
    record = client.hash_get("h")
    assert record[b"age"] == b"37" and record[b"city"] == "Zürich".encode("utf-8") and record[b"name"] == b"Ada"
    assert 90 < client.ttl("h") <= 100, "KEEP_TTL left the expiry alone"
    assert client.hash_set("h", {"x": bytearray(b"1")}, ttl=NO_EXPIRY)
    assert client.ttl("h") == -1.0
    assert client.exists("h")
    assert "h" in [key.decode() for key in client.keys()]
    assert client.delete("h")
    assert client.hash_get("h") is None


def test_hash_set_conditions(client):
    assert client.hash_set("h", {"a": 1}, condition="if_exists") is False
    assert not client.exists("h")
    assert client.hash_set("h", {"a": 1}, condition="if_absent") is True
    assert client.hash_set("h", {"a": 2}, condition="if_absent") is False
    assert client.hash_set("h", {"b": 2}, condition="if_exists") is True
    assert client.hash_get("h") == {b"a": b"1", b"b": b"2"}
    client.set("s", b"text")
    assert client.hash_set("s", {"a": 1}, condition="if_absent") is False
    with pytest.raises(rcache.WrongTypeError):
        client.hash_set("s", {"a": 1})
    assert client.get("s") == b"text"


def test_records_and_values_are_different_types(client):
    client.hash_set("h", {"f": "v"})
    client.set("s", b"v")
    with pytest.raises(rcache.WrongTypeError):
        client.get("h")
    with pytest.raises(rcache.WrongTypeError):
        client.get_with_ttl("h")
    with pytest.raises(rcache.WrongTypeError):
        client.incr("h")
    with pytest.raises(rcache.WrongTypeError):
        client.compare_and_set("h", b"v", b"w")
    with pytest.raises(rcache.WrongTypeError):
        client.hash_get("s")
    assert client.get_many(["h", "s"]) == [None, b"v"]


@pytest.mark.parametrize(
    "mapping, error",
    [
        ({}, rcache.InvalidArgumentError),
        ({"f": True}, TypeError),
        ({"f": None}, TypeError),
        ({"f": object()}, TypeError),
        ({None: b"v"}, TypeError),
        ({"f": "\udcff"}, rcache.InvalidArgumentError),
        ([("f",)], ValueError),
    ],
    ids=["empty", "bool", "None", "object", "None-name", "unencodable", "not-a-pair"],
)
def test_hash_set_refuses_bad_fields(client, mapping, error):
    with pytest.raises(error):
        client.hash_set("h", mapping)
    assert not client.exists("h")


def test_hash_set_refuses_bad_conditions(client):
    with pytest.raises(rcache.InvalidArgumentError):
        client.hash_set("h", {"f": 1}, condition="sometimes")
    with pytest.raises(TypeError):
        client.hash_set("h", {"f": 1}, condition=1)
    assert not client.exists("h")


def test_hash_fields_over_the_value_limit(make_client):
    client = make_client(max_value_bytes=100)
    with pytest.raises(rcache.TooLargeError):
        client.hash_set("h", {"a": b"x" * 60, "b": b"y" * 60})
    assert client.hash_get("h") is None


# --- keys --------------------------------------------------------------------------


def test_keys_of_the_namespace(client):
    assert client.keys() == []
    for key in ["user:1", "user:2", "user:10", "a*b"]:
        client.set(key, b"v")
    client.hash_set("record", {"f": 1})
    client.set("tagged", b"v", tags=["tag"])
    client.set("invalid", b"v", tags=["gone"])
    client.invalidate_tags(["gone"])
    client.get_or_set("computed", lambda: b"v")
    assert client.keys() == [b"a*b", b"computed", b"record", b"tagged", b"user:1", b"user:10", b"user:2"]
    assert client.keys("user:?") == [b"user:1", b"user:2"]
    assert client.keys(b"a\\*b") == [b"a*b"]
    assert client.keys("__rcache_*") == []


def test_keys_with_glob_characters_in_the_prefix(make_client, prefix):
    mine = make_client(prefix=prefix + "[1]*:")
    theirs = make_client(prefix=prefix + "1:")
    mine.set("k", b"v")
    mine.set("x?y", b"v")
    theirs.set("other", b"v")
    assert mine.keys() == [b"k", b"x?y"]
    assert mine.keys("x\\?y") == [b"x?y"]
    assert theirs.keys() == [b"other"]


# --- locks -------------------------------------------------------------------------


def test_lock_between_two_owners(client):
    assert client.lock("job", "alice", 5) is True
    assert client.lock("job", b"bob", 5) is False
    assert client.extend_lock("job", "bob", 5) is False
    assert client.unlock("job", "bob") is False
    assert client.get("job") == b"alice"
    assert client.extend_lock("job", b"alice", 60) is True
    assert 50 < client.ttl("job") <= 60
    assert client.unlock("job", "alice") is True
    assert client.unlock("job", "alice") is False
    assert client.lock("job", "bob", 5) is True


def test_a_lease_that_runs_out_frees_the_lock(client):
    assert client.lock("brief", "alice", 0.1)
    wait_until(lambda: client.lock("brief", "bob", 5), timeout=5, message="lease expiry")
    assert client.extend_lock("brief", "alice", 5) is False
    assert client.unlock("brief", "alice") is False
    assert client.unlock("brief", "bob") is True


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda client: client.lock("k", "", 5), rcache.InvalidArgumentError),
        (lambda client: client.lock("k", "me", 0), rcache.InvalidArgumentError),
        (lambda client: client.lock("k", "me", -1), rcache.InvalidArgumentError),
        (lambda client: client.lock("k", "me", None), TypeError),
        (lambda client: client.lock("k", None, 5), TypeError),
        (lambda client: client.lock("k", "me", 2**40), rcache.InvalidArgumentError),
        (lambda client: client.extend_lock("k", "me", 0), rcache.InvalidArgumentError),
        (lambda client: client.unlock("k", ""), rcache.InvalidArgumentError),
        (lambda client: client.lock("__rcache_lock:k", "me", 5), rcache.InvalidArgumentError),
    ],
)
def test_bad_lock_arguments(client, call, error):
    with pytest.raises(error):
        call(client)
    assert not client.exists("k")


def test_locks_interoperate_with_the_classic_protocol(backend, request, client, prefix):
    if backend != "redis":
        pytest.skip("a raw Redis client is needed")
    server = request.getfixturevalue("redis_server")
    assert client.lock("job", "mine", 30)
    assert server.command("GET", prefix + "job") == b"mine"
    assert 25_000 < server.command("PTTL", prefix + "job") <= 30_000
    assert server.command("SET", prefix + "job", "theirs", "NX", "PX", 30000) is None
    assert client.unlock("job", "mine")
    assert server.command("SET", prefix + "job", "theirs", "NX", "PX", 30000) == "OK"
    assert client.lock("job", "mine", 30) is False
    assert client.unlock("job", "theirs") is True


# --- server_info -------------------------------------------------------------------


def test_server_info(client, backend):
    for key in ["a", "b", "c"]:
        client.set(key, b"v")
    info = client.server_info()
    assert isinstance(info["used_memory"], int) and info["used_memory"] > 0
    if backend == "memory":
        assert info["rcache_backend"] == "memory"
        assert info["keys"] == 3
    else:
        assert isinstance(info["redis_version"], str)
        assert info["db0"]["keys"] >= 3


def test_info_is_parsed_as_redis_py_parses_it():
    text = (
        "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\r\n"
        "# Memory\r\nmem_fragmentation_ratio:1.25\r\nused_memory_human:1.02M\r\n\r\n"
        "# Modules\r\nmodule:name=search,ver=20600\r\n"
        "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\nlist:a,b\r\nflag:x=1,y\r\nraw line\r\n"
    )
    assert _parse_info(text) == {
        "redis_version": "7.0.15",
        "uptime_in_seconds": 42,
        "mem_fragmentation_ratio": 1.25,
        "used_memory_human": "1.02M",
        "modules": [{"name": "search", "ver": 20600}],
        "db0": {"keys": 1, "expires": 0, "avg_ttl": 0},
        "list": ["a", "b"],
        "flag": {"x": 1, "y": True},
        "__raw__": ["raw line"],
    }


# --- after close -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.get_with_ttl("k"),
        lambda client: client.compare_and_set("k", b"a", b"b"),
        lambda client: client.hash_get("k"),
        lambda client: client.hash_set("k", {"f": 1}),
        lambda client: client.keys(),
        lambda client: client.lock("k", "me", 1),
        lambda client: client.extend_lock("k", "me", 1),
        lambda client: client.unlock("k", "me"),
        lambda client: client.server_info(),
    ],
)
def test_calls_after_close_raise_closed_error(make_client, call):
    client = make_client()
    client.close()
    with pytest.raises(rcache.ClosedError):
        call(client)
