#!/usr/bin/env python3
"""Turns the RESULT lines collected by bench/run.sh into one Markdown report.

    summarize.py RESULTS_FILE META_FILE

RESULTS_FILE holds lines
    RESULT round=R placement=P label=L op=O threads=T ops=N seconds=S ops_per_sec=X p50_us=A p99_us=B
META_FILE holds "key=value" lines (date, machine, versions, notes) written by run.sh.
Figures repeated over rounds are reported as the median, with the range of ops/s.
"""

import statistics
import sys
from collections import defaultdict

# label -> (client description, order in the tables)
CLIENTS = {
    "redis-benchmark": ("redis-benchmark (C, 1 connection per client, -P 1)", 0),
    "redis": ("rcache from C (bench.c), redis://", 1),
    "rcache-py": ("rcache from Python (ctypes), redis://", 2),
    "redis-py-hiredis": ("redis-py + hiredis", 3),
    "redis-py": ("redis-py, pure-Python parser (hiredis missing)", 4),
    "memory": ("rcache from C (bench.c), memory://", 5),
    "rcache-py-memory": ("rcache from Python (ctypes), memory://", 6),
}

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
            runs[key].append(
                {
                    "ops_per_sec": float(fields["ops_per_sec"]),
                    "p50_us": float(fields["p50_us"]),
                    "p99_us": float(fields["p99_us"]),
                    "cpu_us_per_op": float(fields["cpu_us_per_op"]) if "cpu_us_per_op" in fields else None,
                }
            )
    return runs


def read_meta(path):
    meta = {}
    notes = []
    with open(path) as lines:
        for line in lines:
            line = line.rstrip("\n")
            if "=" not in line:
                continue
            key, value = line.split("=", 1)
            if key == "note":
                notes.append(value)
            else:
                meta[key] = value
    return meta, notes


def median(runs, field):
    return statistics.median(run[field] for run in runs)


def rate(value):
    return f"{value:,.0f}"


def micros(value):
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def figure_table(runs):
    rows = [
        "| placement | client | op | threads | ops/s (median) | ops/s min–max | rounds | p50 µs | p99 µs "
        "| client CPU µs/op |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def order(key):
        placement, label, op, threads = key
        return (list(PLACEMENTS).index(placement), CLIENTS.get(label, (label, 99))[1], threads, op)

    for key in sorted(runs, key=order):
        placement, label, op, threads = key
        found = runs[key]
        rates = [run["ops_per_sec"] for run in found]
        cpu = [run["cpu_us_per_op"] for run in found if run["cpu_us_per_op"] is not None]
        # redis-benchmark reports no CPU time.
        cpu_text = f"{statistics.median(cpu):.2f}" if cpu else "–"
        rows.append(
            f"| {placement} | {CLIENTS.get(label, (label,))[0]} | {op.upper()} | {threads} "
            f"| {rate(median(found, 'ops_per_sec'))} | {rate(min(rates))}–{rate(max(rates))} | {len(found)} "
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

    def figure(placement, label, op, threads, pick=median):
        found = runs.get((placement, label, op, threads))
        return pick(found, "ops_per_sec") if found else None

    def best(found, field):
        return max(run[field] for run in found)

    def ratio_text(placement, ours, theirs, op, threads_ours, threads_theirs, pick=median):
        mine = figure(placement, ours, op, threads_ours, pick)
        base = figure(placement, theirs, op, threads_theirs, pick)
        if not mine or not base:
            return "not run"
        return f"{mine / base:.2f}x ({rate(mine)} vs {rate(base)})"

    def ratio_row(name, ours, theirs, threads_ours, threads_theirs, minimum):
        for op in ("get", "set"):
            others = " | ".join(
                ratio_text(placement, ours, theirs, op, threads_ours, threads_theirs, pick)
                for placement, pick in (("free", best), ("cpu0", median), ("split", median))
            )
            mine = figure("free", ours, op, threads_ours)
            base = figure("free", theirs, op, threads_theirs)
            if mine is None or base is None:
                rows.append(f"| {name} | {op.upper()} | not measured | – | NOT RUN | {others} |")
                verdicts.append((name, op, "NOT RUN"))
                continue
            ratio = mine / base
            verdict = "PASS" if ratio >= minimum else "MISS"
            verdicts.append((name, op, verdict))
            rows.append(
                f"| {name} | {op.upper()} | {rate(mine)} vs {rate(base)} | {ratio:.2f}x (target >= {minimum}x) "
                f"| {verdict} | {others} |"
            )

    ratio_row("C, 1 thread vs `redis-benchmark -c 1`", "redis", "redis-benchmark", 1, 1, 0.8)
    ratio_row(f"Python, 1 thread vs {CLIENTS[hiredis_label][0]}", "rcache-py", hiredis_label, 1, 1, 2.5)
    ratio_row("Python, 8 threads, one Client vs `redis-benchmark -c 8`", "rcache-py", "redis-benchmark", 8, 8, 0.7)
    value = figure("free", "memory", "get", 1)
    if value is None:
        rows.append("| memory:// from one C thread | GET | not measured | – | NOT RUN | – | – | – |")
        verdicts.append(("memory://", "get", "NOT RUN"))
    else:
        verdict = "PASS" if value >= 2_000_000 else "MISS"
        verdicts.append(("memory://", "get", verdict))
        rows.append(
            f"| memory:// from one C thread | GET | {rate(value)} | "
            f"{value / 1e6:.2f}M ops/s (target >= 2M ops/s) | {verdict} | – | – | – |"
        )
    return rows, verdicts


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    runs = read_results(sys.argv[1])
    meta, notes = read_meta(sys.argv[2])
    hiredis_label = "redis-py-hiredis" if meta.get("hiredis") == "True" else "redis-py"
    out = [
        "# rcache benchmark report",
        "",
        f"- date: {meta.get('date', '?')}",
        f"- machine: {meta.get('nproc', '?')} CPUs ({meta.get('cpu', '?')}), {meta.get('memory', '?')} memory, "
        f"load average before the run: {meta.get('load', '?')}, after: {meta.get('load_after', '?')} "
        "(other processes on the machine add noise)",
        f"- rcache {meta.get('rcache', '?')} ({meta.get('commit', '?')}), {meta.get('redis', '?')}, "
        f"{meta.get('python', '?')}, redis-py {meta.get('redis_py', 'missing')}, "
        f"hiredis active in redis-py: {meta.get('hiredis', 'unknown')}",
        f"- method: private redis-server on 127.0.0.1:{meta.get('port', '?')} (--save '' --appendonly no); "
        f"value {meta.get('value_size', '100')} bytes; {meta.get('rounds', '?')} rounds, each run bounded by "
        f"{meta.get('seconds', '?')} s (redis-benchmark by -n); pinned controls run once; GET keys prepopulated so every GET hits; "
        "p50/p99 from per-operation CLOCK_MONOTONIC / perf_counter_ns timings (redis-benchmark: its own histogram)",
        "",
        "## Targets",
        "",
    ]
    rows, verdicts = target_rows(runs, hiredis_label)
    out += rows
    met = sum(1 for _, _, verdict in verdicts if verdict == "PASS")
    out += ["", f"{met} of {len(verdicts)} target figures met (judged on the unpinned medians)."]
    out += ["", "## All figures", ""]
    out += figure_table(runs)
    out += ["", "Placements: " + "; ".join(f"`{key}` = {text}" for key, text in PLACEMENTS.items()) + "."]
    if notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    print("\n".join(out))


if __name__ == "__main__":
    main()
