#!/usr/bin/python3
"""Tests of tools/feedback_report.py on a small hand-made log, and of the simulator's format.

  tests/tools/feedback_report_test.py [SOURCE_DIR]
"""

import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else
                             os.path.join(os.path.dirname(__file__), "..", ".."))
REPORT = os.path.join(SOURCE_DIR, "tools", "feedback_report.py")
SIMULATOR = os.path.join(SOURCE_DIR, "tools", "simulate_feedback.py")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tools"))
import feedback_report  # noqa: E402


def served(request_id, version, method, items):
    return {"type": "served", "request_id": request_id, "time": "2026-11-30T15:04:01.870Z",
            "bundle_version": version, "method": method,
            "items": [{"item_id": i, "rank": r, "reason": "" if k == "none" else "some reason",
                       "reason_kind": k, "reason_share": s}
                      for r, (i, k, s) in enumerate(items, 1)]}


def feedback(request_id, item_id, event):
    return {"type": "feedback", "request_id": request_id, "item_id": item_id, "event": event,
            "time": "2026-11-30T15:04:05.123Z", "received": "2026-11-30T15:04:06.000Z"}


# Two requests, six served items, five of them shown; r1/A's click is logged twice (once in
# each file) and r3 was not sampled, so its feedback has no served record.
ROTATED = [
    served("r1", "v1", "cf_exact", [("A", "history_event", 0.8), ("B", "popularity", 0.3),
                                    ("C", "none", 0.0)]),
    feedback("r1", "A", "shown"), feedback("r1", "A", "clicked"),
    feedback("r1", "A", "added_to_cart"), feedback("r1", "A", "explanation_helpful"),
    feedback("r1", "B", "shown"), feedback("r1", "B", "explanation_hidden"),
    feedback("r1", "C", "shown"),
]
CURRENT = [
    feedback("r1", "A", "clicked"),
    served("r2", "v2", "kernel_shap", [("A", "history_event", 0.5),
                                       ("D", "repeat_purchase", 0.9), ("E", "popularity", 0.6)]),
    feedback("r2", "E", "clicked"),  # No "shown": not a shown item, in no denominator.
    feedback("r2", "A", "shown"), feedback("r2", "A", "clicked"),
    feedback("r2", "A", "explanation_not_helpful"),
    feedback("r2", "D", "shown"), feedback("r2", "D", "clicked"),
    feedback("r2", "D", "added_to_cart"), feedback("r2", "D", "purchased"),
    feedback("r2", "D", "explanation_helpful"),
    feedback("r3", "X", "shown"), feedback("r3", "X", "clicked"),
]

# Wilson 95% intervals by hand: p' = (p + z^2/2n) / (1 + z^2/n), half width
# z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2), z = 1.96.
WILSON = {(1, 4): (0.0456, 0.6994), (1, 2): (0.0945, 0.9055), (1, 3): (0.0615, 0.7923),
          (2, 2): (0.3424, 1.0), (0, 1): (0.0, 0.7935), (1, 1): (0.2065, 1.0)}


def write_log(directory, simulated=False):
    for name, records in (("feedback-20261130T150405.123Z-000001.jsonl", ROTATED),
                          ("feedback.jsonl", CURRENT)):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    with open(os.path.join(directory, "notes.txt"), "w", encoding="utf-8") as f:
        f.write("not a log file: the report reads *.jsonl only\n")
    if simulated:
        with open(os.path.join(directory, "simulation.json"), "w", encoding="utf-8") as f:
            f.write('{"simulated": true}\n')


