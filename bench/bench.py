#!/usr/bin/env python3
"""Throughput and latency of get/set from Python: rcache's ctypes bindings
(bindings/python/rcache), redis-py or valkey-glide-sync, from 1 or more threads
sharing one client.

    bench.py --client rcache       --url redis://127.0.0.1:PORT/0 [options]
    bench.py --client rcache       --url memory://                [options]
    bench.py --client redis-py     --url redis://127.0.0.1:PORT/0 [options]
    bench.py --client valkey-glide --url redis://127.0.0.1:PORT/0 [options]

Each (op, thread count) pair is one run, bounded by --seconds of wall time and
by --max-ops operations in total, whichever comes first. Every operation is
timed with time.perf_counter_ns() into a per-thread list; the lists are merged
and sorted for p50/p99. Keys "bench:key:NNNNNNNNN" over --keys keys are all
written before the first run so that every GET hits. redis-py uses one
redis.Redis shared by all threads (its connection pool gives each thread a
connection); rcache uses one rcache.Client and valkey-glide-sync one
GlideClient (one multiplexed connection), shared by all threads.

Besides a readable table it prints one line per run for scripts, as bench.c does:
  RESULT label=... op=get threads=1 ops=N seconds=S ops_per_sec=R p50_us=A p99_us=B cpu_us_per_op=C
where C is the process's CPU time (user + system, all threads) per operation;
and for redis-py a line "INFO hiredis=True|False redis-py=VERSION".
Exit status: 0, or 1 if a call failed or a GET missed.
"""

import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BINDINGS = os.path.join(os.path.dirname(HERE), "bindings", "python")

# Operations per batch between deadline and budget checks.
BATCH = 64


def parse_list(text, allowed=None, kind=str):
    items = [kind(part) for part in text.split(",") if part]
    if allowed is not None:
        for item in items:
            if item not in allowed:
                raise SystemExit(f"bench.py: unknown item {item!r}; use {', '.join(sorted(allowed))}")
    return items


def open_client(kind, url):
    """(client, label, info line or None)."""
    if kind == "rcache":
        sys.path.insert(0, BINDINGS)
        import rcache

        label = "rcache-py-memory" if url.startswith("memory:") else "rcache-py"
        return rcache.Client(url), label, f"INFO rcache={rcache.__version__} library={rcache._lib.path}"
    if kind == "valkey-glide":
        from importlib.metadata import version
        from urllib.parse import urlparse

        from glide_sync import GlideClient, GlideClientConfiguration, NodeAddress

        parsed = urlparse(url)
        config = GlideClientConfiguration(
            [NodeAddress(parsed.hostname or "127.0.0.1", parsed.port or 6379)],
            database_id=int(parsed.path.strip("/") or 0),
            request_timeout=5000,
        )
        info = f"INFO valkey-glide-sync={version('valkey-glide-sync')}"
        return GlideClient.create(config), "valkey-glide-sync", info
    import redis
    import redis.utils

    hiredis = bool(redis.utils.HIREDIS_AVAILABLE)
    label = "redis-py-hiredis" if hiredis else "redis-py"
    # Generous timeouts so a slow moment shows as latency, not as an error.
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return client, label, f"INFO hiredis={hiredis} redis-py={redis.__version__}"


class Run:
    """State shared by the threads of one run."""

    def __init__(self, threads, seconds, max_ops):
        self.barrier = threading.Barrier(threads + 1)
        self.seconds = seconds
        self.deadline = None  # perf_counter_ns, set by the main thread before the barrier
        self.budget = max_ops
        self.budget_lock = threading.Lock()
        self.error = None

    def claim(self):
        """Operations this thread may run next, 0 when the budget is spent."""
        with self.budget_lock:
            claimed = min(BATCH, self.budget)
            self.budget -= claimed
            return claimed


def worker(run, call, op, keys, value, start_index, result):
    """Runs op until the deadline or the budget; result gets (ops, finish_ns, latencies, misses)."""
    clock = time.perf_counter_ns
    latencies = []
    record = latencies.append
    count = len(keys)
    # Each thread walks the keyspace from its own offset, in BATCH-sized slices.
    order = keys[start_index:] + keys[:start_index]
    order = order + order[: BATCH]
    position = 0
    misses = 0
    run.barrier.wait()
    deadline = run.deadline
    try:
        before = clock()
        while before < deadline:
            claimed = run.claim()
            if claimed == 0:
                break
            batch = order[position : position + claimed]
            position = (position + claimed) % count
            if op == "get":
                for key in batch:
                    if call(key) is None:
                        misses += 1
                    after = clock()
                    record(after - before)
                    before = after
            else:
                for key in batch:
                    call(key, value)
                    after = clock()
                    record(after - before)
                    before = after
    except Exception as error:  # reported by the main thread
        run.error = f"{type(error).__name__}: {error}"
    result.append((len(latencies), clock(), latencies, misses))


