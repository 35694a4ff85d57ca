"""redis+cluster:// and redis+sentinel:// from Python: a private 3-primary
Cluster and a primary, a replica and one sentinel, started for this module."""

import shutil
import subprocess
import time

import pytest

import rcache
from conftest import REDIS_SERVER, RedisServer, free_port, wait_until

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None or shutil.which("redis-cli") is None, reason="redis-server and redis-cli needed"
)


def _text(reply):
    return reply.decode() if isinstance(reply, bytes) else reply


def _info(server, section):
    text = _text(server.command("INFO", section))
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    nodes = []
    try:
        for index in range(3):
            node = RedisServer(
                tmp_path_factory.mktemp(f"cluster{index}"),
                args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                      "--cluster-node-timeout", "1000", "--cluster-port", free_port()],
            )
            nodes.append(node.start())
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{node.port}" for node in nodes],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: all("cluster_state:ok" in _text(node.command("CLUSTER", "INFO")) for node in nodes),
            30, message="cluster ok",
        )
        yield nodes
    finally:
        for node in nodes:
            node.kill()


@pytest.fixture(scope="module")
def sentinel_group(tmp_path_factory):
    servers = []
    try:
        primary = RedisServer(tmp_path_factory.mktemp("primary")).start()
        servers.append(primary)
        replica = RedisServer(tmp_path_factory.mktemp("replica"), args=["--replicaof", "127.0.0.1", primary.port]).start()
        servers.append(replica)
        wait_until(lambda: _info(replica, "replication").get("master_link_status") == "up", 10, message="replica in sync")
        directory = tmp_path_factory.mktemp("sentinel")
        config = directory / "sentinel.conf"
        config.write_text(
            f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 3000\n"
        )
        sentinel = RedisServer(directory, args=["--sentinel"], config=config).start()
        servers.append(sentinel)

        def replica_ready():
            # Known, connected and in sync, as a failover needs it.
            for fields in sentinel.command("SENTINEL", "REPLICAS", "mymaster"):
                found = dict(zip(map(_text, fields[::2]), map(_text, fields[1::2])))
                if found.get("flags") == "slave" and found.get("master-link-status") == "ok":
                    return True
            return False

        wait_until(replica_ready, 20, message="sentinel sees the replica in sync")
        yield primary, replica, sentinel
    finally:
        for server in servers:
            server.kill()


def test_a_cluster_url_spreads_keys_over_every_primary(cluster, prefix):
    url = f"redis+cluster://127.0.0.1:{cluster[0].port},127.0.0.1:{cluster[1].port}"
    with rcache.Client(url, prefix=prefix) as client:
        keys = [f"k{index}" for index in range(60)]
        client.set_many({key: key.encode() for key in keys}, ttl=60)
        assert client.get_many(keys) == [key.encode() for key in keys]
        assert all(int(_text(node.command("DBSIZE"))) > 0 for node in cluster), "every primary holds keys"

        client.set("tagged", b"v", ttl=60, tags=["t"])
        assert client.get("tagged") == b"v"
        client.invalidate_tags(["t"])
        assert client.get("tagged") is None

        assert client.get_or_set("computed", lambda: b"once", ttl=60) == b"once"
        assert client.get_or_set("computed", lambda: b"twice", ttl=60) == b"once"
        assert client.incr("n", ttl=60) == 1
        client.hash_set("record", {"a": 1}, ttl=60)
        assert client.hash_get("record") == {b"a": b"1"}
        sessions = rcache.SessionStore(client, "sess:")
        session_id, secret = sessions.create({"user": b"ada"}, ttl=60)
        assert sessions.load(session_id, secret).fields == {"user": b"ada"}

        assert len(client.keys("k*")) == 60
        info = client.server_info()
        assert info["cluster_primaries"] == 3
        assert info["db0"]["keys"] >= 60
        assert client.clear() >= 60
        assert client.keys() == []


def test_a_sentinel_url_follows_a_failover(sentinel_group, prefix):
    primary, replica, sentinel = sentinel_group
    with rcache.Client(f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0", prefix=prefix) as client:
        client.set("k", b"before", ttl=60)
        assert _text(primary.command("GET", f"{prefix}k")) == "before", "written on the primary"

        sentinel.command("SENTINEL", "FAILOVER", "mymaster")
        # Until the sentinel announces the new primary (+switch-master), the
        # old one still takes writes, as with any Sentinel client; after it,
        # the client's watcher switches at once.
        wait_until(
            lambda: _text(sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")[1]) == str(replica.port),
            20, message="the sentinel names the new primary",
        )
        time.sleep(0.3)

        def write_lands():
            try:
                client.set("k", b"after", ttl=60)
                return True
            except (rcache.ConnectionError, rcache.TimeoutError, rcache.RCacheError):
                time.sleep(0.05)
                return False

        wait_until(write_lands, 20, message="a write after the failover")
        assert _text(replica.command("GET", f"{prefix}k")) == "after", "written on the new primary"
        assert client.get("k") == b"after"
