#!/usr/bin/env python3
"""asyncio clients on one event loop: rcache.aio, redis.asyncio (redis-py) and
valkey-glide's asyncio client, each in its own process, on one private
redis-server started for the run.

    bench_aio.py [--seconds S] [--rounds R] [--coroutines N] [--value-size B] [--workers W]
                 [--clients rcache,redis-py,glide] [--selector select|epoll] [--realtime]
                 [--lag-period MS] [--lag-seconds S] [--lag-windows W] [--lag-warmup S]

For each client:
  * throughput: N coroutines share one client; each sets and then gets its
    own key in a loop for S seconds (after a warm-up in which every
    coroutine makes one call, so connection pools are filled). ops/s counts
    both; every call is timed with perf_counter_ns for p50/p99; a GET that
    does not return what was set fails the run. --seconds 0 skips it.
  * loop lag: a probe runs every --lag-period ms (loop.call_at on a fixed
    grid) and records how late it runs by loop.time(). Idle windows and
    paused windows alternate, --lag-windows of each, --lag-seconds long,
    the first --lag-warmup seconds after each switch not recorded. In a
    paused window the server is stopped (SIGSTOP) and every coroutine has
    started one GET, which the server holds. Then the server is resumed
    (SIGCONT) and the probe keeps recording until every held call has
    returned ("completing"); each must return the value set.

    On a loaded machine most lateness is the loop's thread waiting for a
    CPU. Each probe run also reads that thread's run-queue wait
    (/proc/thread-self/schedstat); "less CPU wait" is each sample's lateness
    minus the run-queue wait since the last run before its due time, which
    leaves the lateness caused by work on the loop (and the timer's own
    slack). The loop thread's CPU time per window is reported too.

    With --realtime (root or CAP_SYS_NICE) the loop's thread runs under
    SCHED_FIFO during the lag windows: it then runs as soon as it wakes,
    and the lateness left is the loop's own.

    The loop uses a select() selector by default, whose waits have
    microsecond resolution; with --selector epoll (asyncio's default on
    Linux) every wait is rounded up to a whole millisecond, which alone
    makes an idle loop's p50 about 0.5 ms and its p99 about 1 ms.

Every client runs --rounds times (default 3), the clients interleaved within
each round, each run in a new process. Prints Markdown tables of medians with
ratios against redis.asyncio measured in the same run, and one line per
client for scripts (to stderr): AIO client=C name=value ...
A client whose package is missing is reported as skipped. Exit status 1 if
a run failed.
"""

import argparse
import asyncio
import gc
import json
import os
import selectors
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


class LagProbe:
    """The loop's lag: a callback that schedules itself with loop.call_at on
    a fixed grid of `period` seconds and records how late each run is
    (loop.time() against its due time). A slot the loop missed is still
    run and recorded, late, so a stall counts once per slot it covers.

    Each run also reads the loop thread's total run-queue wait (time spent
    runnable but waiting for a CPU, /proc/thread-self/schedstat), so that
    lag_figures can tell lateness the machine caused from lateness caused by
    work on the loop. Recording windows also collect the loop thread's CPU
    time and the time spent in Python's garbage collector.
    """

    def __init__(self, period):
        self.loop = asyncio.get_running_loop()
        self.period = period
        self.samples = None
        self._collecting = 0.0
        self._collected = 0.0
        gc.callbacks.append(self._gc)
        try:
            self._schedstat = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._schedstat = None
        due = self.loop.time() + period
        self._handle = self.loop.call_at(due, self._tick, due)

    def _run_queue_wait(self):
        if self._schedstat is None:
            return 0.0
        return int(os.pread(self._schedstat, 64, 0).split()[1]) / 1e9

    def _gc(self, phase, _info):
        if phase == "start":
            self._collecting = time.perf_counter()
        else:
            self._collected += time.perf_counter() - self._collecting

    def _tick(self, due):
        ran = self.loop.time()
        if self.samples is not None:
            self.samples.append((due, ran, self._run_queue_wait()))
        due += self.period
        self._handle = self.loop.call_at(due, self._tick, due)

    async def window(self, seconds, until=None):
        """Samples over `seconds`, or until the future `until` is done."""
        self.samples = []
        cpu = time.thread_time()
        collected = self._collected
        started = self.loop.time()
        if until is None:
            await asyncio.sleep(seconds)
        else:
            await until
        elapsed = self.loop.time() - started
        samples, self.samples = self.samples, None
        return {"samples": samples, "cpu": time.thread_time() - cpu, "gc": self._collected - collected, "seconds": elapsed}

    def stop(self):
        self._handle.cancel()
        gc.callbacks.remove(self._gc)
        if self._schedstat is not None:
            os.close(self._schedstat)


