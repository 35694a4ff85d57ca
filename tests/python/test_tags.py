"""Tags, tag invalidation and namespace clear, on both backends (Client and Cache)."""

import multiprocessing
import time

import pytest

import rcache
from rcache import NO_EXPIRY, Cache, Client
from rcache import _lib
from rcache.errors import from_status
from conftest import wait_until

# What a tagged entry starts with when stored on Redis (src/backend/lua/envelope.lua).
TAGGED_MAGIC = b"\x00rcache-tags\x00"


def still_works(client):
    client.set("after", b"ok", tags=["after"])
    assert client.get("after") == b"ok"


# --- tagged entries and invalidation ----------------------------------------------


def test_invalidation_across_entries_and_tags(client):
    client.set("profile:1", b"ada", 60, tags=["user:1", "profiles"])
    client.set("profile:2", b"bob", 60, tags=["user:2", "profiles"])
    client.set("avatar:1", b"png", 60, tags=["user:1"])
    client.set("plain", b"untouched", 60)
    assert client.get("profile:1") == b"ada"

    client.invalidate_tags(["user:1"])
    assert client.get("profile:1") is None
    assert client.get("avatar:1") is None
    assert not client.exists("avatar:1")
    assert client.get("profile:2") == b"bob"
    assert client.get_many(["profile:1", "profile:2", "plain"]) == [None, b"bob", b"untouched"]

    client.invalidate_tags(["profiles", "never-used"])
    assert client.get("profile:2") is None
    assert client.get("plain") == b"untouched"

    # A write after the invalidation is valid again.
    client.set("profile:1", b"ada again", 60, tags=["user:1"])
    assert client.get("profile:1") == b"ada again"


def test_several_tags_in_one_call_and_an_entry_under_several(client):
    for name in "abcd":
        client.set(name, name.encode(), tags=["all", "tag-" + name])
    client.invalidate_tags(("tag-a", "tag-c"))  # any iterable, here a tuple
    assert client.get_many(list("abcd")) == [None, b"b", None, b"d"]
    client.invalidate_tags(tag for tag in ["all"])  # or a generator
    assert client.get_many(list("abcd")) == [None, None, None, None]


def test_plain_entries_and_other_tags_are_untouched(client):
    client.set("plain", b"p")
    client.set_many({"m1": b"1", "m2": b"2"})
    client.incr("counter", 5)
    client.set("other", b"o", tags=["other"])
    client.set("doomed", b"d", tags=["doomed"])
    client.invalidate_tags(["doomed", "plain", "m1", "counter"])  # tags named like keys: unrelated
    assert client.get("doomed") is None
    assert client.get_many(["plain", "m1", "m2", "other"]) == [b"p", b"1", b"2", b"o"]
    assert client.incr("counter") == 6


def test_tagged_entry_keeps_ttl_and_expires(client):
    client.set("long", b"v", ttl=100, tags=["t"])
    assert 99.0 < client.ttl("long") <= 100.0
    client.set("forever", b"v", ttl=NO_EXPIRY, tags=["t"])
    assert client.ttl("forever") == -1.0
    client.set("short", b"v", ttl=0.2, tags=["t"])
    wait_until(lambda: client.get("short") is None, timeout=5, message="expiry of a tagged entry")
    assert client.get("long") == b"v"


def test_an_untagged_write_replaces_a_tagged_entry(client):
    client.set("k", b"tagged", tags=["t"])
    client.set("k", b"plain")
    client.invalidate_tags(["t"])
    assert client.get("k") == b"plain"
    client.set("k", b"tagged again", tags=["u"])
    client.set("k", b"no tags", tags=[])  # an empty iterable is a plain set
    client.invalidate_tags(["u"])
    assert client.get("k") == b"no tags"


def test_invalidating_nothing_is_a_no_op(client):
    client.set("k", b"v", tags=["t"])
    client.invalidate_tags([])
    client.invalidate_tags(["never-used"])
    assert client.get("k") == b"v"


def test_add_tags_keeps_value_and_ttl(client):
    assert client.add_tags("absent", ["t"]) is False
    client.set("k", b"v", ttl=100)
    assert client.add_tags("k", ["a"]) is True
    assert client.add_tags("k", ["a", "b"]) is True  # "a" again is harmless
    assert 90.0 < client.ttl("k") <= 100.0
    assert client.get("k") == b"v"
    client.set("forever", b"f", ttl=NO_EXPIRY, tags=["a"])
    assert client.add_tags("forever", [b"c"]) is True
    assert client.ttl("forever") == -1.0
    assert client.get("forever") == b"f"

    client.invalidate_tags(["b"])
    assert client.get("k") is None
    assert client.add_tags("k", ["c"]) is False, "an invalidated entry is missing"
    assert client.get("forever") == b"f"
    client.invalidate_tags(["c"])
    assert client.get("forever") is None


