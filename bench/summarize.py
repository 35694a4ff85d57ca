#!/usr/bin/env python3
"""Turns the RESULT lines collected by bench/run.sh into one Markdown report.

    summarize.py RESULTS_FILE META_FILE

RESULTS_FILE holds lines
    RESULT round=R placement=P label=L op=O threads=T ops_per_sec=X [ops=N seconds=S p50_us=A p99_us=B cpu_us_per_op=C]
META_FILE holds "key=value" lines (date, machine, versions, notes) written by run.sh.
Figures repeated over rounds are reported as the median, with the range of ops/s.
bench/chart.py draws the same results and uses the readers and names below.
"""

import statistics
import sys
from collections import defaultdict

# label -> (client description, order in the tables)
CLIENTS = {
    "redis-benchmark": ("redis-benchmark (C, 1 connection per client, -P 1)", 0),
    "redis": ("rcache from C (bench.c), redis://", 1),
    "c-redis": ("rcache from C (bench_near.c), redis://, plain get beside the near cache", 2),
    "c-near": ("rcache from C (bench_near.c), redis:// + near cache, hits", 3),
    "rcache-py": ("rcache from Python (ctypes), redis://", 4),
    "py-redis": ("rcache from Python (bench_near.py), redis://, plain get beside the near cache", 5),
    "py-near": ("rcache from Python (bench_near.py), redis:// + near cache, hits", 6),
    "redis-py-hiredis": ("redis-py + hiredis", 7),
    "redis-py": ("redis-py, pure-Python parser (hiredis missing)", 8),
    "valkey-glide-sync": ("valkey-glide-sync (one multiplexed connection)", 8),
    "memory": ("rcache from C (bench.c), memory://", 9),
    "rcache-py-memory": ("rcache from Python (ctypes), memory://", 10),
    "web2py-old": ("old web2py module (redis-py + pickle, GET + TTL per hit)", 11),
    "web2py-rcache": ("rcache.web2py", 12),
    "web2py-rcache-near_cache-10000": ("rcache.web2py with ?near_cache=10000", 13),
    "py-near-released": ("rcache from Python (bench_near.py), near-cache hits through the call that releases the GIL", 14),
    "py-glide-csc": ("valkey-glide-sync, ClientSideCache(server_assisted=True), hits (bench_near.py)", 14),
}

# The web2py benchmark's label for rcache.web2py with a near cache (bench_web2py.py --variant "?near_cache=10000").
WEB2PY_NEAR = "web2py-rcache-near_cache-10000"

OPS = {"get": "GET", "set": "SET", "near-get": "rcache_client_near_get", "cache-hit": "cache(key, f, 300) hit", "cache-miss": "cache(key, f, 300) miss"}


def client_name(label):
    if label in CLIENTS:
        return CLIENTS[label][0]
    if label.startswith("web2py-rcache-"):
        return f"rcache.web2py with {label[len('web2py-rcache-'):]}"
    return label


def client_order(label):
    return CLIENTS.get(label, (label, 99))[1]


def op_name(op):
    return OPS.get(op, op.upper())

PLACEMENTS = {
    "free": "scheduler's choice (no pinning); decides the targets",
    "cpu0": "control: client and redis-server both pinned to CPU 0 (taskset)",
    "split": "control: client pinned to CPU 0, redis-server to CPU 1",
}


def read_results(path):
    """{(placement, label, op, threads): [run dicts]}."""
    runs = defaultdict(list)
    with open(path) as lines:
        for line in lines:
            if not line.startswith("RESULT "):
                continue
            fields = dict(part.split("=", 1) for part in line.split()[1:])
            key = (fields["placement"], fields["label"], fields["op"], int(fields["threads"]))
            optional = ("p50_us", "p99_us", "cpu_us_per_op")
            runs[key].append(
                {"ops_per_sec": float(fields["ops_per_sec"])}
                | {name: float(fields[name]) if name in fields else None for name in optional}
            )
    return runs