def lateness(samples):
    """(late, late less CPU wait) per sample, in seconds. The CPU wait of a
    sample is the run-queue wait between the last run before its due time
    and its own run: the whole stall, for every slot a stall covers."""
    pairs = []
    before = 0  # index of the last sample that ran before the current due time
    for index, (due, ran, waited) in enumerate(samples):
        while before + 1 < index and samples[before + 1][1] <= due:
            before += 1
        cpu_wait = waited - samples[before][2] if index > 0 else 0.0
        pairs.append((ran - due, max(0.0, ran - due - cpu_wait)))
    return pairs


def lag_figures(windows, prefix):
    """p50/p99/max of lateness, p99 of lateness less CPU wait, loop CPU share; in µs and %."""
    pairs = [pair for window in windows for pair in lateness(window["samples"])[1:]]
    late = sorted(pair[0] * 1e6 for pair in pairs)
    own = sorted(pair[1] * 1e6 for pair in pairs)
    seconds = sum(window["seconds"] for window in windows)
    return {
        f"{prefix}_p50_us": percentile(late, 0.50),
        f"{prefix}_p99_us": percentile(late, 0.99),
        f"{prefix}_max_us": late[-1] if late else float("nan"),
        f"{prefix}_own_p99_us": percentile(own, 0.99),
        f"{prefix}_own_max_us": own[-1] if own else float("nan"),
        f"{prefix}_cpu_pct": 100 * sum(window["cpu"] for window in windows) / seconds if seconds else float("nan"),
        f"{prefix}_gc_pct": 100 * sum(window["gc"] for window in windows) / seconds if seconds else float("nan"),
        f"{prefix}_samples": len(late),
    }


async def loop_lag(get, server_pid, coroutines, value, args):
    """Idle windows and paused-server windows, alternated, on one probe;
    then the windows in which the held calls complete after SIGCONT."""
    if args.realtime:
        # The loop's thread only, for the lag windows: SCHED_FIFO at the
        # lowest priority runs it as soon as it wakes, ahead of every
        # ordinary thread on the machine (the kernel keeps 5% of each CPU
        # for them), so its lateness no longer includes waiting for a CPU.
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    probe = LagProbe(args.lag_period / 1000)
    idle, paused, resumed = [], [], []
    still_held, errors = [], 0
    try:
        for _ in range(args.lag_windows):
            await asyncio.sleep(args.lag_warmup)
            idle.append(await probe.window(args.lag_seconds))
            os.kill(server_pid, signal.SIGSTOP)
            try:
                held = [asyncio.ensure_future(get(f"aio:{index}")) for index in range(coroutines)]
                await asyncio.sleep(args.lag_warmup)  # every call submitted and sent; not recorded
                paused.append(await probe.window(args.lag_seconds))
                still_held.append(sum(not call.done() for call in held))
            finally:
                os.kill(server_pid, signal.SIGCONT)
            every = asyncio.gather(*held, return_exceptions=True)
            resumed.append(await probe.window(None, until=every))
            errors += sum(result != value for result in every.result())
    finally:
        probe.stop()
        if args.realtime:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    figures = {**lag_figures(idle, "idle"), **lag_figures(paused, "paused"), **lag_figures(resumed, "resumed")}
    figures["held"] = min(still_held)
    figures["held_errors"] = errors
    return figures


