#!/usr/bin/python3
"""Turns a feedback log (docs/feedback_log.md) into rates, a plot and --reason_min_share.

Reads every *.jsonl of LOG_DIR, joins each feedback event with the served record of the same
(request_id, item_id) (a sampled log has feedback without one: counted, then left out), and
groups the shown items by reason kind, attribution method, bundle version and reason_share
bucket. Per group: items shown; the share of them clicked, added to cart and purchased; and the
helpful share of the explanation reactions, helpful / (helpful + not helpful + hidden); each with
a Wilson 95% interval. An event repeated for the same (request_id, item_id) counts once, as the
server stores it once.

The setting: among the candidate thresholds t = 0, 0.05, ..., 0.95, the reason_min_share that
maximises the helpful share of the reactions to the reasons that would still be shown (those with
reason_share >= t), subject to a reason staying on at least --min-coverage of the shown items and
at least --min-reactions reactions being left to measure it; ties go to the smaller t. Thresholds
below the log's own smallest reason_share cannot be told apart (reasons under the server's
threshold were never shown), so they measure the same as that smallest one.

Writes to --out (default docs/feedback): feedback.png, groups.csv, report.json, setting.json,
report.md (the tables); with --page, also replaces the text between the markers
<!-- feedback-report:begin --> and <!-- feedback-report:end --> of that page with report.md.
A directory holding simulation.json (tools/simulate_feedback.py) is labelled SIMULATED in every
output.

  tools/feedback_report.py LOG_DIR [--out docs/feedback] [--page docs/feedback.md]
"""

import argparse
import collections
import csv
import glob
import json
import math
import os
import sys

Z95 = 1.959963984540054
EVENTS = ("shown", "clicked", "added_to_cart", "purchased", "explanation_helpful",
          "explanation_not_helpful", "explanation_hidden")
RATES = (("clicked", "click"), ("added_to_cart", "add-to-cart"), ("purchased", "purchase"))
KIND_ORDER = ("history_event", "repeat_purchase", "popularity", "context", "side_feature", "none")
BUCKET = 0.1
CANDIDATES = [round(0.05 * i, 2) for i in range(20)]
BEGIN, END = "<!-- feedback-report:begin -->", "<!-- feedback-report:end -->"


