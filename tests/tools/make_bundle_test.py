#!/usr/bin/python3
"""tools/make_bundle.py end to end on the vendored small sample: the tuned bundle carries its
validation table, applies its own drop rule, and loads in recsys_evaluate; --tune=0 keeps the
given settings; a file in another layout is a clear error.

  make_bundle_test.py SOURCE_DIR BUILDER EVALUATOR
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE, BUILDER, EVALUATOR = sys.argv[1:4]
SMALL = os.path.join(SOURCE, "data/online-retail-ii/online_retail_ii_small.csv.gz")
MAKE = [sys.executable, os.path.join(SOURCE, "tools/make_bundle.py"), f"--input={SMALL}",
        f"--builder={BUILDER}", f"--evaluator={EVALUATOR}", "--cutoff=2011-11-09",
        "--epochs=3", "--dim=16"]


def run(args):
    return subprocess.run(args, capture_output=True, text=True)


sys.path.insert(0, os.path.join(SOURCE, "tools"))
import make_bundle  # noqa: E402


class DropRuleTest(unittest.TestCase):
    SOURCES = ["cf", "pop", "cnn", "rnn"]

    def test_a_model_that_does_not_beat_recent_popularity_in_either_variant_is_dropped(self):
        # (ndcg, cases, interval of the method minus recent_popular).
        singles = {("recent_popular", "all"): (0.10, 9, None),
                   ("recent_popular", "new"): (0.05, 8, None),
                   ("cf", "all"): (0.05, 9, (-0.1, -0.01)),  # CF and pop are never dropped.
                   ("cf", "new"): (0.01, 8, (-0.1, -0.01)),
                   ("pop", "all"): (0.10, 9, (-0.01, 0.01)),
                   ("pop", "new"): (0.05, 8, (-0.01, 0.01)),
                   # Above on average on new items, the interval across 0.
                   ("cnn", "all"): (0.20, 9, (0.05, 0.15)), ("cnn", "new"): (0.06, 8, (-0.01, 0.03)),
                   ("rnn", "all"): (0.20, 9, (0.0001, 0.2)), ("rnn", "new"): (0.07, 8, (0.01, 0.03))}
        dropped, notes = make_bundle.drop_losers(singles, self.SOURCES)
        self.assertEqual(dropped, {"cnn"})
        self.assertEqual(notes, ["cnn: weight 0, not significantly above recent_popular on "
                                 "validation (new items 0.0600 vs 0.0500, difference 95% CI "
                                 "[-0.0100, +0.0300])"])
        singles[("rnn", "all")] = (0.20, 9, (0.0, 0.2))  # Touching 0 is not above it.
        dropped, notes = make_bundle.drop_losers(singles, self.SOURCES)
        self.assertEqual(dropped, {"cnn", "rnn"})
        self.assertTrue(notes[1].startswith("rnn: weight 0, not significantly above "
                                            "recent_popular on validation (all items 0.2000"),
                        notes)

    def test_a_dropped_model_stays_at_zero_in_every_search(self):
        # The more model weight the better: the kept model rises, the dropped one does not.
        b = FakeBuilder(lambda w, p: w["cnn"] + w["rnn"] - p, cases=100,
                        intervals={("cnn", "new"): (-0.01, 0.02)})
        main, new_items, new_shoppers, notes, _ = make_bundle.tune_fusion(
            b, "bundle", 0, self.SOURCES)
        for state in (main, new_items, new_shoppers):
            self.assertEqual((state["weights"]["cnn"], state["weights"]["rnn"]), (0.0, 3))
        self.assertTrue(notes[0].startswith("cnn: weight 0, not significantly above"), notes)


class FakeBuilder:
    """Scores each setting by `objective(weights, penalty)` and each method alone by
    `alone(method, variant, flags)` (default 0), over `cases` cases, with the interval against
    recent_popular from `intervals` {(method, variant): (low, high)} (default (0.01, 0.02)) when
    recent_popular is among the methods; counts the settings scored (score_options' cache,
    ndcg_of, spares those scored before)."""

    def __init__(self, objective, cases=1, alone=lambda m, v, flags: 0.0, intervals=None):
        self.objective, self.cases, self.alone = objective, cases, alone
        self.intervals = intervals or {}
        self.report, self.scored, self.ndcg_of = [], 0, {}

    def progress(self, message):
        pass

    def evaluate(self, bundle, end, methods, settings=(), variants=make_bundle.VARIANTS,
                 flags=()):
        self.scored += len(settings)
        compared = "recent_popular" in methods

        def interval(m, v):
            if not compared or m == "recent_popular":
                return None
            return self.intervals.get((m, v), (0.01, 0.02))
        out = {(m, v): (self.alone(m, v, flags), self.cases, interval(m, v))
               for m in methods for v in variants}
        out.update({(label, variants[0]): (self.objective(w, p), self.cases, None)
                    for label, w, p, _ in settings})
        return out


class SearchTest(unittest.TestCase):
    START = {"weights": {"cf": 1.0, "pop": 0.3, "cnn": 0.3, "rnn": 0.3}, "penalty": 0.0,
             "exclude": True}
    COORDINATES = ["pop", "cnn", "rnn", "penalty"]

    def test_the_grid_finds_the_peak_that_moving_one_weight_at_a_time_cannot_reach(self):
        # A ridge: the top needs pop and the penalty to rise together; from the start, raising
        # either alone loses, so a search one coordinate at a time stays where it began.
        def objective(w, p):
            if abs(w["pop"] - 0.1) < 1e-9 and abs(p - 0.1) < 1e-9:
                return 0.9 - abs(w["cnn"] - 0.3) - abs(w["rnn"] - 0.3)
            return 0.5 - abs(w["pop"] - 0.3) - p
        b = FakeBuilder(objective)
        state = make_bundle.search(b, "bundle", 0, "new", self.START, self.COORDINATES)
        self.assertEqual(state["weights"], {"cf": 1.0, "pop": 0.1, "cnn": 0.3, "rnn": 0.3})
        self.assertEqual(state["penalty"], 0.1)

    def test_the_search_stops_once_every_coordinate_is_at_its_best(self):
        # A smooth bowl around the grid's best: the grid, then one coordinate moves (rnn) and
        # each of the others is tried once more; no second full round.
        def objective(w, p):
            return -abs(w["pop"] - 0.1) - abs(w["cnn"] - 0.3) - abs(w["rnn"] - 0.2) - abs(p - 0.1)
        b = FakeBuilder(objective)
        state = make_bundle.search(b, "bundle", 0, "new", self.START, self.COORDINATES)
        self.assertEqual(state["weights"], {"cf": 1.0, "pop": 0.1, "cnn": 0.3, "rnn": 0.2})
        self.assertEqual(state["penalty"], 0.1)
        grid = len(make_bundle.GRID_POP) * len(make_bundle.GRID_MODELS) * \
            len(make_bundle.GRID_PENALTIES)
        weights, penalties = len(make_bundle.WEIGHTS), len(make_bundle.PENALTIES)
        # pop, cnn, rnn (moves), penalty, then pop and cnn again.
        rows = [r for r in b.report if r.startswith("| new |")]
        self.assertEqual(len(rows), grid + 5 * weights + penalties)
        # Each setting is scored once, however often the searches try it.
        self.assertEqual(b.scored, len({r.split(" | ")[2] for r in rows}))
        self.assertLess(b.scored, len(rows))


class RecentDaysTest(unittest.TestCase):
    def test_the_window_where_recent_popularity_ranks_best_on_both_variants(self):
        # 7 days is best on new items, 14 on the mean of both; ties go to the first listed.
        table = {(7, "all"): 0.08, (7, "new"): 0.07, (14, "all"): 0.10, (14, "new"): 0.06,
                 (28, "all"): 0.10, (28, "new"): 0.05, (56, "all"): 0.09, (56, "new"): 0.04}

        def alone(method, variant, flags):
            self.assertEqual(method, "recent_popular")
            (flag,) = flags
            return table[(int(flag.removeprefix("--recent_days=")), variant)]
        b = FakeBuilder(None, alone=alone)
        self.assertEqual(make_bundle.choose_recent_days(b, "bundle", 0), 14)
        self.assertEqual(len(b.report), 2 * len(make_bundle.RECENT_DAYS))
        table[(28, "new")] = 0.06  # A tie with 14 days: the first listed (28) wins.
        self.assertEqual(make_bundle.choose_recent_days(b, "bundle", 0), 28)


class NewShoppersTest(unittest.TestCase):
    SOURCES = ["cf", "pop", "cnn", "rnn"]
    MAIN = {"weights": {"cf": 1.0, "pop": 0.2, "cnn": 0.0, "rnn": 0.3}, "penalty": 0.05,
            "exclude": True}

    def tune(self, objective, cases):
        b = FakeBuilder(objective, cases)
        return make_bundle.tune_new_shoppers(b, "bundle", 0, self.SOURCES, self.MAIN, {"cnn"})

    def test_the_grid_may_weigh_the_models_zero(self):
        # Popularity alone, the penalty at 0.1, ranks best.
        state, note, _ = self.tune(
            lambda w, p: w["pop"] - w["rnn"] - w["cnn"] - abs(p - 0.1),
            make_bundle.MIN_NEW_SHOPPERS)
        self.assertIsNone(note)
        self.assertEqual(state["weights"], {"cf": 1.0, "pop": 1, "cnn": 0.0, "rnn": 0})
        self.assertEqual((state["penalty"], state["exclude"]), (0.1, False))

    def test_a_dropped_model_stays_at_zero(self):
        # The more model weight the better: the kept model rises, the dropped one does not.
        b = FakeBuilder(lambda w, p: w["cnn"] + w["rnn"] - abs(w["pop"] - 0.3) - p, 100)
        state, _, _ = make_bundle.tune_new_shoppers(b, "bundle", 0, self.SOURCES, self.MAIN,
                                                    {"cnn"})
        self.assertEqual(state["weights"], {"cf": 1.0, "pop": 0.3, "cnn": 0.0, "rnn": 1})
        # The general defaults, then the grid without its settings where nothing ranks (pop
        # and the models at 0).
        penalties = len(make_bundle.GRID_PENALTIES)
        self.assertEqual(b.scored, 1 + len(make_bundle.GRID_POP) * (
            1 + len(make_bundle.GRID_MODELS)) * penalties - penalties)

    def test_the_general_defaults_are_written_out_when_nothing_in_the_grid_beats_them(self):
        # Written out, so that a new shopper whose request excludes the history gets them too
        # rather than the new-item defaults.
        state, note, _ = self.tune(lambda w, p: -abs(w["pop"] - 0.2) - abs(p - 0.05), 100)
        self.assertEqual((state, note), (dict(self.MAIN, exclude=False), None))

    def test_too_few_new_shoppers_keep_the_general_defaults_with_a_note(self):
        cases = make_bundle.MIN_NEW_SHOPPERS - 1
        state, note, singles = self.tune(lambda w, p: w["pop"], cases)
        self.assertIsNone(state)
        self.assertIn(f"only {cases} new shoppers on validation", note)
        self.assertEqual(singles[("pop", "cold")][:2], (0.0, cases))


class SpawnPoolTest(unittest.TestCase):
    def test_an_error_stops_the_fits_still_running(self):
        # A failed stage must not wait for the final fits beside it (minutes) to show.
        with self.assertRaisesRegex(SystemExit, "boom"):
            with make_bundle.spawn_pool(1) as pool:
                future = pool.submit(time.sleep, 600)
                while not future.running():
                    time.sleep(0.05)
                workers = list(pool._processes.values())
                sys.exit("boom")
        self.assertTrue(workers)

        def gone(worker):  # The pool's own thread may have reaped it: then is_alive() stays True.
            try:
                os.kill(worker.pid, 0)
            except ProcessLookupError:
                return True
            return not worker.is_alive()

        deadline = time.time() + 60
        while not all(gone(w) for w in workers) and time.time() < deadline:
            time.sleep(0.1)
        self.assertTrue(all(gone(w) for w in workers))


class MakeBundleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="make_bundle_test")
        cls.result = run(MAKE + [f"--out_root={cls.root}", "--version=tuned"])
        cls.bundle = os.path.join(cls.root, "tuned")

    def manifest(self):
        with open(os.path.join(self.bundle, "manifest.json"), encoding="utf-8") as f:
            return json.load(f)

    def test_builds_and_reports_progress(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])
        self.assertIn("[make_bundle", self.result.stderr)
        self.assertIn("validation window 2011-10-12 00:00:00 .. 2011-11-09 00:00:00",
                      self.result.stderr)
        # The fits side by side each report every epoch on a line of its own, named.
        for fit in ("cnn lr 0.005", "rnn lr 0.005", "rnn lr 0.01"):
            for epoch in (1, 2, 3):
                self.assertRegex(self.result.stderr,
                                 rf"(?m)^{fit} epoch {epoch}/3 100\.0% loss .* validation NDCG@10 "
                                 r"all \d\.\d{4} new \d\.\d{4}$")
        for name in ("cnn.pt", "rnn.pt", "cf_index.bin", "items.tsv", "validation.md"):
            self.assertTrue(os.path.exists(os.path.join(self.bundle, name)), name)
        self.assertEqual([e for e in os.listdir(self.root) if e.startswith(".staging")], [])

    def test_the_validation_table_covers_every_source_baseline_and_ablation(self):
        v = self.manifest()["validation"]
        self.assertEqual(v["end_unix"] - v["start_unix"], 28 * 86400)
        rows = {(r["method"], r["variant"]): r for r in v["rows"]}
        for method in ("recent_popular", "cf", "pop", "cnn", "rnn", "blend"):
            for variant in ("all", "new"):
                self.assertIn((method, variant), rows)
                self.assertGreater(rows[(method, variant)]["cases"], 0)
        for model in ("cnn", "rnn"):
            for variant in ("all", "new"):
                self.assertIn((f"blend without {model}", variant), rows)
        for method in ("recent_popular", "pop", "blend"):  # New shoppers.
            self.assertIn((method, "cold"), rows)

    def test_the_popularity_window_is_the_best_of_the_reports_rows(self):
        with open(os.path.join(self.bundle, "validation.md"), encoding="utf-8") as f:
            report = f.read()
        mean = {}  # days: the mean NDCG@10 of recent popularity alone over both variants.
        for line in report.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0].startswith("recent popularity alone, recent_days="):
                days = int(cells[0].split("=")[1])
                mean[days] = mean.get(days, 0.0) + float(cells[2]) / 2
        self.assertEqual(set(mean), set(make_bundle.RECENT_DAYS))
        best = max(mean.values())
        chosen = self.manifest()["recent_days"]
        self.assertGreaterEqual(mean[chosen], best - 1e-4)  # The table rounds to 4 decimals.
        self.assertIn(f"popularity window {chosen} days", report)

    def test_new_shoppers_get_their_own_defaults_or_a_note_says_why_not(self):
        m = self.manifest()
        rows = {(r["method"], r["variant"]): r for r in m["validation"]["rows"]}
        cases = rows[("pop", "cold")]["cases"]
        notes = [n for n in m["validation"]["notes"] if n.startswith("new shoppers:")]
        enough = cases >= make_bundle.MIN_NEW_SHOPPERS
        self.assertEqual("new_shoppers" in m["defaults"], enough)
        self.assertEqual(notes, [] if enough else [
            f"new shoppers: the general defaults, only {cases} new shoppers on validation "
            f"(fewer than {make_bundle.MIN_NEW_SHOPPERS})"])

    def test_the_weights_follow_the_drop_rule_on_its_own_table(self):
        m = self.manifest()
        rows = {(r["method"], r["variant"]): r["ndcg_at_10"] for r in m["validation"]["rows"]}
        weights = {s["name"]: s["weight"] for s in m["sources"]}
        new_weights = m["defaults"]["new_items"]["weights"]
        for model in ("cnn", "rnn"):
            # Not above on average: its interval against recent_popular is not above 0 either.
            if any(rows[(model, v)] <= rows[("recent_popular", v)] for v in ("all", "new")):
                self.assertEqual((weights[model], new_weights[model]), (0.0, 0.0), model)
            noted = any(n.startswith(model + ":") for n in m["validation"]["notes"])
            if weights[model] == 0 or new_weights[model] == 0:
                self.assertTrue(noted, f"{model} has weight 0 without a note")
            if any(n.startswith(model + ": weight 0, not significantly above")
                   for n in m["validation"]["notes"]):  # Dropped: in every default.
                self.assertEqual((weights[model], new_weights[model]), (0.0, 0.0), model)

    def test_the_defaults_are_chosen_values(self):
        d = self.manifest()["defaults"]
        self.assertIn(d["popularity_penalty"], make_bundle.PENALTIES)
        # The new-item defaults: a weight for every source, from the searched grid.
        new_items = d["new_items"]
        self.assertIn(new_items["popularity_penalty"], make_bundle.PENALTIES)
        self.assertEqual(set(new_items["weights"]), {"cf", "pop", "cnn", "rnn"})
        for name, weight in new_items["weights"].items():
            self.assertIn(weight, make_bundle.WEIGHTS + (1.0,), name)
        with open(os.path.join(self.bundle, "validation.md"), encoding="utf-8") as f:
            report = f.read()
        self.assertIn(f"penalty {d['popularity_penalty']:g}", report)

    def small_corpus(self):
        """Training options (2 epochs, 2 threads) and the small file's validation corpus."""
        parser = argparse.ArgumentParser()
        make_bundle.tm.add_training_flags(parser)
        args = parser.parse_args(["--epochs=2", "--dim=16", "--threads=2"])
        end = make_bundle.rm.parse_time("2011-11-09 00:00:00")
        customers = make_bundle.rm.read_purchases(SMALL, end)
        return args, make_bundle.tm.Corpus(args, self.bundle, customers, end,
                                           end - 28 * make_bundle.DAY)

    def assertSameModel(self, a, b, what):
        for name, value in b.state_dict().items():
            self.assertTrue(make_bundle.torch.equal(a.state_dict()[name], value), (what, name))

    def test_the_final_fits_are_each_the_fit_alone_from_the_validation_model(self):
        # FinalTraining trains the shipped models in processes of their own while the fusion
        # is tuned: each is what tm.fit from the same validation model, at the chosen rate, on
        # the same threads gives here (the GRU's on one thread, the CNN's on two).
        args, corpus = self.small_corpus()
        args.models, args.final_training, args.final_epochs = "cnn,rnn", "warm", 1
        tm = make_bundle.tm
        previous = {kind: (tm.fit(corpus, kind, args, validate=False)[0], corpus.item_index)
                    for kind in ("cnn", "rnn")}
        with make_bundle.spawn_pool(2) as pool:
            final = make_bundle.FinalTraining(make_bundle.Builder(args, self.root), args, pool,
                                              corpus)
            final.start("rnn", 0.01, 5, previous["rnn"])  # Started in the order chosen.
            final.start("cnn", 0.005, 5, previous["cnn"])
            shipped = final.models()
        self.assertEqual([kind for kind, _, _ in shipped], ["cnn", "rnn"])  # --models order.
        threads = make_bundle.torch.get_num_threads()
        try:
            for (kind, options, model), t, rate in zip(shipped, (2, 1), (0.005, 0.01)):
                self.assertEqual((options.lr, options.epochs), (rate, 1))
                make_bundle.torch.set_num_threads(t)
                options = argparse.Namespace(**dict(vars(args), lr=rate, epochs=1, threads=t))
                alone, _ = tm.fit(corpus, kind, options, validate=False, previous=previous[kind])
                self.assertSameModel(model, alone, kind)
        finally:
            make_bundle.torch.set_num_threads(threads)

    def test_the_fits_side_by_side_are_each_the_fit_alone(self):
        # fit_side_by_side trains every (model, rate) at once, each in a process of its own:
        # its results, in the order asked, are what the same fit on the same threads gives here
        # (the GRU's on one thread, the CNN's on --threads).
        args, corpus = self.small_corpus()
        fits = [("cnn", 0.005), ("rnn", 0.005), ("rnn", 0.01)]
        finished = []  # Each kind once, when all its fits are done.
        with make_bundle.spawn_pool(len(fits)) as pool:
            side = make_bundle.fit_side_by_side(
                pool, corpus, args, fits,
                lambda kind, tried: finished.append((kind, [rate for rate, _ in tried])))
        self.assertCountEqual(finished, [("cnn", [0.005]), ("rnn", [0.005, 0.01])])
        self.assertEqual(len(side), len(fits))
        threads = make_bundle.torch.get_num_threads()
        try:
            for (kind, rate), (model, curve), t in zip(fits, side, (2, 1, 1)):
                make_bundle.torch.set_num_threads(t)
                alone, alone_curve = make_bundle.tm.fit(
                    corpus, kind, argparse.Namespace(**dict(vars(args), lr=rate, threads=t)),
                    validate=True)
                self.assertEqual(curve, alone_curve, (kind, rate))
                self.assertSameModel(model, alone, (kind, rate))
        finally:
            make_bundle.torch.set_num_threads(threads)
        self.assertNotEqual(side[1][1], side[2][1])  # The rates train differently.

    def test_the_gru_learning_rate_is_the_better_on_validation(self):
        with open(os.path.join(self.bundle, "validation.md"), encoding="utf-8") as f:
            report = f.read()
        kept = {}  # (model, learning rate): the mean NDCG@10 of its kept epoch.
        for line in report.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 5 and cells[2].endswith("(kept)"):
                kept[(cells[0], float(cells[1]))] = (float(cells[3]) + float(cells[4])) / 2
        self.assertEqual(set(kept), {("cnn", 0.005), ("rnn", 0.005), ("rnn", 0.01)})
        # The table rounds to 4 decimals: within that, either rate may be the better.
        margin = kept[("rnn", 0.01)] - kept[("rnn", 0.005)]
        allowed = [0.01] if margin > 1e-4 else [0.005] if margin < -1e-4 else [0.005, 0.01]
        chosen = [r for r in allowed if f"learning rates {{'cnn': 0.005, 'rnn': {r}}}" in report]
        self.assertEqual(len(chosen), 1, (kept, allowed))
        # The shipped GRU is trained on at the chosen rate.
        self.assertIn(f"training rnn on all the data: 2 epochs from the validation model, "
                      f"learning rate {chosen[0]:g}", self.result.stderr)

    def test_the_context_baseline_is_the_training_mean(self):
        features = self.manifest()["feature_schema"]["context_features"]
        self.assertTrue(all("baseline" in f for f in features), features)
        baseline = {f["name"]: f["baseline"] for f in features}
        countries = [v for name, v in baseline.items() if name.startswith("country=")]
        self.assertAlmostEqual(sum(countries), 1.0, places=4)  # Shares of the examples.
        self.assertTrue(all(0 <= v <= 1 for v in countries))
        # The mean of points on the unit circle lies inside it, and not at its centre by chance.
        for cycle in ("hour", "dow"):
            radius = (baseline[cycle + "_sin"] ** 2 + baseline[cycle + "_cos"] ** 2) ** 0.5
            self.assertTrue(0 < radius < 1, (cycle, radius))
        self.assertGreater(baseline["log_recency_days"], 0)

    def test_the_bundle_evaluates_on_the_month_after(self):
        r = run([EVALUATOR, f"--input={SMALL}", f"--bundle={self.bundle}", "--end=2011-12-10",
                 "--format=tsv", "--methods=recent_popular,blend,rnn"])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [line.split("\t") for line in r.stdout.splitlines()]
        self.assertEqual({(l[0], l[1]) for l in lines},
                         {(m, v) for m in ("recent_popular", "blend", "rnn")
                          for v in ("all", "new")})
        # Each line but --compare_to's (blend by default) ends with the paired interval of
        # blend minus the method: mean, low, high.
        ndcg = {(l[0], l[1]): float(l[3]) for l in lines}
        for l in lines:
            self.assertEqual(len(l), 7 if l[0] == "blend" else 10, l)
            if l[0] != "blend":
                mean, low, high = map(float, l[7:10])
                self.assertAlmostEqual(mean, ndcg[("blend", l[1])] - ndcg[(l[0], l[1])], places=4)
                self.assertTrue(low <= mean <= high, l)

    def test_the_evaluator_process_answers_as_one_run_per_request(self):
        args = argparse.Namespace(evaluator=EVALUATOR, input=SMALL, threads=2)
        end = make_bundle.rm.parse_time("2011-12-10 00:00:00")
        settings = os.path.join(self.root, "settings.tsv")
        with open(settings, "w", encoding="utf-8") as f:
            f.write("some\tcf=1,pop=0.5,cnn=0,rnn=1\t0.1\tfalse\n")
        evaluator = make_bundle.Evaluator(args, self.bundle, end,
                                          os.path.join(self.root, "evaluator.log"))
        try:
            for methods, variants, path in ((["recent_popular", "rnn"], ["all", "new"], ""),
                                            (["some"], ["all"], settings)):
                once = run([EVALUATOR, f"--input={SMALL}", f"--bundle={self.bundle}",
                            "--end=2011-12-10", "--format=tsv", "--compare_to=recent_popular",
                            "--methods=" + ",".join(methods),
                            "--variants=" + ",".join(variants), f"--settings={path}"])
                self.assertEqual(once.returncode, 0, once.stderr)
                self.assertEqual(evaluator.ask(methods, variants, path),
                                 once.stdout.splitlines())
            # A bad request is an error that names it; the process goes on answering.
            with self.assertRaisesRegex(SystemExit, "unknown method nonesuch"):
                evaluator.ask(["nonesuch"], ["all"], "")
            self.assertEqual(len(evaluator.ask(["some"], ["new"], settings)), 1)
        finally:
            evaluator.close()

    def test_the_builder_starts_a_new_evaluator_when_the_bundle_changes(self):
        bundle = os.path.join(self.root, "changing")
        shutil.copytree(self.bundle, bundle)
        args = argparse.Namespace(evaluator=EVALUATOR, input=SMALL, threads=2)
        b = make_bundle.Builder(args, self.root)
        end = make_bundle.rm.parse_time("2011-12-10 00:00:00")
        try:
            before = b.evaluate(bundle, end, ["blend"], variants=["all"])
            path = os.path.join(bundle, "manifest.json")
            with open(path, encoding="utf-8") as f:
                m = json.load(f)
            for source in m["sources"]:  # Popularity alone.
                source["weight"] = 1.0 if source["name"] == "pop" else 0.0
            with open(path, "w", encoding="utf-8") as f:
                json.dump(m, f)
            after = b.evaluate(bundle, end, ["blend", "pop"], variants=["all"])
        finally:
            b.close()
        self.assertNotEqual(after[("blend", "all")], before[("blend", "all")])
        self.assertEqual(after[("blend", "all")], after[("pop", "all")])

    def test_an_evaluator_that_cannot_start_is_a_clear_error(self):
        args = argparse.Namespace(evaluator=EVALUATOR, input=SMALL, threads=2)
        broken = os.path.join(self.root, "broken")
        os.makedirs(broken)
        with open(os.path.join(broken, "manifest.json"), "w", encoding="utf-8") as f:
            f.write("{}")
        evaluator = make_bundle.Evaluator(args, broken, 0, broken + ".log")
        try:
            with self.assertRaisesRegex(SystemExit, "recsys_evaluate failed"):
                evaluator.ask(["blend"], ["all"], "")
        finally:
            evaluator.close()

    def test_untuned_keeps_the_given_settings(self):
        r = run(MAKE + [f"--out_root={self.root}", "--version=untuned", "--tune=0",
                        "--weights=pop=0.2,cnn=0,rnn=0.7", "--popularity_penalty=0.1",
                        "--recent_days=7", "--models=rnn"])
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        with open(os.path.join(self.root, "untuned", "manifest.json"), encoding="utf-8") as f:
            m = json.load(f)
        weights = {s["name"]: s["weight"] for s in m["sources"]}
        self.assertEqual(weights, {"cf": 1.0, "pop": 0.2, "rnn": 0.7})
        self.assertEqual(m["defaults"]["popularity_penalty"], 0.1)
        self.assertEqual(m["recent_days"], 7)
        self.assertEqual(m["validation"]["rows"], [])

    def test_another_layout_is_a_clear_error(self):
        path = os.path.join(self.root, "other.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("user,item,rating\n1,2,5\n")
        r = run(MAKE[:2] + [f"--input={path}", f"--out_root={self.root}", "--version=bad"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not in the Online Retail II layout", r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.root, "bad")))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
