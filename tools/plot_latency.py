#!/usr/bin/python3
"""Plots latency against offered load from recsys_loadgen's JSON lines.

  /usr/bin/python3 tools/plot_latency.py RESULTS.jsonl OUT.png

Open-loop lines only, one curve per label (p50 and p99 against the offered rate).
"""

import json
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
        points.sort()
        rates = [p[0] for p in points]
        line, = ax.plot(rates, [p[2] for p in points], marker="o", label=f"{label} p99")
        ax.plot(rates, [p[1] for p in points], marker=".", linestyle="--", color=line.get_color(),
                label=f"{label} p50")
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
