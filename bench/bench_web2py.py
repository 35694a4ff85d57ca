#!/usr/bin/env python3
"""``cache(key, f, 300)`` hits and misses per second from one thread:
rcache.web2py.redis_cache against the old web2py module's wire behaviour
(redis-py + pickle, GET + TTL per hit; tests/python/legacy_web2py.py), on the
same Redis in the same run.

    bench_web2py.py [--url redis://127.0.0.1:PORT/0] [--seconds 2] [--rounds 3]

The URL defaults to $RCACHE_TEST_REDIS_URL (tests/with-redis.sh starts a
private server and sets it). Hits read one key cached before the run; misses
use a new key per call. Each figure is the median of --rounds runs; the ratio
is rcache over the old module. Within each round the implementations run
one after the other, so load from elsewhere on the machine falls on all of them. Extra --variant URL suffixes (for example
"?near_cache=10000") add rcache runs with those URL options.
"""

import argparse
import os
import re
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

VALUE = {"id": 42, "title": "a cached row", "tags": ["a", "b"], "body": "x" * 200}


def rate(cache, key_of, seconds):
    """Calls per second of cache(key_of(i), f, 300) for about `seconds`."""
    f = lambda: VALUE  # noqa: E731
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(100):
            cache(key_of(calls), f, 300)
            calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - started)


def measure(caches, seconds, rounds):
    """{label: (hits/s, misses/s)} as medians over rounds; within a round the
    implementations run one after the other, so a busy moment of the
    machine falls on all of them alike."""
    run = uuid.uuid4().hex[:8]
    for cache in caches.values():
        cache("hot", lambda: VALUE, 300)
    hits = {label: [] for label in caches}
    misses = {label: [] for label in caches}
    for r in range(rounds):
        for label, cache in caches.items():
            hits[label].append(rate(cache, lambda i: "hot", seconds))
        for label, cache in caches.items():
            misses[label].append(rate(cache, lambda i, r=r: f"miss:{run}:{r}:{i}", seconds))
    return {label: (statistics.median(hits[label]), statistics.median(misses[label])) for label in caches}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("RCACHE_TEST_REDIS_URL"))
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", action="append", default=[], help="URL suffix of an extra rcache run")
    args = parser.parse_args()
    if not args.url or not args.url.startswith("redis://"):
        raise SystemExit("bench_web2py.py: give --url redis://host:port/db or set RCACHE_TEST_REDIS_URL")

    import redis

    import legacy_web2py
    from rcache.web2py import redis_cache, redis_utils

    app = f"bench{uuid.uuid4().hex[:6]}"
    legacy_client = redis.Redis.from_url(args.url)
    caches = {"old module (redis-py + pickle)": legacy_web2py.LegacyCache(legacy_client, app)}
    for suffix in [""] + args.variant:
        connection = redis_utils.Connection(url=args.url + suffix)
        label = "rcache.web2py" + (f" ({suffix.lstrip('?')})" if suffix else "")
        caches[label] = redis_cache.RedisClient(connection, application=f"{app}r{len(caches)}")
    figures = measure(caches, args.seconds, args.rounds)
    rows = [(label, *figures[label]) for label in caches]
    for label, cache in caches.items():
        if isinstance(cache, redis_cache.RedisClient):
            cache.clear()
    legacy_client.delete(*[key for key in legacy_client.scan_iter(f"w2p:*{app}*")] or ["-"])

    import redis.utils

    print(f"cache(key, f, 300) from one thread, medians of {args.rounds} runs of {args.seconds:g} s "
          f"(hiredis={redis.utils.HIREDIS_AVAILABLE})")
    print()
    print("| implementation | hits/s | misses/s | hits vs old | misses vs old |")
    print("|---|---:|---:|---:|---:|")
    base_hits, base_misses = rows[0][1], rows[0][2]
    for label, hits, misses in rows:
        print(f"| {label} | {hits:,.0f} | {misses:,.0f} | {hits / base_hits:.2f}x | {misses / base_misses:.2f}x |")
    for label, hits, misses in rows:
        slug = re.sub(r"\W+", "-", label).strip("-")
        print(f"RESULT label={slug} hits_per_sec={hits:.0f} misses_per_sec={misses:.0f} "
              f"hits_ratio={hits / base_hits:.2f} misses_ratio={misses / base_misses:.2f}")


if __name__ == "__main__":
    main()