def test_add_tags_to_an_entry_that_has_some(client):
    client.set("k", b"v", tags=["first"])
    assert client.add_tags("k", ["second"])
    client.invalidate_tags(["first"])  # the original tags still count
    assert client.get("k") is None
    client.set("k", b"v", tags=["first"])
    assert client.add_tags("k", ["second"])
    client.invalidate_tags(["second"])
    assert client.get("k") is None


@pytest.mark.parametrize(
    "tag",
    [b"\x00", b"t\x00:x", bytes(range(40)), bytes(range(256)), b"\xff\xfe", b"*?[]\\", "clé ✓"],
    ids=["nul", "nul-inside", "low-bytes", "every-byte", "not-utf8", "glob-chars", "unicode"],
)
def test_binary_tags(client, tag):
    client.set("bin", bytes(range(256)), tags=[tag, "keep"])
    client.set("empty", b"", tags=["keep"])
    assert client.get("bin") == bytes(range(256))
    assert client.get("empty") == b""  # an empty tagged value is a hit
    client.invalidate_tags([tag])
    assert client.get("bin") is None
    assert client.get("empty") == b""


def test_str_tags_are_their_utf8_bytes(client):
    client.set("k", b"v", tags=["clé"])
    client.invalidate_tags(["clé".encode("utf-8")])
    assert client.get("k") is None
    client.set("k", b"v", tags=[bytearray(b"raw")])
    client.invalidate_tags([memoryview(b"raw")])
    assert client.get("k") is None


def test_tags_belong_to_the_namespace(make_client, prefix):
    one = make_client(prefix=prefix + "one:")
    mine = make_client()
    mine.set("k", b"mine", tags=["t"])
    one.set("k", b"one", tags=["t"])
    one.invalidate_tags(["t"])
    assert one.get("k") is None
    assert mine.get("k") == b"mine"


def test_a_tag_invalidated_by_another_client_on_redis(redis_server, make_client):
    writer = make_client(redis_server.url)
    other = make_client(redis_server.url)
    writer.set("k", b"v", tags=["t"])
    assert other.get("k") == b"v"
    other.invalidate_tags(["t"])
    assert writer.get("k") is None


# --- bad input ---------------------------------------------------------------------

TAG_CALLS = {
    "set": lambda c, tags: c.set("k", b"v", tags=tags),
    "add_tags": lambda c, tags: c.add_tags("k", tags),
    "invalidate_tags": lambda c, tags: c.invalidate_tags(tags),
}


@pytest.mark.parametrize("call", TAG_CALLS.values(), ids=TAG_CALLS.keys())
@pytest.mark.parametrize("tags", ["tag", "", b"tag", bytearray(b"tag"), memoryview(b"tag")],
                         ids=["str", "empty-str", "bytes", "bytearray", "memoryview"])
def test_a_single_tag_is_refused_not_split(client, call, tags):
    """A str or bytes passed as tags raises TypeError rather than being
    iterated character by character (or byte by byte)."""
    client.set("k", b"before")
    with pytest.raises(TypeError, match="iterable of tags"):
        call(client, tags)
    assert client.get("k") == b"before"
    still_works(client)


@pytest.mark.parametrize("call", TAG_CALLS.values(), ids=TAG_CALLS.keys())
@pytest.mark.parametrize("tags", [42, 1.5, object()], ids=["int", "float", "object"])
def test_tags_not_iterable(client, call, tags):
    with pytest.raises(TypeError, match="iterable"):
        call(client, tags)
    still_works(client)


@pytest.mark.parametrize("call", TAG_CALLS.values(), ids=TAG_CALLS.keys())
@pytest.mark.parametrize("tag", [None, 42, ["nested"]], ids=["None", "int", "list"])
def test_tag_of_wrong_type(client, call, tag):
    with pytest.raises(TypeError, match="tag must be str or bytes-like"):
        call(client, ["fine", tag])
    still_works(client)


@pytest.mark.parametrize("call", TAG_CALLS.values(), ids=TAG_CALLS.keys())
@pytest.mark.parametrize("tag", ["", b""], ids=["str", "bytes"])
def test_empty_tag(client, call, tag):
    client.set("k", b"before")
    with pytest.raises(rcache.InvalidArgumentError) as info:
        call(client, ["fine", tag])
    assert info.value.status == "RCACHE_STATUS_INVALID_ARGUMENT"
    assert "empty" in info.value.message
    assert client.get("k") == b"before"
    still_works(client)


