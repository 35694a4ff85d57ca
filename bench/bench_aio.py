#!/usr/bin/env python3
"""asyncio clients on one event loop: rcache.aio, redis.asyncio (redis-py) and
valkey-glide's asyncio client, each in its own process, on one private
redis-server started for the run.

    bench_aio.py [--seconds S] [--rounds R] [--coroutines N] [--value-size B] [--workers W]
                 [--clients rcache,redis-py,glide]

For each client:
  * throughput: N coroutines share one client; each sets and then gets its
    own key in a loop for S seconds (after a warm-up in which every
    coroutine makes one call, so connection pools are filled). ops/s counts
    both; every call is timed with perf_counter_ns for p50/p99; a GET that
    does not return what was set fails the run.
  * loop lag: the server is stopped (SIGSTOP) and every coroutine starts one
    GET, which the stopped server holds; meanwhile a ticker sleeps 1 ms at a
    time for one second and records by how much each sleep overran. The p99
    of that overrun is the loop's lag. The same ticker on the idle loop,
    before, is the floor (timer granularity). The server is then resumed
    (SIGCONT) and the held calls must complete.

Every client runs --rounds times (default 3), the clients interleaved within
each round, each run in a new process. Prints a Markdown table of medians with
ratios against redis.asyncio measured in the same run, and one line per
client for scripts (to stderr):
  AIO client=C ops_per_sec=R p50_us=A p99_us=B lag_idle_p99_us=I lag_paused_p99_us=L lag_paused_max_us=M held=H
A client whose package is missing is reported as skipped. Exit status 1 if
a run failed.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BINDINGS = os.path.join(os.path.dirname(HERE), "bindings", "python")

CLIENTS = {
    "rcache": ("rcache.aio", None),
    "redis-py": ("redis.asyncio (redis-py)", "redis"),
    "glide": ("valkey-glide asyncio (GlideClient)", "glide"),
}
BASELINE = "redis-py"


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


# --- one client, in its own process --------------------------------------------


async def open_client(kind, port, workers):
    """(get, set, close) coroutine functions of a client for 127.0.0.1:port."""
    url = f"redis://127.0.0.1:{port}/0"
    if kind == "rcache":
        sys.path.insert(0, BINDINGS)
        import rcache.aio

        client = rcache.aio.Client(url, workers=workers, connect_timeout=30, response_timeout=30)
        return client.get, client.set, client.close
    if kind == "redis-py":
        import redis.asyncio

        # A blocking pool: the default pool (100 connections) refuses calls
        # beyond its size (MaxConnectionsError) instead of making them wait;
        # 64 did better here than 1,000 connections.
        pool = redis.asyncio.BlockingConnectionPool(
            host="127.0.0.1", port=port, max_connections=64, timeout=30, socket_timeout=30, socket_connect_timeout=30
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        return client.get, client.set, client.aclose
    from glide import GlideClient, GlideClientConfiguration, NodeAddress

    config = GlideClientConfiguration([NodeAddress("127.0.0.1", port)], request_timeout=30000)
    client = await GlideClient.create(config)
    return client.get, client.set, client.close


async def throughput(get, set_, coroutines, seconds, value):
    latencies = []
    failures = []

    async def warm(index):
        await set_(f"aio:{index}", value)

    await asyncio.gather(*(warm(index) for index in range(coroutines)))
    deadline = time.perf_counter() + seconds

    async def worker(index):
        key = f"aio:{index}"
        clock = time.perf_counter_ns
        record = latencies.append
        while time.perf_counter() < deadline:
            started = clock()
            await set_(key, value)
            middle = clock()
            got = await get(key)
            record(middle - started)
            record(clock() - middle)
            if got != value:
                failures.append(key)
                return

    started = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(coroutines)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "ops_per_sec": len(latencies) / elapsed,
        "p50_us": percentile(latencies, 0.50) / 1000,
        "p99_us": percentile(latencies, 0.99) / 1000,
        "failures": len(failures),
    }


async def ticker_lags(duration):
    """Overruns of 1 ms sleeps over `duration` seconds, sorted, in microseconds."""
    lags = []
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - started - 0.001) * 1e6)
    return sorted(lags)


async def paused_lag(get, server_pid, coroutines):
    idle = await ticker_lags(1.0)
    os.kill(server_pid, signal.SIGSTOP)
    try:
        held = [asyncio.ensure_future(get(f"aio:{index}")) for index in range(coroutines)]
        await asyncio.sleep(0.05)  # every call submitted and sent
        paused = await ticker_lags(1.0)
        still_held = sum(not call.done() for call in held)
    finally:
        os.kill(server_pid, signal.SIGCONT)
    results = await asyncio.gather(*held, return_exceptions=True)
    errors = [result for result in results if isinstance(result, BaseException)]
    return {
        "lag_idle_p99_us": percentile(idle, 0.99),
        "lag_paused_p99_us": percentile(paused, 0.99),
        "lag_paused_max_us": paused[-1] if paused else float("nan"),
        "held": still_held,
        "held_errors": len(errors),
    }


async def run_one(args):
    get, set_, close = await open_client(args.client, args.port, args.workers)
    value = b"v" * args.value_size
    figures = await throughput(get, set_, args.coroutines, args.seconds, value)
    figures.update(await paused_lag(get, args.server_pid, args.coroutines))
    await close()
    print(json.dumps(figures))


# --- the driver ---------------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workdir):
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--logfile", os.path.join(workdir, "redis.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("bench_aio.py: the private redis-server did not start")


def importable(module):
    return module is None or subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def drive(args):
    if shutil.which("redis-server") is None:
        raise SystemExit("bench_aio.py: redis-server not found")
    workdir = tempfile.mkdtemp(prefix="rcache-bench-aio-")
    server, port = start_server(workdir)
    runs, failed = {}, False
    kinds = []
    for kind, (_, module) in CLIENTS.items():
        if args.clients and kind not in args.clients.split(","):
            continue
        if not importable(module):
            print(f"bench_aio.py: {module} is not importable: {kind} skipped", file=sys.stderr)
            continue
        kinds.append(kind)
    try:
        for kind in [kind for _ in range(args.rounds) for kind in kinds]:
            command = [sys.executable, os.path.abspath(__file__), "--client", kind, "--port", str(port),
                       "--server-pid", str(server.pid), "--seconds", str(args.seconds),
                       "--coroutines", str(args.coroutines), "--value-size", str(args.value_size)]
            if args.workers:
                command += ["--workers", str(args.workers)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
            sys.stderr.write(done.stderr)
            if done.returncode != 0 or not done.stdout.strip():
                print(f"bench_aio.py: the {kind} run failed (exit {done.returncode})", file=sys.stderr)
                failed = True
                continue
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            failed |= figures["failures"] > 0 or figures["held_errors"] > 0
            runs.setdefault(kind, []).append(figures)
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    report(args, runs)
    return 1 if failed else 0


def report(args, runs):
    # Each figure is the median over the rounds; ops/s also shows its range.
    results = {kind: {name: statistics.median(run[name] for run in rounds) for name in rounds[0]} for kind, rounds in runs.items()}
    spread = {kind: (min(run["ops_per_sec"] for run in rounds), max(run["ops_per_sec"] for run in rounds)) for kind, rounds in runs.items()}
    base = results.get(BASELINE, {}).get("ops_per_sec")
    print(f"### asyncio: {args.coroutines} coroutines on one client, get/set, {args.value_size}-byte values\n")
    print(f"Medians of {args.rounds} rounds, the clients interleaved within each round; load average "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])} on {os.cpu_count()} CPUs at the end.\n")
    print("| client | ops/s | ops/s min–max | vs redis.asyncio | p50 µs | p99 µs | loop lag p99, idle (µs) "
          "| loop lag p99, server paused (µs) | lag max, paused (µs) | calls held |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, figures in results.items():
        versus = f"{figures['ops_per_sec'] / base:.2f}x" if base else "–"
        low, high = spread[kind]
        print(f"| {CLIENTS[kind][0]} | {figures['ops_per_sec']:,.0f} | {low:,.0f}–{high:,.0f} | {versus} | {figures['p50_us']:,.0f} "
              f"| {figures['p99_us']:,.0f} | {figures['lag_idle_p99_us']:,.0f} | {figures['lag_paused_p99_us']:,.0f} "
              f"| {figures['lag_paused_max_us']:,.0f} | {figures['held']:.0f} of {args.coroutines} |")
    print()
    rcache = results.get("rcache")
    if rcache:
        verdict = "met" if rcache["lag_paused_p99_us"] < 1000 else "NOT met"
        print(f"Target: rcache.aio's loop lag p99 under a paused server < 1 ms: {verdict} "
              f"({rcache['lag_paused_p99_us']:,.0f} µs; the same loop idle: {rcache['lag_idle_p99_us']:,.0f} µs).\n")
    for kind, figures in results.items():
        fields = " ".join(f"{name}={figures[name]:.1f}" if isinstance(figures[name], float) else f"{name}={figures[name]}"
                          for name in ("ops_per_sec", "p50_us", "p99_us", "lag_idle_p99_us", "lag_paused_p99_us",
                                       "lag_paused_max_us", "held"))
        print(f"AIO client={kind} {fields}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--coroutines", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of every client, interleaved")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=0, help="rcache.aio worker threads (0: the library default)")
    parser.add_argument("--clients", help="comma-separated subset of " + ",".join(CLIENTS))
    parser.add_argument("--client", choices=sorted(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        args.workers = args.workers or None
        asyncio.run(run_one(args))
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