async def run_one(args):
    get, set_, close = await open_client(args.client, args.port, args.workers)
    value = b"v" * args.value_size
    figures = await throughput(get, set_, args.coroutines, args.seconds, value)
    figures.update(await loop_lag(get, args.server_pid, args.coroutines, value, args))
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
            command += ["--lag-period", str(args.lag_period), "--lag-seconds", str(args.lag_seconds),
                        "--lag-windows", str(args.lag_windows), "--lag-warmup", str(args.lag_warmup),
                        "--selector", args.selector] + (["--realtime"] if args.realtime else [])
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
    if args.seconds > 0:
        print("| client | ops/s | ops/s min–max | vs redis.asyncio | p50 µs | p99 µs |")
        print("|---|---:|---:|---:|---:|---:|")
        for kind, figures in results.items():
            versus = f"{figures['ops_per_sec'] / base:.2f}x" if base else "–"
            low, high = spread[kind]
            print(f"| {CLIENTS[kind][0]} | {figures['ops_per_sec']:,.0f} | {low:,.0f}–{high:,.0f} | {versus} "
                  f"| {figures['p50_us']:,.0f} | {figures['p99_us']:,.0f} |")
        print()
    print(f"Loop lag: a probe every {args.lag_period:g} ms (loop.call_at on a fixed grid) records how late it runs, "
          f"on a {args.selector} selector loop{' whose thread runs under SCHED_FIFO' if args.realtime else ''}; {args.lag_windows} idle and {args.lag_windows} paused windows of "
          f"{args.lag_seconds:g} s alternate per run, the first {args.lag_warmup:g} s after each switch not recorded. "
          "Paused: the server is SIGSTOPped and holds one GET from each coroutine. \"less CPU wait\": each sample's "
          "lateness minus the time the loop's thread waited for a CPU (run-queue wait) between the last probe run "
          "before its due time and its own run. Loop CPU: the loop thread's CPU time over the window, and the share "
          "of the window spent in the garbage collector. Completing: from SIGCONT until every held call has "
          "returned. µs.\n")
    print("| client | idle p50 / p99 / max | paused p50 / p99 / max | paused − idle, p99 "
          "| less CPU wait: p99 idle / p99 paused / max paused | loop CPU idle / paused (of it GC) | completing p99 / max | calls held |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, figures in results.items():
        print(f"| {CLIENTS[kind][0]} "
              f"| {figures['idle_p50_us']:,.0f} / {figures['idle_p99_us']:,.0f} / {figures['idle_max_us']:,.0f} "
              f"| {figures['paused_p50_us']:,.0f} / {figures['paused_p99_us']:,.0f} / {figures['paused_max_us']:,.0f} "
              f"| {figures['paused_p99_us'] - figures['idle_p99_us']:+,.0f} "
              f"| {figures['idle_own_p99_us']:,.0f} / {figures['paused_own_p99_us']:,.0f} / {figures['paused_own_max_us']:,.0f} "
              f"| {figures['idle_cpu_pct']:.1f}% / {figures['paused_cpu_pct']:.1f}% ({figures['idle_gc_pct']:.2f}% / {figures['paused_gc_pct']:.2f}%) "
              f"| {figures['resumed_p99_us']:,.0f} / {figures['resumed_max_us']:,.0f} "
              f"| {figures['held']:.0f} of {args.coroutines} |")
    print()
    rcache = results.get("rcache")
    if rcache:
        verdict = "met" if rcache["paused_p99_us"] < 1000 else "NOT met"
        print(f"Target: rcache.aio's loop lag p99 under a paused server < 1 ms: {verdict} "
              f"({rcache['paused_p99_us']:,.0f} µs; the same loop idle, same run: {rcache['idle_p99_us']:,.0f} µs; "
              f"less CPU wait: {rcache['paused_own_p99_us']:,.0f} µs).\n")
    for kind, figures in results.items():
        fields = " ".join(f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}"
                          for name, value in figures.items())
        print(f"AIO client={kind} {fields}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--coroutines", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of every client, interleaved")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=0, help="rcache.aio worker threads (0: the library default)")
    parser.add_argument("--clients", help="comma-separated subset of " + ",".join(CLIENTS))
    parser.add_argument("--lag-period", type=float, default=1.0, help="ms between probe runs")
    parser.add_argument("--lag-seconds", type=float, default=2.0, help="length of each recorded window")
    parser.add_argument("--lag-windows", type=int, default=3, help="idle/paused window pairs per run")
    parser.add_argument("--lag-warmup", type=float, default=0.2, help="seconds not recorded after each switch")
    parser.add_argument("--realtime", action="store_true",
                        help="run the loop's thread under SCHED_FIFO during the lag windows (needs root or "
                             "CAP_SYS_NICE): a control that takes CPU contention out of the lag")
    parser.add_argument("--selector", choices=("select", "epoll"), default="select",
                        help="the loop's selector: select waits with µs resolution, epoll (asyncio's default on "
                             "Linux) rounds every wait up to a whole ms")
    parser.add_argument("--client", choices=sorted(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        args.workers = args.workers or None
        selector = selectors.SelectSelector if args.selector == "select" else selectors.EpollSelector
        with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector())) as runner:
            runner.run(run_one(args))
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
