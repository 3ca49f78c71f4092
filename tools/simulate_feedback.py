#!/usr/bin/python3
"""Writes a SIMULATED feedback log (docs/feedback_log.md's format) for tools/feedback_report.py.

No shopper produced these events. The simulator exists so that the report, its plot and the
setting it derives can be exercised end to end before a storefront sends real feedback; every
number it leads to is a property of the generative model below, not of shoppers. It marks the
directory it writes with simulation.json (the model's parameters), and the report labels its
table, plot and setting "SIMULATED" whenever that file is present.

Served stream (what was recommended), one of:
  * synthetic (default): --requests requests of --items items each, request ids sim-000000...;
    bundle version sim-bundle-a for the first half, sim-bundle-b for the second; the method
    cf_exact (80%), integrated_gradients (15%) or kernel_shap (5%); each item's reason kind
    history_event (55%), repeat_purchase (8%), popularity (22%) or none (15%), and its
    reason_share drawn from a Beta distribution per kind (SHARE_BETA), times 0.7 under the
    model-attributing methods (the models take part of the score, so the cited event's share is
    smaller); reasons below --reason_min_share are dropped as the server would drop them;
  * --served-from DIR: the "served" records of a real log directory (a real server run with
    --feedback_log_dir=DIR --served_log_sample=1; tools/feedback_report.sh --live makes one),
    copied as they are, so that the reason kinds and shares are the server's own.

Feedback (the generative model; one draw per served item, seeded):
  * shown: every served item, one second after it was served;
  * clicked with p = CLICK_BASE * rank^-0.5 * CLICK_LIFT[kind] * (0.8 + 0.6 * reason_share)
    (position bias; a stronger reason helps, a weak one is worse than none);
    added_to_cart given clicked with CART_GIVEN_CLICK[kind]; purchased given cart with 0.45;
  * an item with a reason gets an explanation reaction with p = 0.25 * rank^-0.3; the reaction
    is explanation_helpful with p = logistic(HELPFUL_BIAS[kind] + 5 * (reason_share - 0.4)),
    else explanation_not_helpful (60%) or explanation_hidden (40%);
  * --served-sample (default 0.9) of the requests keep their served record, as the server's
    --served_log_sample would: the rest's feedback cannot be joined, as in a real sampled log.

Files: feedback.jsonl and, rotated by --max-bytes, feedback-<UTC time>-<seq>.jsonl, as the
server names them.

  tools/simulate_feedback.py --out /tmp/feedback-sim
  tools/simulate_feedback.py --served-from /tmp/live-log --out /tmp/feedback-sim
"""

import argparse
import datetime
import glob
import json
import math
import os
import random
import sys

METHODS = [("cf_exact", 0.80), ("integrated_gradients", 0.15), ("kernel_shap", 0.05)]
KINDS = [("history_event", 0.55), ("repeat_purchase", 0.08), ("popularity", 0.22), ("none", 0.15)]
SHARE_BETA = {"history_event": (2.0, 2.5), "repeat_purchase": (4.0, 2.0), "popularity": (2.5, 2.5)}
MODEL_METHOD_SHARE_FACTOR = 0.7
CLICK_BASE = 0.10
CLICK_LIFT = {"history_event": 1.2, "repeat_purchase": 1.5, "popularity": 1.0, "none": 1.0}
CART_GIVEN_CLICK = {"repeat_purchase": 0.55}
CART_GIVEN_CLICK_DEFAULT = 0.35
PURCHASE_GIVEN_CART = 0.45
REACT_BASE = 0.25
HELPFUL_BIAS = {"history_event": 0.4, "repeat_purchase": 0.9, "popularity": -0.3}
HELPFUL_SLOPE, HELPFUL_CENTER = 5.0, 0.4
NOT_HELPFUL_VS_HIDDEN = 0.6
START = datetime.datetime(2026, 11, 30, 9, 0, 0, tzinfo=datetime.timezone.utc)


