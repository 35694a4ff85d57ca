"""Every Python value that becomes a fixed-width C integer is range-checked:
out of range it raises, never wraps into another value.

The cases are keyed by (C function, argument index) of rcache._lib's
signatures, and a test checks that every fixed-width argument has one, so a
new signature cannot slip through unchecked.
"""

import asyncio
import ctypes

import pytest

import rcache
import rcache.aio
from rcache import _lib

FIXED_WIDTH = (ctypes.c_int, ctypes.c_int32, ctypes.c_uint32, ctypes.c_int64, ctypes.c_uint64)

# A lease of 2**32 ms + 1 s: wrapped into a uint32_t it would be about 0.7 s.
OVER_UINT32_MS = 2**32 // 1000 + 1


def session(client):
    store = rcache.SessionStore(client, "fw:")
    session_id, secret = store.create({"a": b"1"})
    return store, session_id, secret


def with_session(call):
    def run(client):
        store, session_id, secret = session(client)
        call(store, session_id, secret)

    return run


def on_aio(call):
    """Runs call(aio_client) on an rcache.aio.Client of its own."""

    def run(_client):
        async def main():
            async with rcache.aio.Client("memory://") as client:
                await call(client)

        asyncio.run(main())

    return run


def aio_sessions(client):
    return rcache.aio.SessionStore(client, "fw:")


# (function, argument index) -> calls passing an out-of-range value there.
CASES = {
    ("rcache_client_set", 5): [lambda c: c.set("k", b"v", ttl=-1), lambda c: c.set("k", b"v", ttl=2**63)],
    ("rcache_client_compare_and_set", 7): [lambda c: c.compare_and_set("k", b"a", b"b", ttl=2**64)],
    ("rcache_client_expire", 3): [lambda c: c.expire("k", -5), lambda c: c.expire("k", 2**64)],
    ("rcache_client_set_many", 4): [lambda c: c.set_many([("k", b"v")], ttl=2**64)],
    ("rcache_client_incr", 3): [lambda c: c.incr("n", 2**63), lambda c: c.incr("n", -(2**63) - 1)],
    ("rcache_client_incr", 4): [lambda c: c.incr("n", 1, ttl=2**64)],
    ("rcache_client_set_tagged", 5): [lambda c: c.set("k", b"v", ttl=2**64, tags=["t"])],
    ("rcache_client_lock", 5): [lambda c: c.lock("l", "me", OVER_UINT32_MS)],
    ("rcache_client_extend_lock", 5): [lambda c: c.extend_lock("l", "me", OVER_UINT32_MS)],
    ("rcache_client_hash_set", 6): [lambda c: c.hash_set("h", {"a": 1}, ttl=2**64)],
    ("rcache_client_hash_set", 7): [lambda c: c.hash_set("h", {"a": 1}, condition="sometimes")],
    ("rcache_session_create", 4): [lambda c: rcache.SessionStore(c).create({"a": b"1"}, ttl=2**64)],
    ("rcache_session_load", 5): [with_session(lambda s, i, k: s.load(i, k, slide=2**64))],
    ("rcache_session_save", 5): [
        with_session(lambda s, i, k: s.save(i, k, {"a": b"2"}, version=2**64)),
        with_session(lambda s, i, k: s.save(i, k, {"a": b"2"}, version=-1)),
    ],
    ("rcache_session_save", 11): [with_session(lambda s, i, k: s.save(i, k, {"a": b"2"}, ttl=2**64))],
    ("rcache_session_touch", 5): [with_session(lambda s, i, k: s.touch(i, k, ttl=-1))],
    ("rcache_session_purge", 1): [lambda c: rcache.SessionStore(c).purge(-1), lambda c: rcache.SessionStore(c).purge(None)],
    ("rcache_session_lock", 5): [with_session(lambda s, i, k: s.lock(i, k, OVER_UINT32_MS))],
    ("rcache_client_set_ttl_jitter", 1): [lambda c: c.set_ttl_jitter(2**32), lambda c: c.set_ttl_jitter(-1)],
    ("rcache_queue_new", 1): [lambda c: rcache.aio.Client("memory://", workers=2**32)],
    ("rcache_queue_submit_set", 6): [on_aio(lambda a: a.set("k", b"v", ttl=2**64))],
    ("rcache_queue_submit_set_tagged", 6): [on_aio(lambda a: a.set("k", b"v", ttl=2**64, tags=["t"]))],
    ("rcache_queue_submit_session_create", 7): [on_aio(lambda a: aio_sessions(a).create({"a": b"1"}, ttl=2**64))],
    ("rcache_queue_submit_session_load", 8): [on_aio(lambda a: aio_sessions(a).load("id", "secret", slide=2**64))],
    ("rcache_queue_submit_session_save", 8): [
        on_aio(lambda a: aio_sessions(a).save("id", "secret", {"a": b"2"}, version=2**64)),
        on_aio(lambda a: aio_sessions(a).save("id", "secret", {"a": b"2"}, version=-1)),
    ],
    ("rcache_queue_submit_session_save", 14): [on_aio(lambda a: aio_sessions(a).save("id", "secret", ttl=2**64))],
    # The request token of every queue submission: a counter rcache.aio keeps.
    **{
        (f"rcache_queue_submit_{name}", 1): []
        for name in ("get", "set", "set_tagged", "delete", "invalidate_tags")
        + ("session_create", "session_load", "session_save", "session_destroy")
    },
    # Only errors.py calls it, with statuses it checked against STATUS_LAST.
    ("rcache_status_name", 0): [],
    # An index the binding takes from range(rcache_session_record_field_count()).
    ("rcache_session_record_field", 1): [],
}

