"""rcache.aio: the asyncio client and session store over the completion queue."""

import asyncio
import os
import select
import signal
import time

import pytest

import rcache
import rcache.aio


@pytest.fixture
def make_aio(url, prefix):
    """Factory of aio Clients on the test's backend, with its prefix."""
    clients = []

    def make(url=url, **options):
        options.setdefault("prefix", prefix)
        client = rcache.aio.Client(url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client._close()


def test_a_thousand_coroutines_get_and_set_on_one_client(make_aio):
    client = make_aio()

    async def one(index):
        key, value = f"k:{index}", b"v" * (index % 50) + str(index).encode()
        await client.set(key, value, ttl=60)
        got = await client.get(key)
        missing = await client.get(f"missing:{index}")
        return got == value and missing is None

    async def main():
        return await asyncio.gather(*(one(index) for index in range(1000)))

    assert asyncio.run(main()) == [True] * 1000


def test_tags_deletes_and_executor_methods(make_aio):
    client = make_aio()

    async def main():
        await client.set("tagged", b"x", ttl=60, tags=["t:a", "t:b"])
        await client.set("plain", b"y")
        assert await client.get("tagged") == b"x"
        await client.invalidate_tags(["t:b"])
        assert await client.get("tagged") is None
        assert await client.delete("plain") is True
        assert await client.delete("plain") is False
        # Through the executor:
        assert await client.incr("n", 3) == 3
        assert await client.get_many(["n", "nothing"]) == [b"3", None]
        assert await client.get_or_set("computed", lambda: b"made") == b"made"
        assert client.stats()["hits"] >= 1

    asyncio.run(main())


def test_sessions_through_the_queue(make_aio):
    store = rcache.aio.SessionStore(make_aio(), "sess:")

    async def main():
        session_id, secret = await store.create({"user": b"ada"}, ttl=60)
        session = await store.load(session_id, secret)
        assert session.fields == {"user": b"ada"}
        assert await store.load(session_id, "0" * 32) is None
        version = await store.save(session_id, secret, {"user": b"grace"}, version=session.version, ttl=60)
        assert version > session.version
        with pytest.raises(rcache.ConflictError, match="version"):
            await store.save(session_id, secret, {"user": b"eve"}, version=session.version, ttl=60)
        assert (await store.load(session_id, secret)).fields == {"user": b"grace"}
        assert await store.touch(session_id, secret, ttl=60) is True
        assert await store.destroy(session_id, secret) is True
        assert await store.destroy(session_id, secret) is False
        assert await store.load(session_id, secret) is None

    asyncio.run(main())


def test_errors_raise_the_rcache_exception_classes(make_aio):
    client = make_aio(max_value_bytes=16)

    async def main():
        # Reported by the engine on a worker thread, carried back in the completion.
        with pytest.raises(rcache.TooLargeError, match="16"):
            await client.set("big", b"x" * 17)
        await client.hash_set("record", {"a": b"1"})
        with pytest.raises(rcache.WrongTypeError):
            await client.get("record")
        with pytest.raises(rcache.InvalidArgumentError, match="tags"):
            await client.set("k", b"v", tags=[f"t{index}" for index in range(rcache.MAX_TAGS + 1)])
        # Refused before anything is submitted.
        with pytest.raises(TypeError):
            await client.set("k", "text is not bytes")
        with pytest.raises(TypeError):
            await client.invalidate_tags("one-tag")
        with pytest.raises(rcache.InvalidArgumentError):
            await client.set("k", b"v", ttl=-5)

    asyncio.run(main())
    with pytest.raises(rcache.InvalidArgumentError):
        rcache.aio.Client("memory://", workers=0)
    with pytest.raises(rcache.InvalidArgumentError):
        rcache.aio.Client("memory://", workers=rcache._lib.QUEUE_MAX_WORKERS + 1)
    with pytest.raises(TypeError):
        rcache.aio.Client("memory://", workers="4")


def test_closing_fails_pending_calls_and_later_ones(private_redis):
    client = rcache.aio.Client(private_redis.url, response_timeout=10, workers=2)

    async def main():
        await client.set("k", b"v")
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            pending = [asyncio.ensure_future(client.get("k")) for _ in range(10)]
            await asyncio.sleep(0.05)
            await client.close()
            results = await asyncio.gather(*pending, return_exceptions=True)
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        assert all(isinstance(result, rcache.ClosedError) for result in results), results
        with pytest.raises(rcache.ClosedError):
            await client.get("k")

    asyncio.run(main())


def test_a_paused_server_does_not_block_the_loop(private_redis):
    """Every call is held by a SIGSTOPped server while another coroutine keeps
    running; once the server resumes, the held calls complete correctly."""
    client = rcache.aio.Client(private_redis.url, response_timeout=600, connect_timeout=600)

    async def main():
        for index in range(50):
            await client.set(f"k:{index}", str(index).encode())
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        threads_before = len(os.listdir("/proc/self/task"))
        try:
            held = [asyncio.ensure_future(client.get(f"k:{index % 50}")) for index in range(1000)]
            await asyncio.sleep(0)
            # 1,000 calls held, and no thread was made for them: the pool was made with the client.
            assert len(os.listdir("/proc/self/task")) - threads_before < 10
            ticks = 0
            while ticks < 100:
                await asyncio.sleep(0.001)
                ticks += 1
            assert not any(call.done() for call in held), "a call finished while the server was stopped"
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        values = await asyncio.gather(*held)
        assert values == [str(index % 50).encode() for index in range(1000)]
        # Everything collected: the descriptor is quiet until the next call finishes.
        assert select.select([client._fd], [], [], 0)[0] == []

    asyncio.run(main())
    client._close()


def test_finished_calls_are_collected_a_batch_per_turn_of_the_loop():
    """However many calls finish at once, the loop runs other callbacks
    between batches of them: collecting does not hold the loop in one go."""
    client = rcache.aio.Client("memory://", workers=1)

    async def main():
        loop = asyncio.get_running_loop()
        calls = [asyncio.ensure_future(client.get(f"k:{index}")) for index in range(1000)]
        last = asyncio.ensure_future(client.set("last", b"1"))
        await asyncio.sleep(0)  # every call submitted
        # One worker runs the calls in submission order: once "last" is
        # stored, all 1,000 gets have finished and wait to be collected.
        # The loop is held here on purpose so that none is collected yet.
        while client.sync.get("last") is None:
            time.sleep(0.001)
        seen = []

        def observe():
            seen.append(sum(call.done() for call in calls))
            if seen[-1] < len(calls):
                loop.call_soon(observe)

        loop.call_soon(observe)
        assert await asyncio.gather(*calls) == [None] * 1000
        await last
        assert any(0 < done < len(calls) for done in seen), seen

    asyncio.run(main())
    client._close()


def test_closing_does_not_block_the_loop_while_an_executor_call_is_held(private_redis):
    """close() waits for executor calls still running without holding the
    loop: other coroutines keep running until the server answers."""
    client = rcache.aio.Client(private_redis.url, response_timeout=20, breaker_threshold=1000)

    async def main():
        await client.set("k", b"v")
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            held = asyncio.ensure_future(client.incr("n"))
            while not client.sync._inflight:  # the executor's thread is inside the library
                await asyncio.sleep(0.001)
            closing = asyncio.ensure_future(client.close())
            ticks = 0
            while ticks < 100:
                await asyncio.sleep(0.001)
                ticks += 1
            assert not closing.done(), "close() returned while an executor call was held"
            assert not held.done()
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        await closing
        assert await held == 1
        assert client.closed and client.sync.closed
        with pytest.raises(rcache.ClosedError):
            await client.get("k")

    asyncio.run(main())


def test_a_paused_server_times_calls_out_as_timeout_errors(private_redis):
    client = rcache.aio.Client(private_redis.url, response_timeout=0.3, breaker_threshold=1000)

    async def main():
        await client.set("k", b"v")
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            results = await asyncio.gather(*(client.get("k") for _ in range(20)), return_exceptions=True)
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        assert all(isinstance(result, rcache.TimeoutError) for result in results), results
        assert await client.get("k") == b"v"

    asyncio.run(main())
    client._close()


def test_a_stopped_server_gives_connection_errors(private_redis):
    client = rcache.aio.Client(private_redis.url, response_timeout=0.5, connect_timeout=0.5)

    async def main():
        await client.set("k", b"v")
        private_redis.kill()
        with pytest.raises(rcache.ConnectionError):
            await client.get("k")

    asyncio.run(main())
    client._close()


def test_a_client_moves_to_the_next_loop_once_its_loop_is_closed(make_aio):
    client = make_aio()
    asyncio.run(client.set("k", b"1"))
    assert asyncio.run(client.get("k")) == b"1"


def test_an_inherited_client_refuses_calls_after_fork(make_aio):
    client = make_aio()
    asyncio.run(client.set("k", b"1"))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            asyncio.run(client.get("k"))
        except rcache.ForkedError:
            code = 0
        except BaseException:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert asyncio.run(client.get("k")) == b"1"