def log_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def pick(rng, table):
    x, acc = rng.random(), 0.0
    for value, p in table:
        acc += p
        if x < acc:
            return value
    return table[-1][0]


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class RotatingWriter:
    """Appends lines to DIR/feedback.jsonl, rotating it by size the way the server does."""

    def __init__(self, directory, max_bytes):
        self.directory, self.max_bytes, self.seq = directory, max_bytes, 0
        self.path = os.path.join(directory, "feedback.jsonl")
        self.f = open(self.path, "w", encoding="utf-8")
        self.size = 0

    def write(self, line, when):
        data = (line + "\n").encode("utf-8")
        if self.size > 0 and self.size + len(data) > self.max_bytes:
            self.f.close()
            self.seq += 1
            stamp = when.strftime("%Y%m%dT%H%M%S.") + "%03dZ" % (when.microsecond // 1000)
            os.rename(self.path, os.path.join(self.directory,
                                              "feedback-%s-%06d.jsonl" % (stamp, self.seq)))
            self.f = open(self.path, "w", encoding="utf-8")
            self.size = 0
        self.f.write(line + "\n")
        self.size += len(data)

    def close(self):
        self.f.close()


def synthetic_served(rng, args):
    """Yields synthetic served records."""
    for r in range(args.requests):
        when = START + datetime.timedelta(seconds=7 * r)
        method = pick(rng, METHODS)
        items = []
        ids = rng.sample(range(2000), args.items)  # A response never repeats an item.
        for rank in range(1, args.items + 1):
            kind = pick(rng, KINDS)
            share = 0.0
            if kind != "none":
                share = rng.betavariate(*SHARE_BETA[kind])
                if method != "cf_exact":
                    share *= MODEL_METHOD_SHARE_FACTOR
                if share < args.reason_min_share:
                    kind, share = "none", 0.0
            item_id = "SIM%05d" % ids[rank - 1]
            reason = {
                "history_event": "because you bought SIMULATED ITEM %d" % rng.randrange(2000),
                "repeat_purchase": "you bought it before",
                "popularity": "popular right now",
                "none": "",
            }[kind]
            items.append({"item_id": item_id, "rank": rank, "reason": reason,
                          "reason_kind": kind, "reason_share": round(share, 4)})
        yield {"type": "served", "request_id": "sim-%06d" % r, "time": log_time(when),
               "bundle_version": "sim-bundle-a" if r < args.requests // 2 else "sim-bundle-b",
               "method": method, "items": items}


def real_served(directory):
    """Yields the served records of a real log directory, in time order."""
    records = []
    for path in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    if rec.get("type") == "served":
                        records.append(rec)
    records.sort(key=lambda rec: rec["time"])
    if not records:
        sys.exit("simulate_feedback: no served records in %s (run the server with "
                 "--served_log_sample=1 and requests that carry a request_id)" % directory)
    return records


def feedback_events(rng, item):
    """The events the generative model draws for one shown item, in order."""
    kind, share, rank = item["reason_kind"], float(item["reason_share"]), int(item["rank"])
    events = ["shown"]
    lift = 1.0 if kind == "none" else 0.8 + 0.6 * share
    p_click = min(1.0, CLICK_BASE * rank ** -0.5 * CLICK_LIFT.get(kind, 1.0) * lift)
    if rng.random() < p_click:
        events.append("clicked")
        if rng.random() < CART_GIVEN_CLICK.get(kind, CART_GIVEN_CLICK_DEFAULT):
            events.append("added_to_cart")
            if rng.random() < PURCHASE_GIVEN_CART:
                events.append("purchased")
    if kind != "none" and rng.random() < REACT_BASE * rank ** -0.3:
        z = HELPFUL_BIAS.get(kind, 0.0) + HELPFUL_SLOPE * (share - HELPFUL_CENTER)
        if rng.random() < 1.0 / (1.0 + math.exp(-z)):
            events.append("explanation_helpful")
        elif rng.random() < NOT_HELPFUL_VS_HIDDEN:
            events.append("explanation_not_helpful")
        else:
            events.append("explanation_hidden")
    return events


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="log directory to create")
    parser.add_argument("--served-from", default="",
                        help="take the served records of this real log directory")
    parser.add_argument("--requests", type=int, default=6000, help="synthetic requests")
    parser.add_argument("--items", type=int, default=10, help="items per synthetic request")
    parser.add_argument("--reason-min-share", type=float, default=0.0,
                        help="the server's --reason_min_share the synthetic stream was served with")
    parser.add_argument("--served-sample", type=float, default=0.9,
                        help="share of requests whose served record is written")
    parser.add_argument("--max-bytes", type=int, default=1 << 20, help="rotation size")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    if glob.glob(os.path.join(args.out, "*.jsonl")):
        sys.exit("simulate_feedback: %s already holds a log" % args.out)
    served = real_served(args.served_from) if args.served_from else synthetic_served(rng, args)
    writer = RotatingWriter(args.out, args.max_bytes)
    counts = {"requests": 0, "served_records": 0, "feedback_events": 0}
    for rec in served:
        counts["requests"] += 1
        when = parse_time(rec["time"])
        if args.served_from or rng.random() < args.served_sample:
            writer.write(dumps(rec), when)
            counts["served_records"] += 1
        for item in rec["items"]:
            t = when + datetime.timedelta(seconds=1)
            for event in feedback_events(rng, item):
                line = {"type": "feedback", "request_id": rec["request_id"],
                        "item_id": item["item_id"], "event": event, "time": log_time(t),
                        "received": log_time(t + datetime.timedelta(milliseconds=120))}
                writer.write(dumps(line), t)
                counts["feedback_events"] += 1
                t += datetime.timedelta(seconds=2)
    writer.close()

    model = {
        "simulated": True,
        "generator": "tools/simulate_feedback.py",
        "served_stream": ("real served records of " + os.path.abspath(args.served_from)
                          if args.served_from else "synthetic"),
        "seed": args.seed, "served_sample": 1.0 if args.served_from else args.served_sample,
        "counts": counts,
        "model": {"methods": METHODS, "kinds": KINDS, "share_beta": SHARE_BETA,
                  "model_method_share_factor": MODEL_METHOD_SHARE_FACTOR,
                  "click_base": CLICK_BASE, "click_lift": CLICK_LIFT,
                  "cart_given_click": CART_GIVEN_CLICK,
                  "cart_given_click_default": CART_GIVEN_CLICK_DEFAULT,
                  "purchase_given_cart": PURCHASE_GIVEN_CART, "react_base": REACT_BASE,
                  "helpful_bias": HELPFUL_BIAS, "helpful_slope": HELPFUL_SLOPE,
                  "helpful_center": HELPFUL_CENTER,
                  "not_helpful_vs_hidden": NOT_HELPFUL_VS_HIDDEN},
    }
    with open(os.path.join(args.out, "simulation.json"), "w", encoding="utf-8") as f:
        json.dump(model, f, indent=1)
        f.write("\n")
    print("simulate_feedback: SIMULATED log in %s: %d requests, %d served records, "
          "%d feedback events" % (args.out, counts["requests"], counts["served_records"],
                                  counts["feedback_events"]))


if __name__ == "__main__":
    main()