def test_unencodable_tag(client):
    with pytest.raises(rcache.InvalidArgumentError, match="tag"):
        client.set("k", b"v", tags=["\ud800"])
    assert client.get("k") is None


@pytest.mark.parametrize("call", TAG_CALLS.values(), ids=TAG_CALLS.keys())
def test_too_many_tags(client, call):
    client.set("k", b"before")
    too_many = [f"t{i}" for i in range(rcache.MAX_TAGS + 1)]
    with pytest.raises(rcache.InvalidArgumentError) as info:
        call(client, too_many)
    assert info.value.status == "RCACHE_STATUS_INVALID_ARGUMENT"
    assert str(rcache.MAX_TAGS) in info.value.message
    assert client.get("k") == b"before"
    still_works(client)


def test_the_most_tags_allowed(client):
    tags = [f"t{i}" for i in range(rcache.MAX_TAGS)]
    client.set("k", b"v", tags=tags)
    assert client.add_tags("k", tags)
    assert client.get("k") == b"v"
    # The limit is per entry, across calls: one more is refused and adds nothing.
    with pytest.raises(rcache.InvalidArgumentError, match="tags per entry") as info:
        client.add_tags("k", ["one more"])
    assert info.value.status == "RCACHE_STATUS_INVALID_ARGUMENT"
    client.invalidate_tags(["one more"])
    assert client.get("k") == b"v"
    client.invalidate_tags(tags)
    assert client.get("k") is None


def test_tag_over_the_key_limit(make_client):
    client = make_client(max_key_bytes=8)
    client.set("k", b"v", tags=["12345678"])  # at the limit: fine
    for call in TAG_CALLS.values():
        with pytest.raises(rcache.TooLargeError) as info:
            call(client, ["fine", "123456789"])
        assert info.value.status == "RCACHE_STATUS_TOO_LARGE"
    assert client.get("k") == b"v"
    still_works(client)


RESERVED = ["__rcache_tag:x", b"__rcache_tag:x", "__rcache_tag:"]


@pytest.mark.parametrize("key", RESERVED, ids=["str", "bytes", "bare"])
def test_reserved_key_prefix(client, key):
    calls = [
        lambda: client.set(key, b"v"),
        lambda: client.set(key, b"v", tags=["t"]),
        lambda: client.get(key),
        lambda: client.add_tags(key, ["t"]),
        lambda: client.delete(key),
        lambda: client.set_many({key: b"v"}),
    ]
    for call in calls:
        with pytest.raises(rcache.InvalidArgumentError, match="reserved"):
            call()
    # Only keys that start with it: the text elsewhere in a key is fine.
    client.set("x__rcache_tag:y", b"fine")
    client.set("rcache_tag:y", b"fine")
    assert client.get_many(["x__rcache_tag:y", "rcache_tag:y"]) == [b"fine", b"fine"]
    still_works(client)


def test_clear_pattern_of_wrong_type(client):
    client.set("k", b"v")
    for pattern in (42, ["*"]):
        with pytest.raises(TypeError, match="pattern"):
            client.clear(pattern)
    assert client.get("k") == b"v"


def test_calls_on_a_closed_client(make_client):
    client = make_client()
    client.close()
    for call in (
        lambda: client.set("k", b"v", tags=["t"]),
        lambda: client.add_tags("k", ["t"]),
        lambda: client.invalidate_tags(["t"]),
        lambda: client.clear(),
        lambda: client.clear("*"),
    ):
        with pytest.raises(rcache.ClosedError):
            call()


# --- clear --------------------------------------------------------------------------


def test_clear_with_patterns(client):
    for key in ["user:1", "user:2", "user:10", "a1", "b2", "ab", "a*b", "c3", "*", "post:1"]:
        client.set(key, b"v", 60)
    client.set("user:3", b"v", 60, tags=["t"])

    assert client.clear("user:?") == 3
    assert client.get_many(["user:1", "user:2", "user:3", "user:10"]) == [None, None, None, b"v"]
    assert client.clear("[ab]*") == 4
    assert client.get_many(["a1", "b2", "ab", "a*b", "c3"]) == [None, None, None, None, b"v"]
    assert client.clear("\\*") == 1  # the key "*" only
    assert client.exists("c3") and client.exists("post:1")
    assert client.clear(b"post:*") == 1
    assert client.clear("nothing*") == 0
    assert client.clear("") == 0  # matches only the prefix itself, never a key

    deleted = client.clear()
    assert deleted >= 2, f"the rest, tags included: {deleted}"
    assert client.get_many(["user:10", "c3"]) == [None, None]
    assert client.clear() == 0