def read_meta(path):
    """(meta, notes): key=value lines, and the values of the repeated keys note and load_round."""
    meta = {"load_round": []}
    notes = []
    with open(path) as lines:
        for line in lines:
            line = line.rstrip("\n")
            if "=" not in line:
                continue
            key, value = line.split("=", 1)
            if key == "note":
                notes.append(value)
            elif key == "load_round":
                meta[key].append(value)
            else:
                meta[key] = value
    return meta, notes


def median(runs, field):
    values = [run[field] for run in runs if run[field] is not None]
    return statistics.median(values) if values else None


def figure(runs, placement, label, op, threads, pick=median):
    """The median (or pick) ops/s of one figure, None when it was not measured."""
    found = runs.get((placement, label, op, threads))
    return pick(found, "ops_per_sec") if found else None


def best(found, field):
    return max(run[field] for run in found)


def rate(value):
    return f"{value:,.0f}"


def micros(value):
    if value is None:
        return "–"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def millions(value):
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"


def rounds_cells(found):
    """The cells "ops/s (median) | ops/s min–max | rounds" of one figure's runs."""
    rates = [run["ops_per_sec"] for run in found]
    return f"{rate(median(found, 'ops_per_sec'))} | {rate(min(rates))}–{rate(max(rates))} | {len(found)}"