def run_report(log_dir, out_dir, *flags):
    result = subprocess.run([sys.executable, REPORT, log_dir, "--out", out_dir, *flags],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError("report failed: " + result.stderr)
    return result.stdout


class WilsonTest(unittest.TestCase):
    def test_matches_the_hand_computed_intervals(self):
        for (k, n), (lo, hi) in WILSON.items():
            with self.subTest(k=k, n=n):
                got = feedback_report.wilson(k, n)
                self.assertAlmostEqual(got[0], lo, places=4)
                self.assertAlmostEqual(got[1], hi, places=4)

    def test_no_trials_has_no_interval(self):
        self.assertTrue(all(math.isnan(x) for x in feedback_report.wilson(0, 0)))


class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.log = os.path.join(cls.tmp.name, "log")
        cls.out = os.path.join(cls.tmp.name, "out")
        os.makedirs(cls.log)
        write_log(cls.log)
        cls.stdout = run_report(cls.log, cls.out, "--min-coverage", "0.5", "--min-reactions", "2",
                                "--no-plot")
        with open(os.path.join(cls.out, "report.json"), encoding="utf-8") as f:
            cls.report = json.load(f)
        with open(os.path.join(cls.out, "groups.csv"), encoding="utf-8") as f:
            cls.csv = {(r["dimension"], r["group"]): r for r in csv.DictReader(f)}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def group(self, dimension, name):
        return self.report["groups"][dimension][name]

    def assert_rate(self, g, event, k, n):
        self.assertEqual(g[event], k)
        self.assertAlmostEqual(g[event + "_rate"], k / n)
        for got, want in zip(g[event + "_ci"], WILSON[(k, n)]):
            self.assertAlmostEqual(got, want, places=4)

    def test_joins_both_files_counts_a_repeat_once_and_leaves_out_the_unsampled(self):
        q = self.report["quality"]
        self.assertEqual(q["files"], 2)
        self.assertEqual(q["served_records"], 2)
        self.assertEqual(q["feedback_events"], len(ROTATED) + len(CURRENT) - 2)
        self.assertEqual(q["duplicate_events"], 1)
        self.assertEqual(q["shown_items"], 5)
        self.assertEqual(q["feedback_items_without_served_record"], 1)
        self.assertEqual(q["items_with_events_but_not_shown"], 1)

    def test_rates_and_helpful_share_by_reason_kind(self):
        h = self.group("reason_kind", "history_event")  # r1/A and r2/A.
        self.assertEqual(h["shown"], 2)
        self.assertEqual(h["clicked"], 2)  # r1/A's repeated click counts once.
        self.assertEqual(h["added_to_cart"], 1)
        self.assertEqual(h["purchased"], 0)
        self.assertEqual(h["reactions"], 2)
        self.assertAlmostEqual(h["helpful_share"], 0.5)
        for got, want in zip(h["helpful_share_ci"], WILSON[(1, 2)]):
            self.assertAlmostEqual(got, want, places=4)

        p = self.group("reason_kind", "popularity")  # r1/B: hidden.
        self.assertEqual((p["shown"], p["clicked"], p["reactions"]), (1, 0, 1))
        self.assertEqual(p["helpful_share"], 0.0)
        for got, want in zip(p["helpful_share_ci"], WILSON[(0, 1)]):
            self.assertAlmostEqual(got, want, places=4)

        r = self.group("reason_kind", "repeat_purchase")  # r2/D: bought, helpful.
        self.assert_rate(r, "purchased", 1, 1)
        self.assertEqual(r["helpful_share"], 1.0)

        n = self.group("reason_kind", "none")  # r1/C: shown only, no reaction to measure.
        self.assertEqual((n["shown"], n["clicked"], n["reactions"]), (1, 0, 0))
        self.assertIsNone(n["helpful_share"])
        self.assertEqual(list(self.report["groups"]["reason_kind"]),
                         ["history_event", "repeat_purchase", "popularity", "none"])

    def test_rates_by_method_version_and_share_bucket(self):
        self.assert_rate(self.group("method", "cf_exact"), "clicked", 1, 3)
        self.assert_rate(self.group("method", "kernel_shap"), "clicked", 2, 2)
        self.assertEqual(self.group("bundle_version", "v1")["shown"], 3)
        self.assertEqual(self.group("bundle_version", "v2")["shown"], 2)
        # Reasons only, by reason_share; "none" has no bucket.
        self.assertEqual({k: g["shown"] for k, g in self.report["groups"]["reason_share"].items()},
                         {"0.3-0.4": 1, "0.5-0.6": 1, "0.8-0.9": 1, "0.9-1.0": 1})
        row = self.csv[("method", "cf_exact")]
        self.assertEqual(row["shown"], "3")
        self.assertAlmostEqual(float(row["clicked_ci_low"]), 0.0615, places=4)
        self.assertAlmostEqual(float(row["clicked_ci_high"]), 0.7923, places=4)

    def test_setting_maximises_helpful_share_within_the_coverage_bound(self):
        # Reasons: r1/A 0.8 helpful, r1/B 0.3 hidden, r2/A 0.5 not helpful, r2/D 0.9 helpful, of
        # 5 shown items. t <= 0.30 keeps 4 (coverage 80%, helpful 2/4); 0.35..0.50 keeps 3
        # (60%, 2/3); 0.55..0.80 keeps 2 (40% < 50%: not eligible). Ties go to the smaller t.
        by_t = {c["threshold"]: c for c in self.report["candidates"]}
        self.assertAlmostEqual(by_t[0.3]["coverage"], 0.8)
        self.assertAlmostEqual(by_t[0.3]["helpful_share"], 0.5)
        self.assertAlmostEqual(by_t[0.5]["helpful_share"], 2 / 3)
        self.assertFalse(by_t[0.55]["eligible"])
        with open(os.path.join(self.out, "setting.json"), encoding="utf-8") as f:
            setting = json.load(f)
        self.assertEqual(setting["reason_min_share"], 0.35)
        self.assertEqual(setting["flag"], "--reason_min_share=0.35")
        self.assertFalse(setting["simulated"])
        self.assertIn("--reason_min_share=0.35", self.stdout)
        with open(os.path.join(self.out, "report.md"), encoding="utf-8") as f:
            md = f.read()
        self.assertIn("```\n--reason_min_share=0.35\n```", md)
        self.assertNotIn("SIMULATED", md)

    def test_a_looser_coverage_bound_and_a_reaction_floor_move_the_setting(self):
        with tempfile.TemporaryDirectory() as out:
            run_report(self.log, out, "--min-coverage", "0.4", "--min-reactions", "2", "--no-plot")
            with open(os.path.join(out, "setting.json"), encoding="utf-8") as f:
                self.assertEqual(json.load(f)["reason_min_share"], 0.55)  # 2/2 helpful.
            run_report(self.log, out, "--min-coverage", "0.4", "--min-reactions", "3", "--no-plot")
            with open(os.path.join(out, "setting.json"), encoding="utf-8") as f:
                self.assertEqual(json.load(f)["reason_min_share"], 0.35)


class SimulatedLabelTest(unittest.TestCase):
    def test_a_simulated_log_is_labelled_in_every_output_and_the_page_is_filled(self):
        with tempfile.TemporaryDirectory() as tmp:
            log, out = os.path.join(tmp, "log"), os.path.join(tmp, "out")
            os.makedirs(log)
            write_log(log, simulated=True)
            page = os.path.join(tmp, "page.md")
            with open(page, "w", encoding="utf-8") as f:
                f.write("# Title\n%s\nSTALE TABLE\n%s\nafter\n" % (feedback_report.BEGIN,
                                                        feedback_report.END))
            stdout = run_report(log, out, "--min-reactions", "2", "--page", page)
            self.assertIn("SIMULATED", stdout)
            with open(os.path.join(out, "setting.json"), encoding="utf-8") as f:
                self.assertTrue(json.load(f)["simulated"])
            with open(page, encoding="utf-8") as f:
                text = f.read()
            self.assertTrue(text.startswith("# Title\n"))
            self.assertTrue(text.endswith(feedback_report.END + "\nafter\n"))
            self.assertNotIn("STALE TABLE", text)
            self.assertIn("**SIMULATED.**", text)
            with open(os.path.join(out, "feedback.png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


class SimulatorTest(unittest.TestCase):
    def test_writes_the_contract_format_the_same_for_the_same_seed(self):
        logs = []
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(2):
                log = os.path.join(tmp, "log%d" % n)
                subprocess.run([sys.executable, SIMULATOR, "--out", log, "--requests", "40",
                                "--seed", "7", "--max-bytes", "4096"], check=True,
                               capture_output=True)
                names = sorted(os.listdir(log))
                text = ""
                for name in names:
                    if name.endswith(".jsonl"):
                        with open(os.path.join(log, name), encoding="utf-8") as f:
                            text += f.read()
                logs.append((names, text))
            self.assertEqual(logs[0], logs[1])
            names, text = logs[0]
            self.assertIn("simulation.json", names)
            self.assertIn("feedback.jsonl", names)
            self.assertGreater(len([n for n in names if n.startswith("feedback-")]), 1)
            kinds = set()
            for line in text.splitlines():
                rec = json.loads(line)
                if rec["type"] == "served":
                    self.assertEqual(list(rec), ["type", "request_id", "time", "bundle_version",
                                                 "method", "items"])
                    for item in rec["items"]:
                        self.assertEqual(list(item), ["item_id", "rank", "reason", "reason_kind",
                                                      "reason_share"])
                        kinds.add(item["reason_kind"])
                        self.assertEqual(item["reason"] == "", item["reason_kind"] == "none")
                else:
                    self.assertEqual(list(rec), ["type", "request_id", "item_id", "event", "time",
                                                 "received"])
                    self.assertIn(rec["event"], feedback_report.EVENTS)
                    self.assertRegex(rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertEqual(kinds, {"history_event", "repeat_purchase", "popularity", "none"})


if __name__ == "__main__":
    unittest.main()
