"""Clients across fork(): an inherited Client refuses to work, a new one works."""

import multiprocessing
import os
import sys
import traceback

import rcache
from rcache import Client


def child_checks(inherited, url, prefix):
    """Runs in the child; returns an exit code (0 = all good)."""
    try:
        assert inherited.closed
        try:
            inherited.get("k")
        except rcache.ForkedError as error:
            assert "fork" in str(error)
            assert error.status == "RCACHE_STATUS_FORKED"
        else:
            return 10
        for call in (lambda: inherited.set("k", b"x"), lambda: inherited.get_many(["k"])):
            try:
                call()
            except rcache.ForkedError:
                pass
            else:
                return 11
        inherited.close()  # a no-op, not an error
        with Client(url, prefix=prefix) as fresh:
            if url.startswith("redis"):
                assert fresh.get("k") == b"parent"  # same server, same data
            fresh.set("child", b"c")
            assert fresh.get("child") == b"c"
        return 0
    except BaseException:
        traceback.print_exc()
        return 20


def test_os_fork(client, url, prefix):
    client.set("k", b"parent")
    pid = os.fork()
    if pid == 0:
        code = 30
        try:
            code = child_checks(client, url, prefix)
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's client is untouched by the child.
    assert client.get("k") == b"parent"
    client.set("k2", b"v")
    assert client.get("k2") == b"v"
    if url.startswith("redis"):
        assert client.get("child") == b"c"


def mp_child(inherited, url, prefix):
    sys.exit(child_checks(inherited, url, prefix))


def test_multiprocessing_fork(client, url, prefix):
    client.set("k", b"parent")
    context = multiprocessing.get_context("fork")
    process = context.Process(target=mp_child, args=(client, url, prefix))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert client.get("k") == b"parent"


def test_fork_during_calls_in_other_threads(client, url, prefix):
    """A fork while other threads are inside library calls: the child still
    gets a ForkedError, not a hang, and can connect anew."""
    import threading

    client.set("k", b"parent")
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            client.get("k")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                code = 30
                try:
                    code = child_checks(client, url, prefix)
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert client.get("k") == b"parent"
