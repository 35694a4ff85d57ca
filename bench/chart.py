#!/usr/bin/env python3
"""Draws the one-thread figures collected by bench/run.sh as one PNG chart.

    chart.py RESULTS_FILE META_FILE OUTPUT.png

Reads the files that bench/summarize.py reads. Top panel: get/set operations
per second from one thread for every client on the same server, unpinned
rounds; bottom panel: web2py's cache(key, f, 300) hits and misses. Bars are
medians over the rounds, whiskers the min–max range, red ticks the targets.
Needs matplotlib (bench/run.sh installs it with pip when missing).
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from summarize import WEB2PY_NEAR, best, median, read_meta, read_results  # noqa: E402

COLORS = {"get": "#2f6db5", "set": "#8fb8e8", "cache-hit": "#2e8b57", "cache-miss": "#9fd6b0"}
OP_LEGEND = {"get": "GET", "set": "SET", "cache-hit": "hit", "cache-miss": "miss"}


def short(value):
    """12,345 -> 12.3k, 2,345,678 -> 2.35M."""
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k" if value < 1e5 else f"{value / 1e3:.0f}k"
    return f"{value:.0f}"


def tick(value, _position=None):
    """10000 -> 10k, 1e6 -> 1M: the log axis' labels."""
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def rows_of(runs, meta):
    """The top panel's rows and the web2py panel's: [(client text, {op: (median, min, max)},
    {op: target ops/s}, {op: baseline median} or None for a baseline, starts a group)]."""
    hiredis = "redis-py-hiredis" if meta.get("hiredis") == "True" else "redis-py"

    def spread(label, op):
        found = runs.get(("free", label, op, 1))
        if not found:
            return None
        return (median(found, "ops_per_sec"), min(r["ops_per_sec"] for r in found), best(found, "ops_per_sec"))

    def times(label, op, factor):
        found = spread(label, op)
        return found[0] * factor if found else None

    web2py_targets = {"cache-hit": times("web2py-old", "cache-hit", 5), "cache-miss": times("web2py-old", "cache-miss", 3)}
    # (text, label, targets, baseline label or None for a baseline)
    redis_rows = [
        ("C: redis-benchmark -c 1\n(baseline)", "redis-benchmark", {}, None),
        ("C: rcache, redis://", "redis", {op: times("redis-benchmark", op, 0.8) for op in ("get", "set")},
         "redis-benchmark"),
        ("C: rcache + near cache, hits", "c-near", {"get": 2e6}, "redis-benchmark"),
        ("C: rcache, memory://\n(in-process, no server)", "memory", {"get": 2e6}, "redis-benchmark"),
        (f"Python: redis-py{' + hiredis' if hiredis == 'redis-py-hiredis' else ''}\n(baseline)", hiredis, {}, None),
        ("Python: rcache, redis://", "rcache-py", {op: times(hiredis, op, 2.5) for op in ("get", "set")}, hiredis),
        ("Python: rcache + near cache, hits", "py-near", {"get": 4e5}, hiredis),
        ("Python: rcache, memory://\n(in-process, no server)", "rcache-py-memory", {}, hiredis),
    ]
    web2py_rows = [
        ("old web2py module\n(redis-py + pickle, baseline)", "web2py-old", {}, None),
        ("rcache.web2py", "web2py-rcache", web2py_targets, "web2py-old"),
        ("rcache.web2py\n+ near cache (10,000 entries)", WEB2PY_NEAR, web2py_targets, "web2py-old"),
    ]

    def build(rows, ops):
        built = []
        for text, label, targets, baseline in rows:
            figures = {op: spread(label, op) for op in ops}
            figures = {op: value for op, value in figures.items() if value}
            if not figures:
                continue
            bases = None if baseline is None else {op: times(baseline, op, 1) for op in figures}
            built.append((text, figures, {op: t for op, t in targets.items() if t and op in figures}, bases))
        return built

    return build(redis_rows, ("get", "set")), build(web2py_rows, ("cache-hit", "cache-miss"))


