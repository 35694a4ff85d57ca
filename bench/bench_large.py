#!/usr/bin/env python3
"""How long a set and a get of a large value take through rcache, against
redis-py on the same server in the same run, to choose response_timeout for
the value sizes an application stores (see docs/limits.md).

    bench_large.py [--url redis://127.0.0.1:PORT/0] [--sizes-mib 1,16,64,256] [--repeat 3]

Without --url it starts a private redis-server on a free loopback port. For
each size it prints the median wall time of --repeat sets and gets, the
transfer rate, and rcache's time as a ratio of redis-py's (the baseline):
  RESULT size_mib=N op=set|get rcache_ms=A redis_py_ms=B ratio=R mib_per_sec=S
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bindings", "python"))

import rcache  # noqa: E402
import redis  # noqa: E402


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server():
    port = free_port()
    folder = tempfile.mkdtemp(prefix="bench-large-")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder],
        stdout=subprocess.DEVNULL,
    )
    probe = redis.Redis(port=port)
    for _ in range(100):
        try:
            probe.ping()
            return server, f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.05)
    server.kill()
    sys.exit("redis-server did not start")


def median_ms(call, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--sizes-mib", default="1,16,64,256")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        server, url = start_server()
    try:
        client = rcache.Client(url, response_timeout=120, max_value_bytes=512 * 1024 * 1024)
        baseline = redis.Redis.from_url(url, socket_timeout=120)
        print(f"{'MiB':>5} {'op':>4} {'rcache ms':>10} {'redis-py ms':>12} {'ratio':>6} {'MiB/s':>7}")
        for size in [int(text) for text in args.sizes_mib.split(",")]:
            value = b"x" * (size * 1024 * 1024)
            ours = {
                "set": median_ms(lambda: client.set("bench:large", value), args.repeat),
                "get": median_ms(lambda: client.get("bench:large"), args.repeat),
            }
            theirs = {
                "set": median_ms(lambda: baseline.set("bench:large", value), args.repeat),
                "get": median_ms(lambda: baseline.get("bench:large"), args.repeat),
            }
            for op in ("set", "get"):
                rate = size / (ours[op] / 1000)
                ratio = ours[op] / theirs[op]
                print(f"{size:>5} {op:>4} {ours[op]:>10.1f} {theirs[op]:>12.1f} {ratio:>6.2f} {rate:>7.0f}")
                print(
                    f"RESULT size_mib={size} op={op} rcache_ms={ours[op]:.1f} redis_py_ms={theirs[op]:.1f} "
                    f"ratio={ratio:.2f} mib_per_sec={rate:.0f}"
                )
        client.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