def wilson(k, n, z=Z95):
    """The Wilson score interval of k successes in n trials; (nan, nan) when n is 0."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, center - half), min(1.0, center + half))


def read_log(log_dir):
    """Returns (served items by (request_id, item_id), feedback event sets by the same key,
    data-quality counts)."""
    paths = sorted(glob.glob(os.path.join(log_dir, "*.jsonl")))
    if not paths:
        sys.exit("feedback_report: no *.jsonl in %s" % log_dir)
    served, events = {}, collections.defaultdict(set)
    quality = collections.Counter(files=len(paths))
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit("feedback_report: %s:%d: %s" % (path, n, e))
                if rec.get("type") == "served":
                    quality["served_records"] += 1
                    for item in rec["items"]:
                        served[(rec["request_id"], item["item_id"])] = {
                            "reason_kind": item.get("reason_kind") or "none",
                            "reason_share": float(item.get("reason_share", 0.0)),
                            "rank": int(item.get("rank", 0)),
                            "method": rec.get("method", ""),
                            "bundle_version": rec.get("bundle_version", ""),
                        }
                elif rec.get("type") == "feedback":
                    key = (rec["request_id"], rec["item_id"])
                    if rec["event"] in events[key]:
                        quality["duplicate_events"] += 1
                    events[key].add(rec["event"])
                    quality["feedback_events"] += 1
                else:
                    quality["unknown_records"] += 1
    return served, events, quality


def join(served, events, quality):
    """The shown items, each its served record plus its event set."""
    shown = []
    for key, evs in events.items():
        item = served.get(key)
        if item is None:
            quality["feedback_items_without_served_record"] += 1
            continue
        if "shown" not in evs:
            quality["items_with_events_but_not_shown"] += 1
            continue
        shown.append(dict(item, events=evs))
    quality["shown_items"] = len(shown)
    return shown


def bucket_of(share):
    b = min(int(share / BUCKET + 1e-9), int(round(1 / BUCKET)) - 1)
    return "%.1f-%.1f" % (b * BUCKET, (b + 1) * BUCKET)


def stats(items):
    """Counts, rates and Wilson intervals of a group of shown items."""
    s = {"shown": len(items)}
    for event, _ in RATES:
        k = sum(1 for it in items if event in it["events"])
        s[event] = k
        s[event + "_rate"] = k / len(items) if items else math.nan
        s[event + "_ci"] = wilson(k, len(items))
    for e in ("explanation_helpful", "explanation_not_helpful", "explanation_hidden"):
        s[e] = sum(1 for it in items if e in it["events"])
    reactions = s["explanation_helpful"] + s["explanation_not_helpful"] + s["explanation_hidden"]
    s["reactions"] = reactions
    s["helpful_share"] = s["explanation_helpful"] / reactions if reactions else math.nan
    s["helpful_share_ci"] = wilson(s["explanation_helpful"], reactions)
    return s


def group(shown, dimension):
    groups = collections.defaultdict(list)
    for it in shown:
        if dimension == "reason_share":
            if it["reason_kind"] == "none":
                continue
            groups[bucket_of(it["reason_share"])].append(it)
        else:
            groups[it[dimension]].append(it)
    if dimension == "reason_kind":
        order = [k for k in KIND_ORDER if k in groups] + sorted(set(groups) - set(KIND_ORDER))
    else:
        order = sorted(groups)
    return [(name, stats(groups[name])) for name in order]


def derive_setting(shown, min_coverage, min_reactions):
    """The candidate thresholds and the chosen one (see the module comment)."""
    rows = []
    reasons = [it for it in shown if it["reason_kind"] != "none"]
    for t in CANDIDATES:
        kept = [it for it in reasons if it["reason_share"] >= t]
        s = stats(kept)
        coverage = len(kept) / len(shown) if shown else 0.0
        eligible = coverage >= min_coverage and s["reactions"] >= min_reactions
        rows.append({"threshold": t, "coverage": coverage, "reasons_kept": len(kept),
                     "reactions": s["reactions"], "helpful": s["explanation_helpful"],
                     "helpful_share": s["helpful_share"], "helpful_share_ci": s["helpful_share_ci"],
                     "eligible": eligible})
    best = None
    for row in rows:
        if row["eligible"] and (best is None or row["helpful_share"] > best["helpful_share"]):
            best = row
    return rows, best


def pct(x):
    return "–" if x is None or math.isnan(x) else "%.1f%%" % (100 * x)


def ci(pair):
    lo, hi = pair
    return "–" if math.isnan(lo) else "%.1f–%.1f%%" % (100 * lo, 100 * hi)


def table(title, rows):
    out = ["| %s | shown | click rate (95%% CI) | add-to-cart rate (95%% CI) | "
           "purchase rate (95%% CI) | reactions | helpful share (95%% CI) |" % title,
           "| --- | ---: | --- | --- | --- | ---: | --- |"]
    for name, s in rows:
        cells = ["%s (%s)" % (pct(s[e + "_rate"]), ci(s[e + "_ci"])) for e, _ in RATES]
        out.append("| %s | %d | %s | %d | %s (%s) |" % (
            name or "(empty)", s["shown"], " | ".join(cells), s["reactions"],
            pct(s["helpful_share"]), ci(s["helpful_share_ci"])))
    return "\n".join(out)


def markdown(label, quality, tables, setting_rows, best, args):
    lines = []
    if label:
        lines += ["> **%s.** Every number below comes from a simulated log "
                  "(`tools/simulate_feedback.py`; see "
                  "[What is simulated](#what-is-simulated)), not from shoppers." % label, ""]
    lines += ["Log: %d files, %d served records, %d feedback events (%d repeated, counted once); "
              "%d shown items joined; %d items' feedback had no served record (sampled out) and "
              "%d items had events but no `shown`." % (
                  quality["files"], quality["served_records"], quality["feedback_events"],
                  quality["duplicate_events"], quality["shown_items"],
                  quality["feedback_items_without_served_record"],
                  quality["items_with_events_but_not_shown"]), ""]
    for title, rows in tables:
        lines += [table(title, rows), ""]
    lines += ["Candidate thresholds (a reason is shown when its reason_share >= t; coverage = "
              "shown items that keep a reason; eligible: coverage >= %s and >= %d reactions):"
              % (pct(args.min_coverage), args.min_reactions), "",
              "| t | coverage | reactions | helpful share (95% CI) | eligible |",
              "| ---: | ---: | ---: | --- | :---: |"]
    for row in setting_rows:
        mark = "**chosen**" if best is row else ("yes" if row["eligible"] else "no")
        lines.append("| %.2f | %s | %d | %s (%s) | %s |" % (
            row["threshold"], pct(row["coverage"]), row["reactions"], pct(row["helpful_share"]),
            ci(row["helpful_share_ci"]), mark))
    lines.append("")
    if best is None:
        lines.append("No threshold is eligible: keep `--reason_min_share=0`.")
    else:
        lines += ["Derived setting%s: helpful share %s (95%% CI %s), a reason on %s of shown "
                  "items." % (" from the SIMULATED log" if label else "",
                              pct(best["helpful_share"]), ci(best["helpful_share_ci"]),
                              pct(best["coverage"])), "",
                  "```", "--reason_min_share=%.2f" % best["threshold"], "```"]
    return "\n".join(lines) + "\n"


def plot(path, label, kind_rows, bucket_rows, setting_rows, best):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 5.2),
                                        gridspec_kw={"width_ratios": [1.5, 1, 1.4]})
    names = [n for n, _ in kind_rows]
    width = 0.26
    colors = ("#4c72b0", "#dd8452", "#55a868")
    for j, (event, title) in enumerate(RATES):
        xs = [i + (j - 1) * width for i in range(len(names))]
        ys = [100 * s[event + "_rate"] for _, s in kind_rows]
        lo = [100 * (s[event + "_rate"] - s[event + "_ci"][0]) for _, s in kind_rows]
        hi = [100 * (s[event + "_ci"][1] - s[event + "_rate"]) for _, s in kind_rows]
        ax1.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=colors[j], label=title + " rate")
    ax1.set_xticks(range(len(names)))
    ax1.set_xticklabels(names)
    ax1.set_ylabel("% of shown items")
    ax1.set_title("Engagement by reason kind")
    ax1.legend(frameon=False)

    def share_bars(ax, xs, rows, width):
        ys = [100 * s["helpful_share"] if s["reactions"] else 0 for _, s in rows]
        lo = [100 * (s["helpful_share"] - s["helpful_share_ci"][0]) if s["reactions"] else 0
              for _, s in rows]
        hi = [100 * (s["helpful_share_ci"][1] - s["helpful_share"]) if s["reactions"] else 0
              for _, s in rows]
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color="#8172b3")
        ax.set_ylim(0, 100)
        ax.set_ylabel("helpful / all reactions, %")

    reacted = [r for r in kind_rows if r[1]["reactions"]]
    share_bars(ax2, range(len(reacted)), reacted, 0.6)
    ax2.set_xticks(range(len(reacted)))
    ax2.set_xticklabels([n for n, _ in reacted])
    ax2.set_title("Helpful share by reason kind")

    # Buckets on a numeric axis, so that the threshold and the coverage curve share it.
    mids = [float(n.split("-")[0]) + BUCKET / 2 for n, _ in bucket_rows]
    share_bars(ax3, mids, bucket_rows, BUCKET * 0.8)
    ax3.set_xlim(0, 1)
    ax3.set_xticks([0.1 * i for i in range(11)])
    ax3.set_xlabel("reason_share (bars: buckets of 0.1)")
    ax3.set_title("Helpful share by reason_share, and the threshold")
    cov = ax3.twinx()
    cov.plot([r["threshold"] for r in setting_rows], [100 * r["coverage"] for r in setting_rows],
             color="#55a868", marker=".")
    cov.text(0.01, 89, "reasons kept at t", color="#55a868", va="bottom")
    cov.set_ylim(0, 100)
    cov.set_ylabel("shown items keeping a reason, %", color="#55a868")
    cov.tick_params(axis="y", colors="#55a868")
    if best is not None:
        ax3.axvline(best["threshold"], color="#c44e52", linestyle="--")
        ax3.text(best["threshold"] + 0.02, 97, "chosen t = %.2f" % best["threshold"],
                 color="#c44e52", va="top", ha="left")
    for ax in (ax1, ax2, ax3):
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    title = "feedback by reason (error bars: 95% Wilson intervals)"
    if label:
        title = "%s log (tools/simulate_feedback.py), not real shoppers: %s" % (label, title)
    fig.suptitle(title,
                 fontsize=13, color="#c44e52" if label else "black", fontweight="bold")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(path, tables):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        header = ["dimension", "group", "shown"]
        for event, _ in RATES:
            header += [event, event + "_rate", event + "_ci_low", event + "_ci_high"]
        header += ["explanation_helpful", "explanation_not_helpful", "explanation_hidden",
                   "reactions", "helpful_share", "helpful_share_ci_low", "helpful_share_ci_high"]
        w.writerow(header)
        for dimension, rows in tables:
            for name, s in rows:
                row = [dimension, name, s["shown"]]
                for event, _ in RATES:
                    row += [s[event], "%.6f" % s[event + "_rate"],
                            "%.6f" % s[event + "_ci"][0], "%.6f" % s[event + "_ci"][1]]
                row += [s["explanation_helpful"], s["explanation_not_helpful"],
                        s["explanation_hidden"], s["reactions"], "%.6f" % s["helpful_share"],
                        "%.6f" % s["helpful_share_ci"][0], "%.6f" % s["helpful_share_ci"][1]]
                w.writerow(row)


def json_safe(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log_dir")
    parser.add_argument("--out", default="docs/feedback", help="directory of the outputs")
    parser.add_argument("--page", default="", help="Markdown page whose report section to fill")
    parser.add_argument("--min-coverage", type=float, default=0.5,
                        help="least share of shown items that must keep a reason")
    parser.add_argument("--min-reactions", type=int, default=30,
                        help="least explanation reactions a threshold must leave")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()

    sim_path = os.path.join(args.log_dir, "simulation.json")
    label = "SIMULATED" if os.path.exists(sim_path) else ""
    served, events, quality = read_log(args.log_dir)
    shown = join(served, events, quality)
    dims = (("reason kind", "reason_kind"), ("method", "method"),
            ("bundle version", "bundle_version"), ("reason_share", "reason_share"))
    tables = [(title, group(shown, dim)) for title, dim in dims]
    setting_rows, best = derive_setting(shown, args.min_coverage, args.min_reactions)

    os.makedirs(args.out, exist_ok=True)
    md = markdown(label, quality, tables, setting_rows, best, args)
    with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as f:
        f.write(md)
    write_csv(os.path.join(args.out, "groups.csv"),
              [(dim, rows) for (_, dim), (_, rows) in zip(dims, tables)])
    threshold = best["threshold"] if best else 0.0
    if label:
        with open(sim_path, encoding="utf-8") as f:
            source = "SIMULATED by %s, seed %s" % (
                "tools/simulate_feedback.py", json.load(f).get("seed", "?"))
    else:
        source = os.path.abspath(args.log_dir)
    setting = {"simulated": bool(label), "log": source,
               "reason_min_share": threshold, "flag": "--reason_min_share=%.2f" % threshold,
               "rule": {"min_coverage": args.min_coverage, "min_reactions": args.min_reactions,
                        "candidates": CANDIDATES},
               "chosen": best}
    with open(os.path.join(args.out, "setting.json"), "w", encoding="utf-8") as f:
        json.dump(json_safe(setting), f, indent=1)
        f.write("\n")
    report = {"simulated": bool(label), "quality": dict(quality),
              "groups": {dim: {name: s for name, s in rows}
                         for (_, dim), (_, rows) in zip(dims, tables)},
              "candidates": setting_rows, "setting": setting}
    with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as f:
        json.dump(json_safe(report), f, indent=1)
        f.write("\n")
    if not args.no_plot:
        plot(os.path.join(args.out, "feedback.png"), label, tables[0][1], tables[3][1],
             setting_rows, best)
    if args.page:
        with open(args.page, encoding="utf-8") as f:
            page = f.read()
        if BEGIN not in page or END not in page:
            sys.exit("feedback_report: %s lacks the %s / %s markers" % (args.page, BEGIN, END))
        head, rest = page.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(args.page, "w", encoding="utf-8") as f:
            f.write(head + BEGIN + "\n" + md + END + tail)
    print("%s%s" % ("SIMULATED log: " if label else "", setting["flag"]))


if __name__ == "__main__":
    main()
