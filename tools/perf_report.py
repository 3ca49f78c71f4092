#!/usr/bin/python3
"""Turns recsys_loadgen's JSON lines into the Markdown tables of docs/performance.md.

  /usr/bin/python3 tools/perf_report.py RESULTS.jsonl
"""

import json
import statistics
import sys
from collections import defaultdict


def main():
    closed, opened = defaultdict(list), defaultdict(list)
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            (closed if r["mode"] == "closed" else opened)[r["label"]].append(r)
    base = statistics.median(r["qps"] for r in closed["none"]) if "none" in closed else None
    print("| explanation method | saturation QPS, median (min-max) of runs | none / this |"
          " p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for label, runs in closed.items():
        qps = [r["qps"] for r in runs]
        med = statistics.median(qps)
        ratio = f"{base / med:.2f}x" if base else "-"
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        print(f"| {label} | {med:.0f} ({min(qps):.0f}-{max(qps):.0f}) | {ratio} | {p50:.2f} |"
              f" {p99:.2f} |")
    print()
    print("| series | offered QPS | achieved QPS | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, runs in opened.items():
        for r in sorted(runs, key=lambda r: r["rate"]):
            errors = sum(n for code, n in r["codes"].items() if code != "0")
            print(f"| {label} | {r['rate']:.0f} | {r['ok_qps']:.0f} | {r['p50_ms']:.2f} |"
                  f" {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {errors} |")


if __name__ == "__main__":
    main()