def test_clear_then_tags_start_afresh(client):
    client.set("k", b"v", tags=["t"])
    client.clear()
    client.set("k", b"v", tags=["t"])
    assert client.get("k") == b"v"
    client.invalidate_tags(["t"])
    assert client.get("k") is None


def test_clear_leaves_other_namespaces_alone_on_redis(redis_server, prefix):
    raw_key = prefix + "raw"
    redis_server.command("SET", raw_key, "outside any client's namespace")
    with Client(redis_server.url, prefix=prefix + "one:") as one, \
            Client(redis_server.url, prefix=prefix + "two:") as two:
        for client in (one, two):
            client.set("k", b"v")
            client.set("tagged", b"v", tags=["t"])
        # A namespace whose prefix contains glob characters is matched literally.
        with Client(redis_server.url, prefix=prefix + "[ot]*:") as globby:
            globby.set("k", b"g")
            assert globby.clear() == 1
            assert globby.get("k") is None

        assert one.clear() >= 2
        assert one.get_many(["k", "tagged"]) == [None, None]
        assert two.get_many(["k", "tagged"]) == [b"v", b"v"]
        assert redis_server.command("GET", raw_key) == b"outside any client's namespace"
        # two's tags survived too: invalidating still works, and only there.
        two.invalidate_tags(["t"])
        assert two.get("tagged") is None
        assert two.get("k") == b"v"
    assert redis_server.command("KEYS", prefix + "one:*") == []


# --- across processes (Redis) -----------------------------------------------------


def _writer_process(url, prefix, conn):
    """Process A: writes tagged entries, waits for the go-ahead, reads them back."""
    try:
        with Client(url, prefix=prefix) as client:
            client.set("doc:1", b"one", 60, tags=["docs", "doc:1"])
            client.set("doc:2", b"two", 60, tags=["docs"])
            client.set("other", b"kept", 60, tags=["others"])
            conn.send(("written", client.get_many(["doc:1", "doc:2", "other"])))
            conn.recv()
            conn.send(("read", client.get_many(["doc:1", "doc:2", "other"])))
    except BaseException as error:
        conn.send(("error", repr(error)))
        raise


def _invalidator_process(url, prefix, tags):
    """Process B: invalidates tags with a Client of its own."""
    with Client(url, prefix=prefix) as client:
        client.invalidate_tags(tags)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_invalidation_from_another_process_on_redis(redis_server, prefix, method):
    context = multiprocessing.get_context(method)
    ours, theirs = context.Pipe()
    writer = context.Process(target=_writer_process, args=(redis_server.url, prefix, theirs))
    writer.start()
    try:
        assert ours.poll(60), "process A did not report"
        assert ours.recv() == ("written", [b"one", b"two", b"kept"])

        invalidator = context.Process(target=_invalidator_process, args=(redis_server.url, prefix, ["docs"]))
        invalidator.start()
        invalidator.join(60)
        assert invalidator.exitcode == 0

        ours.send("read now")
        assert ours.poll(60), "process A did not report"
        assert ours.recv() == ("read", [None, None, b"kept"])
    finally:
        writer.join(60)
        if writer.exitcode is None:
            writer.kill()
    assert writer.exitcode == 0


# --- a damaged tagged entry (Redis) -----------------------------------------------


def test_corrupt_tagged_entry_on_redis(redis_server, prefix):
    redis_server.command("SET", prefix + "bad", TAGGED_MAGIC + b"garbage")
    with Client(redis_server.url, prefix=prefix) as client:
        client.set("good", b"g", tags=["t"])
        with pytest.raises(rcache.CorruptValueError) as info:
            client.get("bad")
        assert isinstance(info.value, rcache.RCacheError)
        assert info.value.status == "RCACHE_STATUS_CORRUPT"
        assert info.value.message

        cache = Cache(client=client)
        with pytest.raises(rcache.CorruptValueError):
            cache.get("bad")
        with pytest.raises(rcache.CorruptValueError):
            client.add_tags("bad", ["t"])

        # Nothing was changed, and nothing else is affected.
        assert redis_server.command("GET", prefix + "bad") == TAGGED_MAGIC + b"garbage"
        assert client.get("good") == b"g"
        client.invalidate_tags(["t"])
        assert client.get("good") is None
        still_works(client)
        # The damaged entry can be deleted or overwritten.
        assert client.delete("bad")
        assert client.get("bad") is None
        redis_server.command("SET", prefix + "bad", TAGGED_MAGIC + b"garbage")
        client.set("bad", b"fresh", tags=["t"])
        assert client.get("bad") == b"fresh"


