"""python -m rcache: the operator's command line, run as a separate process.

A memory:// store lives in one process, so the CLI always sees it empty:
on memory:// these tests check usage, exit codes and the output's shape;
on the private Redis they check what the commands do to the data.
"""

import json
import os
import subprocess
import sys
import time

import pytest

import rcache
import rcache.cli
from conftest import BINDINGS, free_port


def run(*args, env=None, input=None):
    """python -m rcache with args; the CompletedProcess (stdout as bytes)."""
    environment = {name: value for name, value in os.environ.items() if name not in ("RCACHE_URL", "PYTHONPATH")}
    environment["PYTHONPATH"] = str(BINDINGS)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rcache", *args], capture_output=True, env=environment, input=input, timeout=60
    )


def run_json(*args):
    result = run(*args, "--json")
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else None


def runner(url, prefix):
    """run() with url and prefix given, and json_output=True for run_json()."""

    def cli_run(*args, json_output=False):
        full = ("--url", url, "--prefix", prefix, *args)
        if json_output:
            return run_json(*full)
        return run(*full)

    return cli_run


@pytest.fixture
def cli(url, prefix):
    """The CLI on the test's backend (memory:// and Redis), with its prefix."""
    return runner(url, prefix)


@pytest.fixture
def redis_cli(redis_server, prefix):
    """The CLI on the private Redis, with the test's prefix."""
    return runner(redis_server.url, prefix)


# --- usage -------------------------------------------------------------------


def test_help_lists_every_command():
    result = run("--help")
    assert result.returncode == 0
    for command in ("stats", "get", "invalidate-tag", "clear", "sessions"):
        assert command.encode() in result.stdout
    assert b"python -m rcache" in result.stdout
    for command in (["stats"], ["get"], ["invalidate-tag"], ["clear"], ["sessions"], ["sessions", "purge"]):
        assert run(*command, "--help").returncode == 0, command


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.decode().strip() == f"rcache {rcache.__version__}"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["get"],
        ["invalidate-tag"],
        ["sessions"],
        ["sessions", "purge"],
        ["sessions", "purge", "--idle", "0"],
        ["sessions", "purge", "--idle", "soon"],
        ["stats", "--depth", "0"],
        ["--timeout", "-1", "stats"],
        ["clear", "--progress", "sometimes"],
    ],
)
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.returncode == 2, result
    assert b"usage:" in result.stderr


def test_bad_url_exits_2_with_the_reason():
    result = run("--url", "bogus://x", "stats")
    assert result.returncode == 2
    assert b"cannot use --url bogus://x" in result.stderr and b"unknown URL scheme" in result.stderr


def test_unreachable_server_exits_2_without_the_password():
    port = free_port()
    result = run("--url", f"redis://user:hunter2@127.0.0.1:{port}/0", "--timeout", "0.5", "stats")
    assert result.returncode == 2
    assert b"cannot connect to" in result.stderr and f":{port}".encode() in result.stderr
    assert b"hunter2" not in result.stderr


def test_url_comes_from_rcache_url(redis_server, prefix):
    with rcache.Client(redis_server.url, prefix=prefix) as client:
        client.set("k", b"from the environment")
    result = run("--prefix", prefix, "get", "k", env={"RCACHE_URL": redis_server.url})
    assert result.returncode == 0 and result.stdout == b"from the environment\n"
    assert run("--prefix", prefix, "get", "k").returncode == 1  # memory:// without RCACHE_URL


