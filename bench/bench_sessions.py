"""Session throughput from Python against a Redis server, beside raw get/set
in the same run, and the round trips each call makes (not a test: prints figures).

    tests/with-redis.sh python3 bench/bench_sessions.py
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))

import rcache  # noqa: E402

URL = os.environ.get("RCACHE_TEST_REDIS_URL") or (sys.argv[1] if len(sys.argv) > 1 else None)
PORT = int(URL.rsplit(":", 1)[1].split("/")[0])
SECONDS = 1.0


def requests_per_call(operation, calls=200):
    """Requests the client sent per call, counted with MONITOR: commands a
    script runs inside the server are marked "lua" there and left out."""
    with socket.create_connection(("127.0.0.1", PORT)) as monitor:
        monitor.sendall(b"MONITOR\r\n")
        assert monitor.recv(5) == b"+OK\r\n"
        for _ in range(calls):
            operation()
        marker = b"rcache-bench-end"
        with socket.create_connection(("127.0.0.1", PORT)) as other:
            other.sendall(b"ECHO " + marker + b"\r\n")
            other.recv(100)
        data = b""
        while marker not in data:
            data += monitor.recv(1 << 20)
    lines = [line for line in data.split(b"\r\n") if line.startswith(b"+") and b"lua]" not in line]
    # The ECHO that marks the end is not the operation's.
    return (len(lines) - 1) / calls


def rate(operation):
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        operation()
        count += 1
    return count / (time.perf_counter() - started)


def main():
    with rcache.Client(URL, prefix="bench-sessions:") as client:
        store = rcache.SessionStore(client)
        session_id, secret = store.create({"session_data": b"x" * 100, "client_ip": b"127.0.0.1"}, ttl=3600)
        client.set("raw", b"x" * 100, ttl=3600)
        version = [store.load(session_id, secret).version]

        def save():
            version[0] = store.save(session_id, secret, {"session_data": b"y" * 100}, version=version[0], ttl=3600)

        operations = {
            "raw get (100 B)": lambda: client.get("raw"),
            "raw set (100 B)": lambda: client.set("raw", b"x" * 100, ttl=3600),
            "session create": lambda: store.create({"session_data": b"x" * 100}, ttl=60),
            "session load": lambda: store.load(session_id, secret),
            "session load + slide": lambda: store.load(session_id, secret, slide=3600),
            "session save (versioned)": save,
        }
        print(f"## Sessions from Python, 1 thread ({URL})\n")
        print("| operation | ops/s | requests (round trips) per call |")
        print("|---|---:|---:|")
        for name, operation in operations.items():
            print(f"| {name} | {rate(operation):,.0f} | {requests_per_call(operation):.2f} |")
        client.clear()


if __name__ == "__main__":
    main()