# Fixed-width fields of the option structs, reached through their Python arguments.
FIELD_CASES = {
    "connect_timeout_ms": lambda url: rcache.Client(url, connect_timeout=OVER_UINT32_MS),
    "response_timeout_ms": lambda url: rcache.Client(url, response_timeout=OVER_UINT32_MS),
    "default_ttl_ms": lambda url: rcache.Client(url, default_ttl=2**64),
    "max_key_bytes": lambda url: rcache.Client(url, max_key_bytes=2**64),
    "max_value_bytes": lambda url: rcache.Client(url, max_value_bytes=-1),
    "memory_max_entries": lambda url: rcache.Client(url, memory_max_entries=2**64),
    "memory_max_bytes": lambda url: rcache.Client(url, memory_max_bytes=2**64),
    "breaker_threshold": lambda url: rcache.Client(url, breaker_threshold=2**32),
    "breaker_cooldown_ms": lambda url: rcache.Client(url, breaker_cooldown=OVER_UINT32_MS),
    "lock_lease_ms": lambda url: rcache.Client(url).get_or_set("k", lambda: b"v", lock_lease=OVER_UINT32_MS),
    "wait_timeout_ms": lambda url: rcache.Client(url).get_or_set("k", lambda: b"v", wait_timeout=OVER_UINT32_MS),
    "ttl_ms": lambda url: rcache.Client(url).get_or_set("k", lambda: b"v", ttl=2**64),
}


def fixed_width_arguments():
    return {
        (name, index)
        for name, (_, argtypes) in _lib._SIGNATURES.items()
        for index, argtype in enumerate(argtypes)
        if argtype in FIXED_WIDTH and not (index and is_measured(argtypes[index - 1], argtype))
    }


def is_measured(previous, argtype):
    """A size_t right after a pointer argument: that argument's length (size_t
    is the same ctypes type as uint64_t on 64-bit platforms)."""
    return argtype is ctypes.c_size_t and (previous is ctypes.c_char_p or issubclass(previous, ctypes._Pointer))


def fixed_width_fields():
    return {
        name
        for struct in (_lib.rcache_options, _lib.rcache_compute_options)
        for name, kind in struct._fields_
        if kind in FIXED_WIDTH
    }


def test_every_fixed_width_argument_has_a_case():
    assert fixed_width_arguments() == set(CASES)


def test_every_fixed_width_option_field_has_a_case():
    # tag_count is len() of the tags passed.
    assert fixed_width_fields() == set(FIELD_CASES) | {"tag_count"}


@pytest.mark.parametrize(
    "call",
    [call for calls in CASES.values() for call in calls],
    ids=[f"{name}[{index}]#{n}" for (name, index), calls in CASES.items() for n in range(len(calls))],
)
def test_an_out_of_range_argument_raises(client, call):
    with pytest.raises((rcache.InvalidArgumentError, TypeError)):
        call(client)
    client.set("after", b"ok")
    assert client.get("after") == b"ok"


@pytest.mark.parametrize("make", FIELD_CASES.values(), ids=FIELD_CASES.keys())
def test_an_out_of_range_option_raises(make):
    with pytest.raises(rcache.InvalidArgumentError):
        make("memory://")


def test_a_session_lock_lease_over_the_c_range_is_refused_not_shortened(client):
    store, session_id, secret = session(client)
    with pytest.raises(rcache.InvalidArgumentError):
        store.lock(session_id, secret, OVER_UINT32_MS)
    # Nothing was taken: a normal lock succeeds at once.
    assert store.lock(session_id, secret, 10) is not None


def test_purge_needs_an_explicit_number_of_seconds(client):
    store, session_id, secret = session(client)
    with pytest.raises(TypeError):
        store.purge(None)
    assert store.load(session_id, secret) is not None
    # A duration longer than any session has lived purges nothing.
    assert store.purge(2**70) == 0
    assert store.load(session_id, secret) is not None
    assert store.purge(0) == 1
    assert store.load(session_id, secret) is None
