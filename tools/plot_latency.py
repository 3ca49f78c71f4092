#!/usr/bin/python3
"""Plots latency against offered load from recsys_loadgen's JSON lines.

  /usr/bin/python3 tools/plot_latency.py RESULTS.jsonl OUT.png

Open-loop lines only, one curve per label: the median over repeated runs of p50 and p99
against the offered rate, the p99's range (min-max) as error bars.
"""

import json
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    results, out = sys.argv[1], sys.argv[2]
    curves = defaultdict(list)
    with open(results, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["mode"] == "open":
                curves[r["label"]].append((r["rate"], r["p50_ms"], r["p99_ms"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in sorted(curves.items()):
        by_rate = defaultdict(list)
        for rate, p50, p99 in points:
            by_rate[rate].append((p50, p99))
        rates = sorted(by_rate)
        p99 = [statistics.median(v[1] for v in by_rate[r]) for r in rates]
        low = [m - min(v[1] for v in by_rate[r]) for m, r in zip(p99, rates)]
        high = [max(v[1] for v in by_rate[r]) - m for m, r in zip(p99, rates)]
        line = ax.errorbar(rates, p99, yerr=[low, high], marker="o", capsize=3,
                           label=f"{label} p99")[0]
        ax.plot(rates, [statistics.median(v[0] for v in by_rate[r]) for r in rates], marker=".",
                linestyle="--", color=line.get_color(), label=f"{label} p50")
    ax.axhline(10, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("offered load (requests per second, open loop)")
    ax.set_ylabel("latency from intended send time (ms)")
    ax.set_yscale("log")
    ax.set_title("recsys_server, default bundle, top 10, 2 cores")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
