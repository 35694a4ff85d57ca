#!/usr/bin/env python3
"""Near-cache hits against plain Redis gets, from one Python thread, in the
same run, through rcache's ctypes bindings (bindings/python/rcache).

    bench_near.py REDIS_URL [--seconds S] [--keys K] [--value-size B]

REDIS_URL is a plain redis:// URL without query parameters. Two Clients are
opened on it: one plain, one with "?near_cache=..." added. K keys (default
1000) of B bytes (default 100) are written, the near cache is warmed until
every key is a near hit, then each Client reads the keys in turn for S
seconds (default 2) with Client.get. Prints a table, the ratio, and one line
per run for scripts, as bench_near.c does:
  RESULT label=py-near|py-redis op=get threads=1 ops=N seconds=S ops_per_sec=R
Exit status 0, or 1 if a read missed.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bindings", "python"))

import rcache  # noqa: E402


def run(client, keys, seconds):
    """(gets, elapsed seconds) reading keys round-robin for about `seconds`."""
    get = client.get
    done = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        for key in keys:
            if get(key) is None:
                raise SystemExit(f"bench_near.py: {key!r} missed")
        done += len(keys)
        now = time.perf_counter()
        if now >= end:
            return done, now - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--value-size", type=int, default=100)
    args = parser.parse_args()
    if "?" in args.url:
        raise SystemExit("bench_near.py: give the URL without query parameters")

    prefix = "bench-near-py:"
    plain = rcache.Client(args.url, prefix=prefix)
    near = rcache.Client(f"{args.url}?near_cache={args.keys * 2}", prefix=prefix)
    keys = [f"bench:near:{index:07d}".encode() for index in range(args.keys)]
    value = b"v" * args.value_size
    plain.set_many({key: value for key in keys}, ttl=600)

    for _ in range(100):
        before = near.stats()["near_hits"]
        run(near, keys, 0)
        if near.stats()["near_hits"] - before == len(keys):
            break
    else:
        raise SystemExit("bench_near.py: the near cache did not warm up")

    near_ops, near_seconds = run(near, keys, args.seconds)
    plain_ops, plain_seconds = run(plain, keys, args.seconds)
    near_rate, plain_rate = near_ops / near_seconds, plain_ops / plain_seconds
    stats = near.stats()
    print(f"rcache {rcache.__version__} (Python {sys.version.split()[0]}), one Python thread, "
          f"{args.keys} keys of {args.value_size} bytes")
    print(f"  near-cache get   {near_rate:12.0f} gets/s  {1e6 / near_rate:8.3f} us/get")
    print(f"  plain Redis get  {plain_rate:12.0f} gets/s  {1e6 / plain_rate:8.3f} us/get")
    print(f"  ratio            {near_rate / plain_rate:12.1f}x")
    print(f"  near cache: {stats['near_hits']} hits, {stats['near_misses']} misses, "
          f"{stats['near_entries']} entries, {stats['near_bytes']} bytes")
    print(f"RESULT label=py-near op=get threads=1 ops={near_ops} seconds={near_seconds:.3f} ops_per_sec={near_rate:.0f}")
    print(f"RESULT label=py-redis op=get threads=1 ops={plain_ops} seconds={plain_seconds:.3f} "
          f"ops_per_sec={plain_rate:.0f}")
    plain.clear()
    near.close()
    plain.close()


if __name__ == "__main__":
    main()