def test_options_may_follow_the_command(redis_server, prefix):
    with rcache.Client(redis_server.url, prefix=prefix) as client:
        client.set("k", b"v")
    result = run("get", "k", "--url", redis_server.url, "--prefix", prefix, "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["value"] == "v"


# --- stats -------------------------------------------------------------------


def test_stats_shape(cli, backend):
    code, data = cli("stats", json_output=True)
    assert code == 0
    assert data["backend"] == backend
    assert set(data) >= {"url", "prefix", "client", "server", "keys", "namespaces", "namespace_memory", "note"}
    assert set(data["client"]) == set(rcache.Client().stats())
    assert isinstance(data["server"]["used_memory"], int)
    assert data["namespace_memory"] is None and "MEMORY USAGE" in data["note"]
    if backend == "redis":
        assert data["server"]["redis_version"] and "keyspace" in data["server"]
    else:
        assert data["keys"] == 0 and data["namespaces"] == []
    text = cli("stats")
    assert text.returncode == 0 and b"keys under the prefix" in text.stdout


def test_stats_counts_keys_per_namespace(redis_server, prefix, redis_cli):
    with rcache.Client(redis_server.url, prefix=prefix) as client:
        client.set_many({f"user:{i}": b"u" for i in range(5)})
        client.set_many({f"w2p:cache:app:{i}": b"c" for i in range(3)})
        client.set("lonely", b"x")
        client.set("tagged", b"x", tags=["t"])  # its tag key is rcache's own: not listed
        rcache.SessionStore(client, "sess:").create({"u": b"1"})
    code, data = redis_cli("stats", json_output=True)
    assert code == 0 and data["keys"] == 11
    assert data["namespaces"] == [
        {"namespace": "", "keys": 2},
        {"namespace": "sess:", "keys": 1},
        {"namespace": "user:", "keys": 5},
        {"namespace": "w2p:", "keys": 3},
    ]
    code, data = redis_cli("stats", "--depth", "3", json_output=True)
    assert {entry["namespace"]: entry["keys"] for entry in data["namespaces"]}["w2p:cache:app:"] == 3
    text = redis_cli("stats").stdout.decode()
    assert "user:" in text and "(none)" in text


# --- get -----------------------------------------------------------------------


def test_get_a_missing_key_exits_1(cli):
    result = cli("get", "nothing-here")
    assert result.returncode == 1 and result.stdout == b""
    assert b"nothing-here: not found" in result.stderr
    assert cli("get", "nothing-here", json_output=True) == (1, {"key": "nothing-here", "found": False})


def test_get_prints_values(redis_server, prefix, redis_cli):
    with rcache.Client(redis_server.url, prefix=prefix) as client:
        client.set("text", "héllo".encode(), ttl=100)
        client.set("binary", b"\xff\x00\x01", ttl=rcache.NO_EXPIRY)
    assert redis_cli("get", "text").stdout.decode() == "héllo\n"
    assert redis_cli("get", "binary", "--raw").stdout == b"\xff\x00\x01"
    code, data = redis_cli("get", "text", json_output=True)
    assert code == 0 and data["value"] == "héllo" and data["bytes"] == 6 and 90 < data["ttl"] <= 100
    code, data = redis_cli("get", "binary", json_output=True)
    assert data["value_base64"] == "/wAB" and data["ttl"] is None and data["type"] == "value"


def test_get_of_a_record_prints_its_fields(redis_server, prefix, redis_cli):
    with rcache.Client(redis_server.url, prefix=prefix) as client:
        client.hash_set("user:1", {"name": "Ada", "visits": 3}, ttl=60)
    assert redis_cli("get", "user:1").stdout.decode().splitlines() == ["name: Ada", "visits: 3"]
    code, data = redis_cli("get", "user:1", json_output=True)
    assert code == 0 and data["type"] == "record" and data["fields"] == {"name": "Ada", "visits": "3"}
    result = redis_cli("get", "user:1", "--raw")
    assert result.returncode == 2 and b"hash record" in result.stderr


# --- invalidate-tag, clear -------------------------------------------------------


def test_invalidate_tag(url, prefix, cli, backend):
    with rcache.Client(url, prefix=prefix) as client:
        client.set("a", b"1", tags=["t1"])
        client.set("b", b"2", tags=["t2"])
        client.set("c", b"3", tags=["t3"])
        code, data = cli("invalidate-tag", "t1", "t2", json_output=True)
        assert code == 0 and data == {"invalidated": ["t1", "t2"]}
        if backend == "redis":  # memory:// is the CLI process's own store
            assert client.get_many(["a", "b", "c"]) == [None, None, b"3"]
    assert cli("invalidate-tag", "t3").stdout == b"invalidated 1 tag(s): t3\n"


def test_clear_by_pattern_stays_in_the_namespace(redis_server, prefix, redis_cli):
    other = prefix[:-1] + "-other:"  # a sibling namespace, not inside this one
    with rcache.Client(redis_server.url, prefix=prefix) as client, rcache.Client(redis_server.url, prefix=other) as neighbour:
        client.set_many({"user:1": b"a", "user:2": b"b", "page:1": b"c"})
        neighbour.set("user:1", b"kept")
        code, data = redis_cli("clear", "--pattern", "user:*", json_output=True)
        assert code == 0 and data == {"deleted": 2, "pattern": "user:*"}
        assert client.keys() == [b"page:1"]
        assert neighbour.get("user:1") == b"kept"


def test_clear_everything_needs_yes(url, prefix, cli, backend):
    with rcache.Client(url, prefix=prefix) as client:
        client.set("k", b"v", tags=["t"])
        result = cli("clear")
        assert result.returncode == 2 and b"--yes" in result.stderr
        if backend == "redis":
            assert client.get("k") == b"v"
        code, data = cli("clear", "--yes", json_output=True)
        assert code == 0 and data["pattern"] is None
        if backend == "redis":
            assert data["deleted"] == 2  # the entry and its tag key
            assert client.get("k") is None and client.keys() == []


def test_clear_progress_bar(redis_server, prefix, redis_cli):
    count = rcache.cli.PROGRESS_THRESHOLD + 2000
    with rcache.Client(redis_server.url, prefix=prefix) as client:
        client.set_many({f"bulk:{i}": b"x" for i in range(count)})
        client.set("other", b"kept")
        result = redis_cli("clear", "--pattern", "bulk:*", "--progress", "always")
        assert result.returncode == 0 and result.stdout == f"deleted {count} key(s)\n".encode()
        assert f"100%  {count:,}/{count:,}".encode() in result.stderr
        assert client.keys() == [b"other"]
        # Not a terminal (auto) or never: no bar.
        client.set_many({f"bulk:{i}": b"x" for i in range(count)})
        assert redis_cli("clear", "--pattern", "bulk:*").stderr == b""
        client.set_many({f"bulk:{i}": b"x" for i in range(10)})
        assert redis_cli("clear", "--pattern", "bulk:*", "--progress", "always").stderr == b""  # too few to bother


# --- sessions ------------------------------------------------------------------


def test_sessions_purge(url, prefix, cli, backend):
    with rcache.Client(url, prefix=prefix) as client:
        store = rcache.SessionStore(client, "web:")
        others = rcache.SessionStore(client, "api:")
        idle = [store.create({"u": b"1"}, ttl=60) for _ in range(3)]
        kept_elsewhere = others.create({"u": b"2"}, ttl=60)
        time.sleep(1.5)
        # fresh stays younger than the idle time however slowly the CLI starts (up to 1 s).
        fresh = store.create({"u": b"3"}, ttl=60)
        code, data = cli("sessions", "purge", "--idle", "1", "--namespace", "web:", json_output=True)
        assert code == 0 and data["namespace"] == "web:" and data["idle"] == 1
        if backend == "redis":
            assert data["purged"] == 3
            assert [store.load(*session) for session in idle] == [None, None, None]
            assert store.load(*fresh) is not None and others.load(*kept_elsewhere) is not None
        else:
            assert data["purged"] == 0
    text = cli("sessions", "purge", "--idle", "60")
    assert text.returncode == 0 and b"purged 0 session(s)" in text.stdout and b"'sess:'" in text.stdout
