"""Fixtures: a private redis-server per session, and clients on both backends.

Nothing here touches any other Redis: servers are started on free loopback
ports in temporary directories and stopped at the end.
"""

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINDINGS = ROOT / "bindings" / "python"
sys.path.insert(0, str(BINDINGS))

import rcache  # noqa: E402

REDIS_SERVER = shutil.which("redis-server")


def _die_with_parent():
    """Runs in the forked redis-server before exec: Linux sends it SIGTERM
    if the test process dies, so a killed test run leaves no server behind."""
    try:
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


def free_port():
    """A loopback TCP port nothing listens on (at the time of the call)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout, interval=0.01, message="condition"):
    """Polls predicate until it is true; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{message} not reached within {timeout} s")
        time.sleep(interval)


def _encode_command(args):
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class _Reader:
    def __init__(self, sock):
        self.file = sock.makefile("rb")

    def reply(self):
        line = self.file.readline()
        if not line:
            raise OSError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)
            return data[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.reply() for _ in range(size)]
        raise RuntimeError(f"unexpected reply {line!r}")


class RedisServer:
    """A private redis-server on a fixed loopback port; start/stop/kill let
    tests inject real faults, and start() again restarts it on the same port."""

    def __init__(self, workdir, port=None, args=(), config=None):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.process = None
        self.args = [str(arg) for arg in args]  # extra redis-server arguments
        self.config = config  # a configuration file to start from (sentinels)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=10):
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [REDIS_SERVER]
            + ([str(self.config)] if self.config else [])
            + [
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--logfile", str(self.workdir / "redis.log"),
            ]
            + self.args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                log = (self.workdir / "redis.log").read_text(errors="replace")
                self.process = None
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{log[-2000:]}")
            try:
                if self.command("PING") == "PONG":
                    return self
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.02)

    def stop(self):
        """Graceful shutdown (SIGTERM)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def kill(self):
        """Abrupt death (SIGKILL)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def command(self, *args):
        """Sends one command over a fresh connection and returns the parsed reply
        (RuntimeError for an error reply)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(_encode_command(args))
            return _Reader(sock).reply()


def _start_server(base):
    workdir = tempfile.mkdtemp(prefix="rcache-redis-", dir=base)
    for _ in range(5):  # another process may grab the free port first
        server = RedisServer(workdir)
        try:
            return server.start()
        except RuntimeError:
            continue
    raise RuntimeError("could not start a private redis-server")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if REDIS_SERVER is None:
        pytest.skip("redis-server not installed")
    server = _start_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own, for tests that kill or restart it."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server not installed")
    server = _start_server(tmp_path)
    yield server
    server.kill()


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    return request.param


@pytest.fixture
def url(request, backend):
    """The backend URL: memory:// or the session's private Redis."""
    if backend == "memory":
        return "memory://"
    return request.getfixturevalue("redis_server").url


@pytest.fixture
def prefix():
    """A key prefix unique to this test, so tests sharing Redis don't interfere."""
    return f"t:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def near_client(redis_server, prefix):
    """A Client with a near cache of 1,000 entries on the private server, under the test's prefix."""
    with rcache.Client(f"{redis_server.url}?near_cache=1000", prefix=prefix) as client:
        yield client


@pytest.fixture
def other_client(redis_server, prefix):
    """A Client without a near cache on the same server and prefix: another process's writes."""
    with rcache.Client(redis_server.url, prefix=prefix) as client:
        yield client


@pytest.fixture
def make_client(url, prefix):
    """Factory of Clients on the test's backend, with its prefix; closed at teardown."""
    clients = []

    def make(url=url, **options):
        options.setdefault("prefix", prefix)
        client = rcache.Client(url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()