def panel(axes, rows, ops, title, xlabel):
    """Grouped horizontal bars, one group per client from top to bottom, on a log scale."""
    height = 0.8 / len(ops)
    ticks = []
    largest = max(max([high, *targets.values()]) for _, figures, targets, _ in rows for _, _, high in figures.values())
    smallest = min(low for _, figures, _, _ in rows for _, low, _ in figures.values())
    for index, (text, figures, targets, bases) in enumerate(rows):
        center = len(rows) - 1 - index
        ticks.append((center, text))
        if bases is None and index > 0:
            axes.axhline(center + 0.5, color="#888888", linewidth=0.8)
        for slot, op in enumerate(ops):
            if op not in figures:
                continue
            y = center + 0.4 - height * (slot + 0.5)
            value, low, high = figures[op]
            axes.barh(y, value, height=height * 0.9, color=COLORS[op], edgecolor="#333333", linewidth=0.4)
            axes.errorbar(value, y, xerr=[[value - low], [high - value]], fmt="none", ecolor="#222222",
                          elinewidth=0.8, capsize=2)
            label = f"{short(value)}/s"
            if bases and bases.get(op):
                label += f"  {value / bases[op]:.2f}x" if value / bases[op] < 10 else f"  {value / bases[op]:.0f}x"
            # The label follows the bar, or the target tick when that is close enough to collide.
            target = targets.get(op)
            after = target if target and high < target < high * 2.5 else high
            axes.text(after * 1.12, y, label, va="center", fontsize=8)
            if target:
                axes.plot([target], [y], marker="|", markersize=13, markeredgewidth=2.2, color="#d62728")
    axes.set_yticks([center for center, _ in ticks], [text for _, text in ticks], fontsize=8.5)
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set_xscale("log")
    axes.set_xlim(smallest / 2, largest * 8)
    axes.xaxis.set_major_locator(LogLocator(base=10))
    axes.xaxis.set_major_formatter(FuncFormatter(tick))
    axes.grid(axis="x", which="major", color="#cccccc", linewidth=0.6)
    axes.grid(axis="x", which="minor", color="#eeeeee", linewidth=0.4)
    axes.set_axisbelow(True)
    axes.set_title(title, fontsize=10, loc="left")
    axes.set_xlabel(xlabel, fontsize=9)
    handles = [Patch(facecolor=COLORS[op], edgecolor="#333333", label=OP_LEGEND[op]) for op in ops]
    handles += [
        Line2D([], [], color="#222222", marker="|", linestyle="none", markersize=8, label="min–max over rounds"),
        Line2D([], [], color="#d62728", marker="|", linestyle="none", markersize=11, markeredgewidth=2.2,
               label="target"),
    ]
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    runs = read_results(sys.argv[1])
    meta, _ = read_meta(sys.argv[2])
    redis_rows, web2py_rows = rows_of(runs, meta)
    if not redis_rows:
        raise SystemExit("chart.py: no one-thread figures in the results")
    panels = [redis_rows] + ([web2py_rows] if web2py_rows else [])
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(11.5, 1.4 + 0.62 * sum(len(rows) for rows in panels) + 1.1 * len(panels)),
        gridspec_kw={"height_ratios": [len(rows) for rows in panels]}, squeeze=False,
    )
    rounds = meta.get("rounds", "?")
    samples = [meta.get("load"), *(value.split(" ", 1)[1] for value in meta["load_round"]), meta.get("load_after")]
    ones = sorted(float(sample.split()[0]) for sample in samples if sample)
    loads = f"{ones[0]:.1f}–{ones[-1]:.1f}" if ones else "?"
    cpu = meta.get("cpu", "?").replace("(R)", "")
    figure.suptitle(
        f"rcache benchmark, {meta.get('day', meta.get('date', '?'))}: every client from one thread, "
        f"one private Redis server, same run\n"
        f"{meta.get('nproc', '?')}-CPU VM ({cpu}, {meta.get('memory', '?')}), commit {meta.get('commit', '?')}, "
        f"{meta.get('redis', 'Redis ?').replace('server v=', '')}, {meta.get('python', '?')}\n"
        f"bars: median of {rounds} unpinned rounds; labels: ops/s and the ratio to the baseline of the group\n"
        f"1-minute load average {loads} during the run (other processes share the CPUs)",
        fontsize=10,
    )
    panel(axes[0][0], redis_rows, ("get", "set"), f"get / set of a {meta.get('value_size', '100')}-byte value",
          "operations per second, one thread (log scale)")
    if web2py_rows:
        panel(axes[1][0], web2py_rows, ("cache-hit", "cache-miss"),
              "web2py: cache(key, f, 300) from one Python thread, hits and misses",
              "calls per second, one thread (log scale)")
    figure.tight_layout()
    figure.savefig(sys.argv[3], dpi=110)


if __name__ == "__main__":
    main()
