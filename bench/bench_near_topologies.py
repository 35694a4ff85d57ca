#!/usr/bin/env python3
"""Near-cache hits on standalone, Sentinel and Cluster URLs in one run:
bench_near (C) and bench_near.py (Python, with valkey-glide-sync's
client-side cache) on each URL in turn, in interleaved rounds, then each
figure's median and its ratio to standalone.

    target/release/examples/bench_topologies \\
      python3 bench/bench_near_topologies.py [--rounds N] [--seconds S] [--bench-near PATH] [--markdown FILE]

The URLs come from RCACHE_BENCH_STANDALONE_URL, RCACHE_BENCH_SENTINEL_URL
and RCACHE_BENCH_CLUSTER_URL (bench_topologies starts the servers and sets
them). Each round runs every topology once, starting with a different one
each round, so that a burst of load on the shared machine does not always
land on the same topology. --seconds (default 1) bounds each measured run;
--rounds defaults to 5.

For every figure it prints the median wall-time rate and the median CPU time
per hit (the benchmark process's CPU time over its gets: getrusage in C,
time.process_time in Python), and on Sentinel and Cluster two ratios to
standalone, each the median over rounds of that round's ratio: the rate's
(topology / standalone) and the CPU-time one (standalone CPU per hit /
topology CPU per hit). Both read the same way: 1.00 is "as on standalone",
0.90 is "10% slower". The CPU-time ratio is the stable one on a busy
machine, where a thread's wall time also counts its waits for a CPU; it
decides "within 10%" for the near figures it is stable for (see STEADY).
Then the targets per topology. The children's output is printed as it comes,
each RESULT line prefixed with its round and topology. Exit status 0, or 1
if a benchmark failed.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOPOLOGIES = [("standalone", "RCACHE_BENCH_STANDALONE_URL"), ("Sentinel", "RCACHE_BENCH_SENTINEL_URL"),
              ("Cluster", "RCACHE_BENCH_CLUSTER_URL")]

# (label, op, threads) of the RESULT lines shown, with their names.
FIGURES = [
    (("c-near", "near-get", 1), "C `rcache_client_near_get`, 1 thread"),
    (("c-near", "near-get", 8), "C `rcache_client_near_get`, 8 threads"),
    (("c-near", "get", 1), "C `rcache_client_get` + free, 1 thread"),
    (("c-near", "get", 8), "C `rcache_client_get` + free, 8 threads"),
    (("py-near", "get", 1), "Python `Client.get`, 1 thread"),
    (("py-near", "get", 8), "Python `Client.get`, 8 threads"),
    (("py-near-released", "get", 1), "Python, lock released, 1 thread"),
    (("py-near-released", "get", 8), "Python, lock released, 8 threads"),
    (("py-glide-csc", "get", 1), "valkey-glide-sync client-side cache, 1 thread"),
    (("py-glide-csc", "get", 8), "valkey-glide-sync client-side cache, 8 threads"),
    (("c-redis", "get", 1), "C plain get (server round trip), 1 thread"),
    (("py-redis", "get", 1), "Python plain get (server round trip), 1 thread"),
]
# Near hits, which must stay within 10% of standalone; the rest is context.
NEAR = {key for key, _ in FIGURES if key[0] in ("c-near", "py-near")}
# Near hits whose CPU time per hit is the cost of a hit alone. From 8 C threads
# it also counts the cores' contention on the near cache's shard locks, which
# only happens while the process runs on both CPUs at once: the scheduler
# decides that (the cells show how many CPUs the process kept busy), not the
# topology. 8 Python threads take turns on the interpreter lock.
STEADY = NEAR - {("c-near", "near-get", 8), ("c-near", "get", 8)}


def parse(line):
    fields = dict(field.split("=", 1) for field in line.split()[1:])
    key = (fields["label"], fields["op"], int(fields["threads"]))
    return key, float(fields["ops_per_sec"]), float(fields["cpu_us_per_op"])


def run(command, round_number, topology, results):
    """Runs one benchmark, echoing its output; its RESULT lines go to results[topology][key]."""
    print(f"$ {' '.join(command)}", flush=True)
    child = subprocess.run(command, capture_output=True, text=True, timeout=600)
    for line in child.stdout.splitlines():
        if line.startswith("RESULT "):
            key, rate, cpu = parse(line)
            results[topology].setdefault(key, {})[round_number] = (rate, cpu)
            line = f"RESULT round={round_number} topology={topology} {line[len('RESULT '):]}"
        print(line, flush=True)
    sys.stderr.write(child.stderr)
    if child.returncode != 0:
        print(f"FAILED ({child.returncode}): {' '.join(command)}", flush=True)
        return False
    return True


def rate_text(rate):
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M/s"
    if rate >= 1e4:
        return f"{rate / 1e3:.1f}k/s"
    return f"{rate:.0f}/s"


def ratios(results, topology, key):
    """Per-round (rate ratio, CPU ratio) against standalone, for the rounds that measured both."""
    base, other = results["standalone"].get(key, {}), results[topology].get(key, {})
    return [(other[r][0] / base[r][0], base[r][1] / other[r][1]) for r in sorted(set(base) & set(other))]


def summary(results, names, rounds, seconds):
    lines = [f"Medians of {rounds} interleaved rounds, {seconds:g} s per run, 1,000 keys of 100 bytes, one "
             "handle or Client per process. Each cell: the wall-time rate and the CPU time per hit; on "
             "Sentinel and Cluster, the ratios to standalone (rate, then hits per CPU-second; 1.00× = as on "
             "standalone).", "",
             "| figure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, name in FIGURES:
        cells = []
        for topology in names:
            measured = results[topology].get(key)
            if not measured:
                cells.append("not measured")
                continue
            rate = statistics.median(rate for rate, _ in measured.values())
            cpu = statistics.median(cpu for _, cpu in measured.values())
            cell = f"{rate_text(rate)}, {cpu:.3g} µs"
            if key in NEAR - STEADY:
                busy = statistics.median(rate * cpu / 1e6 for rate, cpu in measured.values())
                cell += f" on {busy:.1f} CPUs"
            if topology != "standalone" and ratios(results, topology, key):
                both = ratios(results, topology, key)
                cell += (f" ({statistics.median(r for r, _ in both):.2f}×, "
                         f"CPU {statistics.median(c for _, c in both):.2f}×)")
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Near hits within 10% of standalone: the median over rounds of the CPU-time ratio ≥ 0.90 for "
              f"each of the {len(STEADY)} near figures whose CPU time per hit does not depend on how many CPUs "
              "the scheduler gave the process (C 1 thread, Python 1 and 8 threads); from 8 C threads it does "
              "(\"on N CPUs\" above: two threads running at once contend on the shard locks), so those rows "
              "are context:", ""]
    for topology in names[1:]:
        medians = {}
        for key, name in FIGURES:
            both = ratios(results, topology, key) if key in STEADY else []
            if both:
                medians[name] = (statistics.median(c for _, c in both), statistics.median(r for r, _ in both))
        if not medians:
            lines.append(f"- {topology}: not measured")
            continue
        missed = [f"{name} (CPU {cpu:.2f}×)" for name, (cpu, _) in medians.items() if cpu < 0.9]
        cpu_low = min(medians, key=lambda name: medians[name][0])
        wall_low = min(medians, key=lambda name: medians[name][1])
        lines.append(f"- {topology}: {'MISSED for ' + ', '.join(missed) if missed else 'met'}; lowest CPU-time "
                     f"ratio {medians[cpu_low][0]:.2f}× ({cpu_low}), lowest wall-time ratio "
                     f"{medians[wall_low][1]:.2f}× ({wall_low})")
    lines += ["", "Targets (medians):", ""]
    for topology in names:
        median = {key: (statistics.median(r for r, _ in m.values()), statistics.median(c for _, c in m.values()))
                  for key, m in results[topology].items() if m}
        checks = []
        c1 = median.get(("c-near", "near-get", 1))
        if c1:
            checks.append(f"C 1 thread {rate_text(c1[0])} ({1 / c1[1]:.1f}M per CPU-second) ≥ 10M/s: "
                          f"{'met' if c1[0] >= 10e6 else 'met in CPU time' if 1 / c1[1] >= 10 else 'missed'}")
        p1, p8 = median.get(("py-near", "get", 1)), median.get(("py-near", "get", 8))
        if p1:
            checks.append(f"Python 1 thread {rate_text(p1[0])} ({1 / p1[1]:.2f}M per CPU-second) ≥ 1M/s: "
                          f"{'met' if p1[0] >= 1e6 else 'met in CPU time' if 1 / p1[1] >= 1 else 'missed'}")
        if p1 and p8:
            checks.append(f"Python 8 threads {p8[0] / p1[0]:.2f}× 1 thread: {'met' if p8[0] >= p1[0] else 'missed'}")
        for threads, near in ((1, p1), (8, p8)):
            glide = median.get(("py-glide-csc", "get", threads))
            if near and glide:
                checks.append(f"Python vs glide CSC, {threads} thread{'s' if threads > 1 else ''} "
                              f"{near[0] / glide[0]:.1f}× (CPU time per hit {glide[1] / near[1]:.1f}×) ≥ 10×: "
                              f"{'met' if near[0] >= 10 * glide[0] else 'met in CPU time' if glide[1] >= 10 * near[1] else 'missed'}")
        lines.append(f"- {topology}: " + "; ".join(checks))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--bench-near", default=os.path.join(ROOT, "build", "bench", "bench_near"))
    parser.add_argument("--markdown", help="also write the summary to this file")
    args = parser.parse_args()
    urls = {}
    for topology, variable in TOPOLOGIES:
        if not os.environ.get(variable):
            raise SystemExit(f"bench_near_topologies.py: {variable} is not set (run it under bench_topologies)")
        urls[topology] = os.environ[variable]
    names = [topology for topology, _ in TOPOLOGIES]
    results = {topology: {} for topology in names}
    failed = 0
    started = time.monotonic()
    for round_number in range(1, args.rounds + 1):
        shift = (round_number - 1) % len(names)
        for topology in names[shift:] + names[:shift]:
            print(f"== round {round_number}/{args.rounds}: {topology} ({urls[topology]}), "
                  f"load {open('/proc/loadavg').read().split()[0]}", flush=True)
            seconds = str(args.seconds)
            failed += not run([args.bench_near, urls[topology], "--seconds", seconds], round_number, topology, results)
            failed += not run([sys.executable, os.path.join(HERE, "bench_near.py"), urls[topology],
                               "--seconds", seconds], round_number, topology, results)
    text = summary(results, names, args.rounds, args.seconds)
    text += f"\n{args.rounds} rounds in {time.monotonic() - started:.0f} s; load average after: " \
            f"{' '.join(open('/proc/loadavg').read().split()[:3])}\n"
    print()
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