def percentile_us(sorted_ns, fraction):
    if not sorted_ns:
        return 0.0
    rank = min(int(fraction * len(sorted_ns)), len(sorted_ns) - 1)
    return sorted_ns[rank] / 1000.0


def run_one(client, label, op, threads, keys, value, seconds, max_ops):
    call = client.get if op == "get" else client.set
    run = Run(threads, seconds, max_ops)
    results = []
    workers = [
        threading.Thread(
            target=worker,
            args=(run, call, op, keys, value, (len(keys) // threads) * index, results),
            name=f"bench-{index}",
        )
        for index in range(threads)
    ]
    for thread in workers:
        thread.start()
    cpu_before = time.process_time()
    started = time.perf_counter_ns()
    run.deadline = started + int(seconds * 1e9)
    run.barrier.wait()
    for thread in workers:
        thread.join()
    cpu = time.process_time() - cpu_before
    total = sum(ops for ops, _, _, _ in results)
    finished = max((finish for _, finish, _, _ in results), default=started)
    misses = sum(miss for _, _, _, miss in results)
    merged = sorted(latency for _, _, latencies, _ in results for latency in latencies)
    elapsed = (finished - started) / 1e9
    rate = total / elapsed if elapsed > 0 else 0.0
    p50, p99 = percentile_us(merged, 0.50), percentile_us(merged, 0.99)
    cpu_per_op = cpu * 1e6 / total if total else 0.0
    print(
        f"{label:<18} {op:<4} {threads:>7} {total:>12} {elapsed:>8.2f} {rate:>12.0f} {p50:>10.2f} {p99:>10.2f}"
        f" {cpu_per_op:>10.3f}"
    )
    print(
        f"RESULT label={label} op={op} threads={threads} ops={total} seconds={elapsed:.3f} "
        f"ops_per_sec={rate:.0f} p50_us={p50:.3f} p99_us={p99:.3f} cpu_us_per_op={cpu_per_op:.3f}"
    )
    sys.stdout.flush()
    if run.error:
        print(f"bench.py: {label} {op} x{threads} failed: {run.error}", file=sys.stderr)
        return False
    if misses:
        print(f"bench.py: {label} {op} x{threads}: {misses} GETs missed; the keyspace was not populated", file=sys.stderr)
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=["rcache", "redis-py", "valkey-glide"], default="rcache")
    parser.add_argument("--url", default="memory://")
    parser.add_argument("--threads", default="1,8", help="comma-separated thread counts (default 1,8)")
    parser.add_argument("--ops", default="set,get", help="comma-separated: set, get (default set,get)")
    parser.add_argument("--seconds", type=float, default=2.5, help="wall-time bound of each run (default 2.5)")
    parser.add_argument("--max-ops", type=int, default=5_000_000, help="operation bound of each run")
    parser.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    parser.add_argument("--keys", type=int, default=10_000, help="keyspace size (default 10000)")
    args = parser.parse_args()
    thread_counts = parse_list(args.threads, kind=int)
    ops = parse_list(args.ops, allowed={"get", "set"})
    if args.seconds <= 0 or args.max_ops <= 0 or args.value_size <= 0 or args.keys <= 0:
        raise SystemExit("bench.py: --seconds, --max-ops, --value-size and --keys must be positive")
    if any(count <= 0 for count in thread_counts):
        raise SystemExit("bench.py: thread counts must be positive")

    client, label, info = open_client(args.client, args.url)
    print(info)
    keys = [b"bench:key:%09d" % index for index in range(args.keys)]
    value = b"v" * args.value_size
    for key in keys:
        client.set(key, value)
    print(
        f"# {label}, {args.url}, value {args.value_size} bytes, {args.keys} keys, "
        f"<= {args.seconds:.1f} s or {args.max_ops} ops per run, Python {sys.version.split()[0]}"
    )
    print(
        f"{'target':<18} {'op':<4} {'threads':>7} {'ops':>12} {'seconds':>8} {'ops/s':>12} {'p50 us':>10} {'p99 us':>10}"
        f" {'cpu us/op':>10}"
    )
    ok = True
    for threads in thread_counts:
        for op in ops:
            if ok:
                ok = run_one(client, label, op, threads, keys, value, args.seconds, args.max_ops)
    client.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
