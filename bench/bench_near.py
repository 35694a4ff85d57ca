#!/usr/bin/env python3
"""Near-cache hits from Python: rcache's from one thread and from 8 threads
sharing one Client, against plain Redis gets and against valkey-glide-sync's
server-assisted client-side cache, in the same run.

    bench_near.py REDIS_URL [--seconds S] [--keys K] [--value-size B] [--threads T]
                            [--client rcache|valkey-glide]

REDIS_URL is a redis://, redis+sentinel:// or redis+cluster:// URL without
query parameters. K keys (default
1000) of B bytes (default 100) are written, then read in turn for S seconds
(default 2) per run with get(), once every key is a near hit:

- rcache (the default): a Client with "?near_cache=..." added, from one
  thread and from T threads (default 8) sharing it; the same through the
  call that releases the interpreter lock (py-near-released, as every get
  went before the fast path); then a plain Client from one thread. Then this script runs itself with --client valkey-glide in a
  process of its own (each client in its own process) and prints the ratios;
- valkey-glide: valkey-glide-sync's GlideClient (GlideClusterClient on a
  Cluster URL; on a Sentinel URL, a GlideClient on the primary the sentinels
  name, as glide has no Sentinel support) with
  ClientSideCache.create(..., server_assisted=True) (RESP3 tracking in BCAST
  mode), from one thread and from T threads sharing it.

Prints a table and one line per run for scripts:
  RESULT label=py-near|py-near-released|py-redis|py-glide-csc op=get threads=N ops=N seconds=S ops_per_sec=R cpu_us_per_op=C
(C: the process's CPU time per get, which a busy machine does not inflate as it does the wall time).
Exit status 0, or 1 if a read missed or a run failed.
"""

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bindings", "python"))

PREFIX = "bench-near-py:"


def run(get, keys, seconds, first=0):
    """(gets, elapsed seconds) reading keys round-robin from `first` for about `seconds`."""
    keys = keys[first:] + keys[:first]
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


def run_threads(get, keys, seconds, threads):
    """(gets, elapsed seconds, process CPU seconds) of `threads` threads sharing `get`, started together."""
    cpu = time.process_time()
    done, elapsed = run_all(get, keys, seconds, threads)
    return done, elapsed, time.process_time() - cpu


