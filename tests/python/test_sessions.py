"""SessionStore: versioned saves, secrets, sliding expiry, purge, locks."""

import multiprocessing
import threading
import time

import pytest

import rcache


def test_create_load_save_and_conflict(url, prefix):
    with rcache.Client(url, prefix=prefix) as client:
        store = rcache.SessionStore(client)
        session_id, secret = store.create({"user": b"ada"}, ttl=60)
        assert len(session_id) == 32 and len(secret) == 32
        session = store.load(session_id, secret)
        assert session.fields == {"user": b"ada"} and session.version == 1
        assert store.save(session_id, secret, {"cart": b"3 items"}, delete=["user"], version=1, ttl=60) == 2
        with pytest.raises(rcache.ConflictError):
            store.save(session_id, secret, {"cart": b"stale"}, version=1, ttl=60)
        assert store.load(session_id, secret).fields == {"cart": b"3 items"}
        assert store.destroy(session_id, secret)
        assert store.load(session_id, secret) is None
        assert store.save(session_id, secret, {"a": b"b"}, ttl=60) is None


def test_a_wrong_secret_changes_nothing_and_takes_no_lock(url, prefix):
    with rcache.Client(url, prefix=prefix) as client:
        store = rcache.SessionStore(client)
        session_id, secret = store.create({"user": b"ada"}, ttl=0.4)
        for forged in ["0" * 32, "", secret[:-1]]:
            assert store.load(session_id, forged, slide=60) is None
            assert store.save(session_id, forged, {"user": b"eve"}, ttl=60) is None
            assert not store.touch(session_id, forged, ttl=60)
            assert not store.destroy(session_id, forged)
            assert store.lock(session_id, forged) is None
        assert store.load(session_id, secret).fields == {"user": b"ada"}
        deadline = time.monotonic() + 3
        while store.load(session_id, secret) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.load(session_id, secret) is None, "forged touches renewed nothing"


def test_loads_never_wait_on_a_held_lock(url, prefix):
    with rcache.Client(url, prefix=prefix) as client:
        store = rcache.SessionStore(client)
        session_id, secret = store.create({"k": b"v"}, ttl=60)
        owner = store.lock(session_id, secret, lease=60)
        with pytest.raises(rcache.ConflictError):
            store.lock(session_id, secret, lease=5)
        # The load answers while the lock is still held.
        assert store.load(session_id, secret) is not None
        with pytest.raises(rcache.ConflictError):
            store.lock(session_id, secret, lease=5)
        assert not store.unlock(session_id, "not the owner")
        assert store.unlock(session_id, owner)


def test_purge_removes_only_idle_sessions(url, prefix):
    with rcache.Client(url, prefix=prefix) as client:
        store, other = rcache.SessionStore(client), rcache.SessionStore(client, "other:")
        idle = [store.create({"k": b"v"}, ttl=60) for _ in range(3)]
        elsewhere = other.create({"k": b"v"}, ttl=60)
        time.sleep(0.3)
        active = store.create({"k": b"v"}, ttl=60)
        assert store.touch(*idle[0], ttl=60)
        assert store.purge(0.2) == 2
        assert store.load(*idle[0]) is not None and store.load(*active) is not None
        assert store.load(*idle[1]) is None
        assert other.load(*elsewhere) is not None


def test_bad_session_input(url, prefix):
    with rcache.Client(url, prefix=prefix, max_value_bytes=1024) as client:
        store = rcache.SessionStore(client)
        with pytest.raises(rcache.InvalidArgumentError):
            store.create({"__secret": b"x"})
        with pytest.raises(TypeError):
            store.create({b"bytes-name": b"x"})
        with pytest.raises(rcache.TooLargeError):
            store.create({"data": b"x" * 2000})
        with pytest.raises(TypeError):
            store.create({"data": "not bytes"})
        with pytest.raises(rcache.InvalidArgumentError):
            store.load("", "secret")


def _increment(store, session_id, secret, rounds):
    done = 0
    while done < rounds:
        session = store.load(session_id, secret)
        count = int(session.fields["count"])
        try:
            store.save(session_id, secret, {"count": str(count + 1).encode()}, version=session.version, ttl=60)
        except rcache.ConflictError:
            continue
        done += 1


def _increment_in_process(url, prefix, session_id, secret, rounds):
    with rcache.Client(url, prefix=prefix) as client:
        store = rcache.SessionStore(client)
        threads = [threading.Thread(target=_increment, args=(store, session_id, secret, rounds)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def test_racing_writers_in_threads_and_two_processes_lose_no_update(redis_server, prefix):
    with rcache.Client(redis_server.url, prefix=prefix) as client:
        store = rcache.SessionStore(client)
        session_id, secret = store.create({"count": b"0"}, ttl=60)
        context = multiprocessing.get_context("spawn")
        other = context.Process(target=_increment_in_process, args=(redis_server.url, prefix, session_id, secret, 25))
        other.start()
        _increment_in_process(redis_server.url, prefix, session_id, secret, 25)
        other.join(timeout=120)
        assert other.exitcode == 0
        assert store.load(session_id, secret).fields["count"] == b"200", "every save landed or reported a conflict"