def figure_table(runs):
    rows = [
        "| placement | client | op | threads | ops/s (median) | ops/s min–max | rounds | p50 µs | p99 µs "
        "| client CPU µs/op |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def order(key):
        placement, label, op, threads = key
        return (list(PLACEMENTS).index(placement), client_order(label), threads, op)

    for key in sorted(runs, key=order):
        placement, label, op, threads = key
        found = runs[key]
        cpu = [run["cpu_us_per_op"] for run in found if run["cpu_us_per_op"] is not None]
        # redis-benchmark reports no CPU time.
        cpu_text = f"{statistics.median(cpu):.2f}" if cpu else "–"
        rows.append(
            f"| {placement} | {client_name(label)} | {op_name(op)} | {threads} | {rounds_cells(found)} "
            f"| {micros(median(found, 'p50_us'))} | {micros(median(found, 'p99_us'))} | {cpu_text} |"
        )
    return rows


def target_rows(runs, hiredis_label):
    """Rows of the targets table, and the verdicts (judged on the unpinned medians)."""
    rows = [
        "| target | op | ours vs theirs (median ops/s, no pinning) | ratio vs target | verdict "
        "| best of rounds | control: one CPU | control: split CPUs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []

    def ratio_text(placement, ours, theirs, pick=median):
        mine, base = figure(runs, placement, *ours, pick), figure(runs, placement, *theirs, pick)
        if not mine or not base:
            return "not run"
        return f"{mine / base:.2f}x ({rate(mine)} vs {rate(base)})"

    def add_row(name, op, verdict, measured="not measured", against="–", best_text="–", controls="– | –"):
        """One row of the table, and its verdict in verdicts."""
        verdicts.append((name, op, verdict))
        rows.append(f"| {name} | {op} | {measured} | {against} | {verdict} | {best_text} | {controls} |")

    def ratio_target(name, ours, theirs, minimum, controls=True):
        """ours / theirs >= minimum; ours and theirs are (label, op, threads)."""
        op = op_name(ours[1])
        best_text = ratio_text("free", ours, theirs, best)
        others = " | ".join(ratio_text(placement, ours, theirs) if controls else "–" for placement in ("cpu0", "split"))
        mine, base = figure(runs, "free", *ours), figure(runs, "free", *theirs)
        if mine is None or base is None:
            add_row(name, op, "NOT RUN", best_text=best_text, controls=others)
            return
        ratio = mine / base
        verdict = "PASS" if ratio >= minimum else "MISS"
        against = f"{ratio:.2f}x (target >= {minimum:g}x)"
        add_row(name, op, verdict, f"{rate(mine)} vs {rate(base)}", against, best_text, others)

    def rate_target(name, ours, minimum):
        """ours >= minimum ops/s; ours is (label, op, threads)."""
        op = op_name(ours[1])
        mine = figure(runs, "free", *ours)
        if mine is None:
            add_row(name, op, "NOT RUN")
            return
        verdict = "PASS" if mine >= minimum else "MISS"
        against = f"{millions(mine)} ops/s (target >= {millions(minimum)} ops/s)"
        add_row(name, op, verdict, rate(mine), against, rate(figure(runs, "free", *ours, best)))

    for op in ("get", "set"):
        ratio_target("C, 1 thread vs `redis-benchmark -c 1`", ("redis", op, 1), ("redis-benchmark", op, 1), 0.8)
    for op in ("get", "set"):
        ratio_target(
            f"Python, 1 thread vs {CLIENTS[hiredis_label][0]}", ("rcache-py", op, 1), (hiredis_label, op, 1), 2.5
        )
    # Against the faster (median) of the two Python clients, each run in its own process.
    for threads, minimum in ((8, 3), (1, 1)):
        for op in ("get", "set"):
            found = [label for label in (hiredis_label, "valkey-glide-sync") if figure(runs, "free", label, op, threads)]
            fastest = max(found, key=lambda label: figure(runs, "free", label, op, threads), default=hiredis_label)
            ratio_target(
                f"Python, {threads} thread{'s' if threads > 1 else ''}, one Client vs the faster of "
                f"{CLIENTS[hiredis_label][0]} and valkey-glide-sync: {client_name(fastest)}",
                ("rcache-py", op, threads),
                (fastest, op, threads),
                minimum,
            )
    for op in ("get", "set"):
        ratio_target(
            "Python, 8 threads, one Client vs `redis-benchmark -c 8`",
            ("rcache-py", op, 8),
            ("redis-benchmark", op, 8),
            0.7,
        )
    rate_target("memory:// from one C thread", ("memory", "get", 1), 2_000_000)
    rate_target("near-cache hits from one C thread", ("c-near", "get", 1), 2_000_000)
    ratio_target(
        "near-cache hit vs a plain Redis get, one C thread (bench_near.c)",
        ("c-near", "get", 1),
        ("c-redis", "get", 1),
        50,
        controls=False,
    )
    rate_target("near-cache hits from one Python thread", ("py-near", "get", 1), 400_000)
    rate_target("near-cache hits from one C thread, into the caller's buffer", ("c-near", "near-get", 1), 10_000_000)
    rate_target("near-cache hits from one Python thread, the 1M target", ("py-near", "get", 1), 1_000_000)
    ratio_target(
        "near-cache hits, 8 Python threads on one Client vs 1 thread (bench_near.py)",
        ("py-near", "get", 8),
        ("py-near", "get", 1),
        1,
        controls=False,
    )
    ratio_target(
        "near-cache hits, 1 Python thread vs valkey-glide-sync's client-side cache (bench_near.py)",
        ("py-near", "get", 1),
        ("py-glide-csc", "get", 1),
        10,
        controls=False,
    )
    for label in ("web2py-rcache", WEB2PY_NEAR):
        for op, minimum in (("cache-hit", 5), ("cache-miss", 3)):
            ratio_target(
                f"{client_name(label)} vs the old web2py module, 1 thread",
                (label, op, 1),
                ("web2py-old", op, 1),
                minimum,
                controls=False,
            )
    return rows, verdicts


# The one-thread comparison: (heading, baseline label, other labels).
ONE_THREAD_GROUPS = [
    ("From C", "redis-benchmark", ["redis", "c-redis", "c-near", "memory"]),
    ("From Python", None, ["valkey-glide-sync", "rcache-py", "py-redis", "py-near", "py-glide-csc", "rcache-py-memory"]),
    ("web2py's cache(key, f, 300), from Python", "web2py-old", ["web2py-rcache", WEB2PY_NEAR]),
]


def one_thread_rows(runs, hiredis_label):
    """Every client's one-thread figures, unpinned, with its ratio to the baseline of its group."""
    rows = [
        "| group | client | op | ops/s (median) | ops/s min–max | rounds | µs per op (median) | vs baseline (medians) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for heading, baseline, labels in ONE_THREAD_GROUPS:
        baseline = baseline or hiredis_label
        for label in [baseline] + labels:
            ops = sorted({op for (placement, lab, op, threads) in runs if (placement, lab, threads) == ("free", label, 1)})
            for op in ops:
                found = runs[("free", label, op, 1)]
                value = median(found, "ops_per_sec")
                base = figure(runs, "free", baseline, op, 1)
                versus = "baseline" if label == baseline else (f"{value / base:.2f}x" if base else "–")
                rows.append(
                    f"| {heading} | {client_name(label)} | {op_name(op)} | {rounds_cells(found)} "
                    f"| {1e6 / value:,.2f} | {versus} |"
                )
    return rows


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    runs = read_results(sys.argv[1])
    meta, notes = read_meta(sys.argv[2])
    hiredis_label = "redis-py-hiredis" if meta.get("hiredis") == "True" else "redis-py"
    loads = "; ".join(f"round {value.split(' ', 1)[0]}: {value.split(' ', 1)[1]}" for value in meta["load_round"])
    out = [
        "# rcache benchmark report",
        "",
        f"- date: {meta.get('date', '?')}",
        f"- machine: {meta.get('nproc', '?')} CPUs ({meta.get('cpu', '?')}), {meta.get('memory', '?')} memory, "
        f"load average before the run: {meta.get('load', '?')}, at the start of each round: {loads or '?'}, "
        f"after: {meta.get('load_after', '?')} (other processes on the machine add noise)",
        f"- rcache {meta.get('rcache', '?')} ({meta.get('commit', '?')}), {meta.get('redis', '?')}, "
        f"{meta.get('python', '?')}, redis-py {meta.get('redis_py', 'missing')}, "
        f"hiredis active in redis-py: {meta.get('hiredis', 'unknown')}",
        f"- method: private redis-server on 127.0.0.1:{meta.get('port', '?')} (--save '' --appendonly no); "
        f"value {meta.get('value_size', '100')} bytes; {meta.get('rounds', '?')} rounds, each run bounded by "
        f"{meta.get('seconds', '?')} s (redis-benchmark by -n); pinned controls run once; GET keys prepopulated so every GET hits; "
        "p50/p99 from per-operation CLOCK_MONOTONIC / perf_counter_ns timings (redis-benchmark: its own histogram)",
        "- every round runs every client one after the other on the same server: redis-benchmark, bench.c and "
        "bench.py (rcache and redis-py), bench_near.c and bench_near.py (1,000 keys read round-robin through a "
        "warmed near cache from 1 and 8 threads on one handle, then through a plain client; valkey-glide-sync's "
        "server-assisted client-side cache in a process of its own), bench_web2py.py (one Python thread; hits read one cached "
        "key, misses use a new key per call; the value is a small dict with a 200-character string, pickled)",
        "",
        "## Targets",
        "",
    ]
    rows, verdicts = target_rows(runs, hiredis_label)
    out += rows
    met = sum(1 for _, _, verdict in verdicts if verdict == "PASS")
    out += ["", f"{met} of {len(verdicts)} target figures met (judged on the unpinned medians)."]
    out += ["", "## One thread, every client", ""]
    out += one_thread_rows(runs, hiredis_label)
    out += [
        "",
        f"Baselines: `redis-benchmark -c 1` from C, {client_name(hiredis_label)} from Python, the old web2py "
        "module for cache(key, f, 300). No pinning; the median and the range over the rounds.",
    ]
    out += ["", "## All figures", ""]
    out += figure_table(runs)
    out += ["", "Placements: " + "; ".join(f"`{key}` = {text}" for key, text in PLACEMENTS.items()) + "."]
    if notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    print("\n".join(out))


if __name__ == "__main__":
    main()