def run_all(get, keys, seconds, threads):
    if threads == 1:
        return run(get, keys, seconds)
    results, failures = [], []
    barrier = threading.Barrier(threads)

    def reader(index):
        try:
            barrier.wait()
            results.append(run(get, keys, seconds, index * len(keys) // threads))
        except BaseException as error:  # reported below
            failures.append(error)

    readers = [threading.Thread(target=reader, args=(index,)) for index in range(threads)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    if failures:
        raise SystemExit(f"bench_near.py: a reader failed: {failures[0]!r}")
    return sum(done for done, _ in results), max(elapsed for _, elapsed in results)


def warm(get, keys, near_hits):
    """Reads every key until one whole pass is answered by the near cache."""
    for _ in range(100):
        before = near_hits()
        for key in keys:
            get(key)
        if near_hits() - before == len(keys):
            return
    raise SystemExit("bench_near.py: the near cache did not warm up")


def result(label, threads, ops, seconds, cpu_seconds):
    """Prints a RESULT line; the rate. cpu_us_per_op is the process's CPU time per get: on a
    busy machine it shows the cost of a get where the rate also shows the waits for a CPU."""
    print(f"RESULT label={label} op=get threads={threads} ops={ops} seconds={seconds:.3f} "
          f"ops_per_sec={ops / seconds:.0f} cpu_us_per_op={cpu_seconds * 1e6 / ops:.3f}", flush=True)
    return ops / seconds


def bench_rcache(args, keys, value):
    import rcache

    plain = rcache.Client(args.url, prefix=PREFIX)
    near = rcache.Client(f"{args.url}?near_cache={args.keys * 2}", prefix=PREFIX)
    plain.set_many({key: value for key in keys}, ttl=600)
    warm(near.get, keys, lambda: near.stats()["near_hits"])
    rates = {}
    for threads in (1, args.threads):
        rates[threads] = result("py-near", threads, *run_threads(near.get, keys, args.seconds, threads))
    # The same hits through the usual call (rcache_client_get, which releases
    # and retakes the interpreter lock), as every get went before the fast path.
    near._near = False
    released = {}
    for threads in (1, args.threads):
        released[threads] = result("py-near-released", threads, *run_threads(near.get, keys, args.seconds, threads))
    plain_rate = result("py-redis", 1, *run_threads(plain.get, keys, args.seconds, 1))
    stats = near.stats()
    print(f"rcache {rcache.__version__} (Python {sys.version.split()[0]}), {args.keys} keys of "
          f"{args.value_size} bytes, one Client")
    print(f"  near-cache get, 1 thread        {rates[1]:12.0f} gets/s  {1e6 / rates[1]:8.3f} us/get")
    print(f"  near-cache get, {args.threads:2d} threads      {rates[args.threads]:12.0f} gets/s  "
          f"{rates[args.threads] / rates[1]:8.2f}x 1 thread")
    for threads in (1, args.threads):
        print(f"  same hits, interpreter lock released, {threads} thread{'s' if threads > 1 else ''}: "
              f"{released[threads]:.0f} gets/s (fast path {rates[threads] / released[threads]:.2f}x)")
    print(f"  plain Redis get, 1 thread       {plain_rate:12.0f} gets/s  {1e6 / plain_rate:8.3f} us/get")
    print(f"  near-cache get vs plain get     {rates[1] / plain_rate:12.1f}x")
    print(f"  near cache: {stats['near_hits']} hits, {stats['near_misses']} misses, "
          f"{stats['near_entries']} entries, {stats['near_bytes']} bytes", flush=True)
    plain.clear()
    near.close()
    plain.close()
    return rates


def bench_glide(args, keys, value):
    from importlib.metadata import version

    from glide_sync import (ClientSideCache, GlideClient, GlideClientConfiguration, GlideClusterClient,
                            GlideClusterClientConfiguration, NodeAddress)

    cache = ClientSideCache.create(max_cache_kb=max(1024, args.keys * (args.value_size + 200) // 512),
                                   entry_ttl_ms=0, enable_metrics=True, server_assisted=True)
    scheme, rest = args.url.split("://", 1)
    hosts, _, path = rest.partition("/")
    addresses = [address.rsplit(":", 1) for address in hosts.split(",")]
    if scheme == "redis+cluster":
        config = GlideClusterClientConfiguration([NodeAddress(host, int(port)) for host, port in addresses],
                                                 client_side_cache=cache)
        client = GlideClusterClient.create(config)
        where = "GlideClusterClient"
    else:
        if scheme == "redis+sentinel":
            # glide has no Sentinel support: it connects to the primary the sentinels name.
            service, _, path = path.partition("/")
            addresses = [sentinel_primary(addresses, service)]
            where = "GlideClient on the primary the sentinels name"
        else:
            where = "GlideClient"
        host, port = addresses[0]
        database = int(path or 0)
        config = GlideClientConfiguration([NodeAddress(host, int(port))], database_id=database,
                                          client_side_cache=cache)
        client = GlideClient.create(config)
    prefixed = [PREFIX.encode() + key for key in keys]
    client.mset({key: value for key in prefixed})
    # Each key read once fills the cache; glide exposes no per-read hit flag, so
    # the warm-up reads every key a few times, as rcache's does until all hit.
    for _ in range(3):
        for key in prefixed:
            client.get(key)
    rates = {}
    for threads in (1, args.threads):
        rates[threads] = result("py-glide-csc", threads, *run_threads(client.get, prefixed, args.seconds, threads))
    print(f"valkey-glide-sync {version('valkey-glide-sync')} {where}, ClientSideCache(server_assisted=True), "
          f"{args.keys} keys of {args.value_size} bytes, one client")
    print(f"  client-side-cache get, 1 thread {rates[1]:12.0f} gets/s  {1e6 / rates[1]:8.3f} us/get")
    print(f"  client-side-cache get, {args.threads:2d} thr.  {rates[args.threads]:12.0f} gets/s  "
          f"{rates[args.threads] / rates[1]:8.2f}x 1 thread")
    print(f"  client-side cache: hit rate {client.get_cache_hit_rate():.4f}, "
          f"{client.get_cache_entry_count()} entries", flush=True)
    client.delete(prefixed)
    client.close()
    return rates


def sentinel_primary(sentinels, service):
    """(host, port) of the primary the first answering sentinel names for `service`."""
    request = f"*3\r\n$8\r\nSENTINEL\r\n$23\r\nGET-MASTER-ADDR-BY-NAME\r\n${len(service)}\r\n{service}\r\n"
    for host, port in sentinels:
        try:
            with socket.create_connection((host, int(port)), timeout=2) as connection:
                connection.sendall(request.encode())
                reply = connection.recv(4096).decode().split("\r\n")
        except OSError:
            continue
        if reply[0] == "*2":  # *2, $len, host, $len, port
            return reply[2], reply[4]
    raise SystemExit(f"bench_near.py: no sentinel named a primary for {service}")


def glide_in_its_own_process(args):
    """valkey-glide-sync's figures from `bench_near.py --client valkey-glide`
    run as a child process (its RESULT lines pass through); {} if it cannot run."""
    command = [sys.executable, os.path.abspath(__file__), args.url, "--client", "valkey-glide",
               "--seconds", str(args.seconds), "--keys", str(args.keys), "--value-size", str(args.value_size),
               "--threads", str(args.threads)]
    child = subprocess.run(command, capture_output=True, text=True, timeout=300)
    sys.stdout.write(child.stdout)
    if child.returncode != 0:
        print(f"  valkey-glide-sync not measured: {child.stderr.strip().splitlines()[-1:]}", flush=True)
        return {}
    rates = {}
    for line in child.stdout.splitlines():
        if line.startswith("RESULT label=py-glide-csc"):
            fields = dict(field.split("=", 1) for field in line.split()[1:])
            rates[int(fields["threads"])] = float(fields["ops_per_sec"])
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--client", choices=["rcache", "valkey-glide"], default="rcache")
    args = parser.parse_args()
    if "?" in args.url:
        raise SystemExit("bench_near.py: give the URL without query parameters")
    keys = [f"bench:near:{index:07d}".encode() for index in range(args.keys)]
    value = b"v" * args.value_size
    if args.client == "valkey-glide":
        bench_glide(args, keys, value)
        return
    rates = bench_rcache(args, keys, value)
    glide = glide_in_its_own_process(args)
    for threads in sorted(glide):
        print(f"  rcache near cache vs valkey-glide-sync's client-side cache, {threads} thread"
              f"{'s' if threads > 1 else ''}: {rates[threads] / glide[threads]:.1f}x")


if __name__ == "__main__":
    main()
