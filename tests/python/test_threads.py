"""One Client shared by many threads."""

import ctypes
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import rcache
from conftest import BINDINGS

THREADS = 16
ROUNDS = 150


def run_threads(count, target):
    errors = []
    barrier = threading.Barrier(count)

    def wrapper(index):
        try:
            barrier.wait()
            target(index)
        except BaseException as error:  # reported to the main thread
            errors.append((index, repr(error)))

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "threads hung"
    return errors


def test_threads_see_only_their_own_values(client):
    def work(index):
        for round_ in range(ROUNDS):
            key = f"thread{index}:{round_ % 7}"
            value = f"{index}:{round_}:".encode() + os.urandom(8)
            client.set(key, value)
            got = client.get(key)
            assert got == value, f"thread {index} read {got!r}, wrote {value!r}"
            if round_ % 10 == 0:
                keys = [f"thread{index}:{r}" for r in range(7)]
                values = client.get_many(keys)
                assert values[round_ % 7] == value
                assert client.incr(f"count{index}") == round_ // 10 + 1

    errors = run_threads(THREADS, work)
    assert errors == []
    for index in range(THREADS):
        assert client.get(f"count{index}") == str((ROUNDS - 1) // 10 + 1).encode()


def test_close_racing_with_calls(make_client):
    client = make_client()
    client.set("k", b"v")
    started = threading.Event()
    unexpected = []
    calls = [0] * 8

    def work(index):
        while True:
            try:
                assert client.get("k") == b"v"
                client.set(f"k{index}", b"x")
                calls[index] += 1
                started.set()
            except rcache.ClosedError:
                return
            except BaseException as error:
                unexpected.append(repr(error))
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    assert started.wait(10)
    time.sleep(0.05)
    client.close()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert unexpected == []
    assert sum(calls) > 0
    assert client.closed


def test_concurrent_close_is_safe(make_client):
    client = make_client()
    errors = run_threads(8, lambda index: client.close())
    assert errors == []
    assert client.closed


def test_a_daemon_thread_inside_get_or_set_at_interpreter_exit_ends_cleanly(url, prefix):
    # At exit, a daemon thread that wants the GIL back is ended by the
    # interpreter (pthread_exit, a forced unwind) inside the compute function,
    # which the library must let pass instead of aborting the process.
    script = textwrap.dedent(
        f"""
        import sys, threading, time, types
        sys.path.insert(0, {str(BINDINGS)!r})
        import rcache

        class SlowToFinalize:
            # Keeps the interpreter finalizing while the daemon thread wakes up.
            def __del__(self, sleep=time.sleep):
                sleep(1.0)

        # Freed when the interpreter tears down sys.modules, after it started finalizing.
        holder = types.ModuleType("holder")
        holder.keeper = SlowToFinalize()
        sys.modules["holder"] = holder
        del holder
        client = rcache.Client({url!r}, prefix={prefix!r})
        started = threading.Event()

        def compute():
            started.set()
            time.sleep(0.2)
            return b"never stored"

        threading.Thread(target=lambda: client.get_or_set("daemon", compute), daemon=True).start()
        started.wait(10)
        print("main thread done", flush=True)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "main thread done" in result.stdout
    assert "FATAL" not in result.stderr


@pytest.mark.skipif(not hasattr(ctypes, "PyDLL"), reason="ctypes without PyDLL (PyPy) calls every function the usual way")
def test_functions_that_never_wait_keep_the_interpreter_lock():
    """A get releases the interpreter lock once, for its I/O: freeing the
    buffer it returned (and the near-cache read) go through PyDLL."""
    from rcache import _lib

    keeps_lock = ctypes._FUNCFLAG_PYTHONAPI
    for function in (_lib.buffer_free, _lib.buffers_free, _lib.buffer_array_free, _lib.near_get):
        assert function._flags_ & keeps_lock, function.__name__
    assert not _lib.lib.rcache_client_get._flags_ & keeps_lock, "calls that wait must release the lock"