def test_status_corrupt_maps_to_corrupt_value_error():
    error = from_status(_lib.STATUS_CORRUPT)
    assert type(error) is rcache.CorruptValueError
    assert error.status == "RCACHE_STATUS_CORRUPT"
    assert error.message
    # The Python-only use (a value Cache cannot unpickle) keeps status None.
    assert rcache.CorruptValueError("not a pickle").status is None


# --- Cache ---------------------------------------------------------------------------


def test_cache_tags_and_clear(client):
    cache = Cache(client=client)
    cache.set("a", {"n": 1}, tags=["group", "a"])
    cache.set("b", [2], ttl=100, tags=("group",))
    cache.set("c", None)
    assert cache.add_tags("c", ["group"]) is True
    assert cache.add_tags("missing", ["group"]) is False
    assert 99.0 < cache.ttl("b") <= 100.0
    assert cache.get_many(["a", "b", "c"], default="miss") == [{"n": 1}, [2], None]

    cache.invalidate_tags(["a"])
    assert cache.get("a", "miss") == "miss"
    cache.invalidate_tags(["group"])
    assert cache.get_many(["a", "b", "c"], default="miss") == ["miss", "miss", "miss"]

    cache.set("x:1", 1)
    cache.set("x:2", 2)
    cache.set("y", 3)
    assert cache.clear("x:*") == 2
    assert cache.get("y") == 3
    assert cache.clear() >= 1
    assert cache.get("y") is None

    with pytest.raises(TypeError):
        cache.invalidate_tags("group")
    with pytest.raises(TypeError):
        cache.set("k", 1, tags="group")
    assert cache.get("k", "miss") == "miss"


def _race_writers(url, prefix, landed, stop):
    import threading as _threading

    with Client(url, prefix=prefix) as client:

        def write(writer):
            sequence = 0
            while not stop.value:
                sequence += 1
                client.set(f"race:{writer}", str(sequence).encode(), ttl=60, tags=["race"])
                landed[writer] = sequence

        threads = [_threading.Thread(target=write, args=(writer,)) for writer in range(len(landed))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def test_an_invalidation_wins_against_writers_in_another_process(redis_server, prefix):
    # Writers in another process publish the last sequence whose tagged write
    # returned; once an invalidation returns, no write that had returned before
    # it started may be readable.
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    landed = context.Array("q", 3, lock=False)
    stop = context.Value("b", 0, lock=False)
    writer = context.Process(target=_race_writers, args=(redis_server.url, prefix, landed, stop))
    writer.start()
    try:
        with Client(redis_server.url, prefix=prefix) as client:
            deadline = time.monotonic() + 30
            while min(landed) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert min(landed) > 0, "the writers started"
            for _ in range(300):
                before = list(landed)
                client.invalidate_tags(["race"])
                for index, landed_before in enumerate(before):
                    value = client.get(f"race:{index}")
                    if value is not None:
                        assert int(value) > landed_before, (index, int(value), landed_before)
    finally:
        stop.value = 1
        writer.join(timeout=30)
    assert writer.exitcode == 0


def test_an_entry_naming_a_tag_key_outside_the_tag_space_is_refused_by_every_call(redis_server, prefix):
    # Written by another program: a tagged entry whose tag record points at a
    # key outside this client's namespace, holding the very token recorded.
    token = b"0123456789abcdef"
    foreign = (prefix + "elsewhere").encode()
    stored = TAGGED_MAGIC + b"1:" + str(len(foreign)).encode() + b":" + foreign + token + b"payload"
    redis_server.command("SET", prefix + "mine:k", stored, "PX", 100000)
    redis_server.command("SET", foreign, token, "PX", 100000)
    with Client(redis_server.url, prefix=prefix + "mine:") as client:
        calls = [
            lambda: client.get("k"),
            lambda: client.exists("k"),
            lambda: client.ttl("k"),
            lambda: client.expire("k", NO_EXPIRY),
            lambda: client.expire("k", 60),
            lambda: client.add_tags("k", ["t"]),
            lambda: client.delete("k"),
            lambda: client.compare_and_set("k", b"payload", b"new"),
        ]
        for call in calls:
            with pytest.raises(rcache.CorruptValueError) as info:
                call()
            assert info.value.status == "RCACHE_STATUS_CORRUPT"
        still_works(client)
    # Nothing changed: the entry, and the foreign key and its expiry.
    assert redis_server.command("GET", prefix + "mine:k") == stored
    assert redis_server.command("GET", foreign) == token
    assert 0 < redis_server.command("PTTL", foreign) <= 100000
    assert 0 < redis_server.command("PTTL", prefix + "mine:k") <= 100000
