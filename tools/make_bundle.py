#!/usr/bin/python3
"""Builds a complete bundle version in one command, tuned on a validation window of its input.

  /usr/bin/python3 tools/make_bundle.py --input=data/online-retail-ii/online_retail_ii.csv.gz \\
      --out_root=bundles [--cutoff=2011-11-09] [--validation_days=28] [--version=NAME]

The input is any CSV in the Online Retail II layout (plain or gzip); --cutoff keeps purchases
at or after that date out of everything (for time-split evaluation). The builder carves a
validation window from the end of the training data (the last --validation_days before the
cut-off) and chooses there, by NDCG@10 on the protocol of tools/evaluate.sh (every basket in
the window one request, all items and items new to the shopper):

  1. the popularity source's recent window (of RECENT_DAYS, where recent popularity alone
     ranks best), then the item-CF settings (neighbour recency decay on new items, then the
     repeat terms: weight, decay by position, half-life by age),
  2. each model's epoch count (early stopping on validation NDCG) and the GRU's learning rate
     (--lr or twice it, by the same measure; all these fits run side by side),
  3. the fusion weights, the default popularity penalty and exclude_history by a search on
     all items (the best of a coarse grid, then a coordinate search from it), and the weights
     and penalty for requests that exclude the history (items new to the shopper) by one on
     new items; a model gets weight 0 unless it beats recent popularity on validation in both
     variants (the paired 95% interval of the difference above 0); and new shoppers' weights
     and penalty (tune_new_shoppers),

then rebuilds the bundle on all the training data with those choices: the CF index and
catalogue from scratch (right after stage 1), the models by training the validation models on
for --final_epochs over all the data (items new since the window start fresh;
--final_training=full retrains from scratch instead, about twice the time), each as soon as its
early stopping is chosen, beside the rest of stages 2 and 3 (FinalTraining). The bundle carries the
validation table in its manifest (GetModelInfo reports it) and as validation.md. --tune=0 skips
all of this and uses --weights, --popularity_penalty, --recent_days and --epochs as given.
The version directory appears in out_root only when complete. Progress goes to stderr.
"""

import argparse
import concurrent.futures
import contextlib
import copy
import hashlib
import json
import multiprocessing
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_models as tm  # noqa: E402  (first: it sets OpenMP's wait policy before torch)
import recsys_models as rm  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86400
VARIANTS = ("all", "new")
# The popularity source's recent window, in days before the cut-off: the first is the default
# (--tune=0, and recsys_evaluate's recent_popular baseline).
RECENT_DAYS = (28, 7, 14, 56)
# The searched values (one grid for any log; the search picks within it on validation).
RECENCY_DECAYS = (0.6, 0.8, 0.9, 0.97)
SELF_SIMILARITIES = (0, 4, 16, 64)
SELF_RECENCY_DECAYS = (0.99, 1.0)
SELF_HALF_LIVES = (0, 90, 180, 365)  # Days; 0: no decay of the repeat terms by age.
WEIGHTS = (0, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3)
PENALTIES = (0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
# The models whose learning rate is chosen on validation, from --lr times each factor: the
# GRU's training takes a third of the CNN's (46 against 148 s on the full file), so only its
# fits the 10-minute budget twice (beside the CNN, fit_side_by_side).
LR_TUNED = ("rnn",)
LR_FACTORS = (1, 2)
# The coarse grid that seeds each coordinate search (cf stays at 1): one weight for the
# popularity source, one shared by the models, and the penalty. The search then moves each
# weight on its own; alone it stalls where two weights have to move together.
GRID_POP = (0, 0.1, 0.3, 1)
GRID_MODELS = (0.1, 0.3, 1)
GRID_PENALTIES = (0, 0.05, 0.1, 0.2)
# New shoppers (no known history: only pop and the models' reading of the context rank) get
# defaults of their own when the validation window has at least this many (fewer would choose
# on noise); they are chosen by the coarse grid alone, with weight 0 for the models allowed.
MIN_NEW_SHOPPERS = 50


class Evaluator:
    """A recsys_evaluate process that answers requests on one bundle
    (--requests_from_stdin): it reads the data and loads the bundle once, and remembers the
    models' scores across requests, where a process per request would do both each time."""

    def __init__(self, args, bundle, end_s, log_path):
        self.key = Evaluator.key_of(bundle, end_s)
        self.log_path = log_path
        with open(log_path, "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                evaluator_command(args, bundle, end_s) + ["--requests_from_stdin"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)

    @staticmethod
    def key_of(bundle, end_s):
        """What the answers depend on: the bundle as its manifest says (every writer of the
        bundle rewrites it), the end."""
        with open(os.path.join(bundle, "manifest.json"), "rb") as f:
            return bundle, end_s, hashlib.sha256(f.read()).hexdigest()

    def ask(self, methods, variants, settings_path):
        """The TSV lines of one request."""
        lines = []
        try:
            self.process.stdin.write(
                f"{','.join(methods)}\t{','.join(variants)}\t{settings_path}\n")
            self.process.stdin.flush()
            for line in self.process.stdout:
                if line == "\n":
                    break
                lines.append(line.rstrip("\n"))
            else:
                raise BrokenPipeError
        except BrokenPipeError:  # It exited (e.g. a bundle it could not load).
            self.process.wait()
            with open(self.log_path, encoding="utf-8") as log:
                sys.exit(f"error: recsys_evaluate failed:\n{log.read()}")
        for line in lines:
            if line.startswith("error\t"):
                sys.exit(f"error: recsys_evaluate: {line[6:]}")
        return lines

    def close(self):
        try:
            self.process.stdin.close()
        except BrokenPipeError:  # It exited with a request unsent; ask said so.
            pass
        self.process.wait()
        self.process.stdout.close()


class Builder:
    """Runs the C++ tools and keeps the tuning log."""

    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.started = time.time()
        self.report = []  # Markdown lines for validation.md.
        self.evaluator = None  # The Evaluator of the bundle evaluated last.
        # score_options' NDCG@10 per (bundle, end, variant, setting served), for a bundle that
        # no longer changes (the fusion searches run on finished validation models): they try
        # many settings more than once (every coordinate step tries the state it starts from).
        self.ndcg_of = {}

    def progress(self, message):
        print(f"[make_bundle {time.time() - self.started:5.0f}s] {message}", file=sys.stderr,
              flush=True)

    def build_cf(self, out_root, version, cutoff_s, cf):
        """recsys_build_bundle with the CF settings `cf` (dict) and a cut-off (or None)."""
        command = [self.args.builder, f"--input={self.args.input}", f"--out_root={out_root}",
                   f"--version={version}"] + [f"--{k}={v}" for k, v in cf.items()] + \
            shlex.split(self.args.cf_flags)
        if cutoff_s is not None:
            command.append(f"--cutoff={date(cutoff_s)}")
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        if result.returncode != 0:
            sys.exit(f"error: recsys_build_bundle failed:\n{result.stderr}")
        return os.path.join(out_root, version)

    def evaluate(self, bundle, end_s, methods, settings=(), variants=VARIANTS, bundles=(),
                 flags=()):
        """{(method, variant): (ndcg, cases, interval)} on [bundle's cut-off, end_s), where
        interval is the paired 95% bootstrap interval (low, high) over customers of the
        method's NDCG@10 minus recent_popular's, when recent_popular is among `methods` (else
        None); `settings`: blends
        as (label, {source: weight}, penalty, exclude_history); `bundles`: (label, directory)
        of further bundles with the same cut-off, each evaluated as its blend; `flags`: more
        recsys_evaluate flags (with either, a run of its own)."""
        path = os.path.join(self.work, "settings.tsv")
        with open(path, "w", encoding="utf-8") as f:
            for label, weights, penalty, exclude in settings:
                text = ",".join(f"{k}={v}" for k, v in weights.items())
                f.write(f"{label}\t{text}\t{penalty}\t{str(exclude).lower()}\n")
        names = list(methods) + [s[0] for s in settings] + [label for label, _ in bundles]
        if bundles or flags:
            command = evaluator_command(self.args, bundle, end_s) + [
                f"--settings={path}", "--methods=" + ",".join(names),
                "--variants=" + ",".join(variants)] + list(flags)
            if bundles:
                command.append("--bundles=" + ",".join(f"{label}={d}" for label, d in bundles))
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"error: recsys_evaluate failed:\n{result.stderr}")
            lines = result.stdout.splitlines()
        else:
            if self.evaluator is None or self.evaluator.key != Evaluator.key_of(bundle, end_s):
                self.close()
                self.evaluator = Evaluator(self.args, bundle, end_s,
                                           os.path.join(self.work, "evaluator.log"))
            lines = self.evaluator.ask(names, variants, path)
        out = {}
        for line in lines:
            fields = line.split("\t")
            method, variant, cases, ndcg = fields[:4]
            # recsys_evaluate's interval is of recent_popular (--compare_to) minus the method.
            interval = (0.0 - float(fields[9]), 0.0 - float(fields[8])) \
                if len(fields) >= 10 else None
            out[(method, variant)] = (float(ndcg), int(cases), interval)
        return out

    def close(self):
        """Ends the evaluator process, if any."""
        if self.evaluator is not None:
            self.evaluator.close()
            self.evaluator = None


def evaluator_command(args, bundle, end_s):
    """recsys_evaluate on `bundle` over [its cut-off, end_s), TSV output."""
    return [args.evaluator, f"--input={args.input}", f"--bundle={bundle}", f"--end={date(end_s)}",
            "--format=tsv", "--compare_to=recent_popular", f"--threads={args.threads}"]


def date(seconds):
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def set_cf(bundle, cf):
    """Writes the CF scoring settings `cf` into the bundle's manifest."""
    path = os.path.join(bundle, "manifest.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["cf"].update(cf)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


def cf_variant(bundle, directory, cf):
    """A copy of `bundle` (links to its files) whose manifest has the CF scoring settings `cf`
    and every source but cf at weight 0: these settings change scoring, not the index."""
    os.makedirs(directory)
    for name in os.listdir(bundle):
        if name != "manifest.json":
            os.symlink(os.path.abspath(os.path.join(bundle, name)), os.path.join(directory, name))
    with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["cf"].update(cf)
    for source in manifest["sources"]:
        source["weight"] = 1.0 if source["name"] == "cf" else 0.0
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return directory


def first_best(values):
    """The index of the largest value, the first one on ties (the grids list the simpler
    settings first)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def tune_cf(b, bundle, end):
    """Step 1: recency_decay on new items; step 2: the repeat terms on all items. Each step is
    one evaluation of copies of `bundle` with other settings."""

    def best(grid, variant):
        labels = [f"cf{len(os.listdir(b.work))}_{i}" for i in range(len(grid))]
        dirs = [cf_variant(bundle, os.path.join(b.work, label), cf)
                for label, cf in zip(labels, grid)]
        scores = b.evaluate(bundle, end, [], variants=[variant],
                            bundles=list(zip(labels, dirs)))
        for label, cf in zip(labels, grid):
            b.report.append(f"| {', '.join(f'{k}={v}' for k, v in cf.items())} | {variant} | "
                            f"{scores[(label, variant)][0]:.4f} |")
        for d in dirs:
            shutil.rmtree(d)
        return grid[first_best([scores[(label, variant)][0] for label in labels])]

    decay = best([{"recency_decay": d} for d in RECENCY_DECAYS], "new")["recency_decay"]
    chosen = best([{"recency_decay": decay, "self_similarity": s, "self_recency_decay": r,
                    "self_half_life_days": h}
                   for s in SELF_SIMILARITIES for r in SELF_RECENCY_DECAYS
                   for h in (SELF_HALF_LIVES if s > 0 else (0,))], "all")
    b.progress(f"CF settings: {chosen}")
    return chosen


def choose_recent_days(b, bundle, end):
    """The popularity source's window: of RECENT_DAYS, the one where recent popularity alone
    (the pop source's ranking: recsys_evaluate's recent_popular over that window) ranks best
    on validation, by the mean NDCG@10 of both variants; the first on ties."""
    values = []
    for days in RECENT_DAYS:
        scores = b.evaluate(bundle, end, ["recent_popular"], flags=[f"--recent_days={days}"])
        for v in VARIANTS:
            b.report.append(f"| recent popularity alone, recent_days={days} | {v} | "
                            f"{scores[('recent_popular', v)][0]:.4f} |")
        values.append(sum(scores[("recent_popular", v)][0] for v in VARIANTS) / len(VARIANTS))
    days = RECENT_DAYS[first_best(values)]
    b.progress(f"popularity window: {days} days")
    return days


def validation_fits(args):
    """The (kind, learning rate) of each early-stopping fit: the models of LR_TUNED once per
    learning rate of --lr times LR_FACTORS, the others at --lr."""
    return [(kind, args.lr * f) for kind in args.models.split(",")
            for f in (LR_FACTORS if kind in LR_TUNED else (1,))]


def train_validation_models(b, corpus, args, pool, chosen):
    """Trains each model of validation_fits on the data before the window with early stopping,
    all side by side on `pool` (fit_side_by_side), keeping each kind's best by the early
    stopping's measure; calls chosen(kind, learning rate, best epoch, (model, item index)) as
    soon as a kind's fits have all finished. Returns ({kind: best epoch}, {kind: model},
    {kind: learning rate})."""
    b.report += ["## 2. Models: validation NDCG@10 by epoch (model alone)", "",
                 "| model | learning rate | epoch | all | new |", "|---|---:|---:|---:|---:|"]
    fits = validation_fits(args)
    b.progress("training " + ", ".join(f"{kind} at learning rate {rate:g}" for kind, rate in fits)
               + " on the data before the window (early stopping" +
               (", side by side)" if len(fits) > 1 else ")"))
    best = {}  # kind: (learning rate, epoch, model)

    def choose(kind, tried):
        epochs = [tm.best_epoch(curve) for _, (_, curve) in tried]
        i = first_best([tm.epoch_score(dict(curve)[e])
                        for e, (_, (_, curve)) in zip(epochs, tried)])
        best[kind] = (tried[i][0], epochs[i], tried[i][1][0])
        chosen(kind, *best[kind][:2], (best[kind][2], corpus.item_index))

    results = fit_side_by_side(pool, corpus, args, fits, choose)
    for (kind, rate), (_, curve) in zip(fits, results):
        kept = tm.best_epoch(curve)
        for epoch, s in curve:
            mark = " (kept)" if epoch == kept else ""
            b.report.append(f"| {kind} | {rate:g} | {epoch}{mark} | {s['all']:.4f} | "
                            f"{s['new']:.4f} |")
    b.report.append("")
    kinds = args.models.split(",")  # In this order, whichever finished first.
    return ({k: best[k][1] for k in kinds}, {k: best[k][2] for k in kinds},
            {k: best[k][0] for k in kinds})


def fit_threads(kind, args):
    """The threads a fit of `kind` trains on beside the others (fit_side_by_side, and the final
    fits of FinalTraining): a model of LR_TUNED --threads / len(LR_FACTORS) (at least one), the
    others --threads. The GRU's steps are small sequential operations that one thread runs as
    fast as two (on 2 cores 93 against 108 ms a step), so its rates side by side take the time
    of one, and beside the CNN they fill the time the CNN's second thread leaves (it runs 1.2x
    faster on two)."""
    return max(1, args.threads // len(LR_FACTORS)) if kind in LR_TUNED else args.threads


@contextlib.contextmanager
def spawn_pool(workers):
    """A pool of `workers` processes for fit_alone. spawn: a forked child of a process that has
    run OpenMP threads may hang in them. On an error (or sys.exit) inside, the fits still
    running are stopped, so that it shows at once."""
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    except BaseException:
        for process in list(pool._processes.values()):  # No public way to stop a running fit.
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def submit_fit(pool, data, kind, args, name, validate, previous=None):
    """A future of fit_alone's pickled (model, curve) on `pool`, on fit_threads; `data`: the
    pickled corpus. The corpus, `previous` and the results travel as plain pickles:
    multiprocessing's own would put their tensors in /dev/shm, which a container may hold to
    64 MB (the full file's corpus is ~60)."""
    args = argparse.Namespace(**dict(vars(args), threads=fit_threads(kind, args)))
    return pool.submit(fit_alone, data, kind, args, name, validate, pickle.dumps(previous))


def fit_side_by_side(pool, corpus, args, fits, finished=None):
    """[tm.fit(validate=True) of each (kind, learning rate) of `fits`], in that order, all at
    once on `pool` (submit_fit). A model's results depend on its thread count, not on what runs
    beside it. finished(kind, [(learning rate, (model, curve))]) runs as soon as every fit of
    a kind has finished."""
    data = pickle.dumps(corpus)
    futures = {submit_fit(pool, data, kind, argparse.Namespace(**dict(vars(args), lr=rate)),
                          f"{kind} lr {rate:g}", True): i for i, (kind, rate) in enumerate(fits)}
    results = [None] * len(fits)
    for future in concurrent.futures.as_completed(futures):
        results[futures[future]] = pickle.loads(future.result())
        kind = fits[futures[future]][0]
        mine = [i for i, (k, _) in enumerate(fits) if k == kind]
        if finished and all(results[i] is not None for i in mine):
            finished(kind, [(fits[i][1], results[i]) for i in mine])
    return results


def fit_alone(corpus, kind, args, name, validate, previous):
    """The pickled (model, curve) of tm.fit on the pickled `corpus` from the pickled `previous`,
    on args.threads threads, its progress a line per epoch (in a process of spawn_pool's)."""
    torch.set_num_threads(args.threads)
    return pickle.dumps(tm.fit(pickle.loads(corpus), kind, args, validate=validate,
                               previous=pickle.loads(previous), name=name, step_progress=False))


class FinalTraining:
    """The shipped models' training on all the data, each started on a pool (submit_fit) as soon
    as its validation choices are made, beside whatever still runs: the other models' early
    stopping, the fusion searches (it needs no fusion choice)."""

    def __init__(self, b, args, pool, corpus):
        self.b, self.args, self.pool = b, args, pool
        self.data = pickle.dumps(corpus)
        self.fits = {}  # kind: (its options, the future of fit_alone)

    def start(self, kind, rate, epochs=None, previous=None):
        """Starts `kind` at learning rate `rate`: the validation model `previous` ((model, item
        index)) trained on for --final_epochs, or (with --final_training=full, or without
        `previous`) a model trained afresh for `epochs` (None: --epochs)."""
        args = argparse.Namespace(**dict(vars(self.args), lr=rate))
        if previous is not None and args.final_training == "warm":
            args.epochs = args.final_epochs
            self.b.progress(f"training {kind} on all the data: {args.epochs} epochs from the "
                            f"validation model, learning rate {rate:g}")
        else:
            previous, args.epochs = None, epochs or args.epochs
            self.b.progress(f"training {kind} on all the data: {args.epochs} epochs, learning "
                            f"rate {rate:g}")
        self.fits[kind] = (args, submit_fit(self.pool, self.data, kind, args, f"{kind} final",
                                            False, previous))

    def models(self):
        """[(kind, its options, its model)] in --models order, once trained."""
        return [(kind, self.fits[kind][0], pickle.loads(self.fits[kind][1].result())[0])
                for kind in self.args.models.split(",")]


def drop_losers(singles, sources):
    """The models dropped (weight 0 everywhere), with a note for each: a model is kept only if
    its NDCG@10 alone beats recent_popular's on validation in both variants, with the paired
    95% interval of the difference above 0 (a point estimate above it is not enough: it may not
    hold the next month). `singles`: {(method, variant): (ndcg, cases, interval)} as
    Builder.evaluate. Returns (the dropped models, notes)."""
    dropped, notes = set(), []
    for s in sources:
        if s in ("cf", "pop"):
            continue
        losing = []
        for v in VARIANTS:
            ndcg, _, interval = singles[(s, v)]
            if interval is None:
                sys.exit(f"error: recsys_evaluate gave no interval of {s} against recent_popular")
            if interval[0] <= 0:
                losing.append(f"{v} items {ndcg:.4f} vs {singles[('recent_popular', v)][0]:.4f}, "
                              f"difference 95% CI [{interval[0]:+.4f}, {interval[1]:+.4f}]")
        if losing:
            dropped.add(s)
            notes.append(f"{s}: weight 0, not significantly above recent_popular on validation "
                         f"({', '.join(losing)})")
    return dropped, notes


def score_options(b, bundle, end, variant, options, excluding, round_):
    """Each option's validation NDCG@10 on `variant` (logged to the report). With `excluding`
    (the new-item defaults), an option that excludes the history is scored with those weights
    and penalty, as the server would serve it."""
    served = [dict(excluding, exclude=True) if excluding and o["exclude"] else o
              for o in options]
    keys = [(bundle, end, variant, describe(o)) for o in served]  # 0 and 0.0 alike.
    todo = {k: o for k, o in zip(keys, served) if k not in b.ndcg_of}  # Each setting once.
    settings = [(f"c{i}", o["weights"], o["penalty"], o["exclude"])
                for i, o in enumerate(todo.values())]
    if settings:
        scores = b.evaluate(bundle, end, [], settings, variants=[variant])
        for i, k in enumerate(todo):
            b.ndcg_of[k] = scores[(f"c{i}", variant)][0]
    values = [b.ndcg_of[k] for k in keys]
    b.report += [f"| {variant} | {round_} | {describe(o)} | {v:.4f} |"
                 for o, v in zip(options, values)]
    return values


def grid_options(start, free, model_weights=GRID_MODELS):
    """The coarse grid from `start`: every GRID_POP weight for pop, every `model_weights`
    weight shared by the free models, every GRID_PENALTIES penalty (a source that is not free
    keeps its weight)."""
    models = [s for s in free if s != "pop"]
    options = []
    for p in (GRID_POP if "pop" in free else (None,)):
        for m in (model_weights if models else (None,)):
            weights = dict(start["weights"])
            if p is not None:
                weights["pop"] = p
            weights.update({s: m for s in models})
            options += [dict(start, weights=weights, penalty=x) for x in GRID_PENALTIES]
    return options


def grid_start(b, bundle, end, variant, start, free, excluding=None):
    """The best of grid_options from `start`. Returns (the state, its NDCG@10)."""
    options = grid_options(start, free)
    values = score_options(b, bundle, end, variant, options, excluding, "grid")
    i = first_best(values)
    b.progress(f"{variant} items, grid of {len(options)}: {describe(options[i])} "
               f"(NDCG@10 {values[i]:.4f})")
    return options[i], values[i]


def search(b, bundle, end, variant, start, coordinates, excluding=None):
    """The setting ({"weights", "penalty", "exclude"}) maximising the blend's NDCG@10 on
    `variant`: the best of grid_start from `start`, then a coordinate search from there, one
    coordinate at a time over its grid, cycling until every coordinate is at its best for the
    others, or two rounds. `excluding`: as in score_options."""
    free = [c for c in coordinates if c not in ("penalty", "exclude")]
    state, best = grid_start(b, bundle, end, variant, start, free, excluding)
    settled, moved = 0, False  # Coordinates in a row that found nothing better; any move yet.
    for step in range(2 * len(coordinates)):
        # The coordinate moved last is at its best already; the others must be tried again.
        if settled == len(coordinates) - (1 if moved else 0):
            break
        coordinate = coordinates[step % len(coordinates)]
        if coordinate == "penalty":
            options = [dict(state, penalty=p) for p in PENALTIES]
        elif coordinate == "exclude":
            options = [dict(state, exclude=e) for e in (False, True)]
        else:
            options = [dict(state, weights=dict(state["weights"], **{coordinate: w}))
                       for w in WEIGHTS]
        values = score_options(b, bundle, end, variant, options, excluding,
                               step // len(coordinates) + 1)
        i = first_best(values)
        if values[i] > best + 1e-9 and options[i] != state:
            state, best, settled, moved = options[i], values[i], 0, True
        else:
            settled += 1
    b.progress(f"{variant} items, coordinate search: {describe(state)} (NDCG@10 {best:.4f})")
    return state


def tune_fusion(b, bundle, end, sources):
    """The fusion weights and defaults, from cf 1 and the others 0.3 (a model drop_losers drops
    at 0 throughout): one search on all items (weights, penalty, exclude_history: the bundle's
    defaults), one on items new to the shopper (weights, penalty: the new-item defaults, for
    requests that exclude the history) and tune_new_shoppers. Returns (defaults, new-item
    defaults, new-shopper defaults or None, notes, {(method, variant): (ndcg, cases, interval)}
    of the sources alone)."""
    singles = b.evaluate(bundle, end, ["recent_popular"] + sources)
    dropped, notes = drop_losers(singles, sources)
    for note in notes:
        b.progress("dropped " + note)
    free = [s for s in sources if s != "cf" and s not in dropped]
    start = {"weights": {s: 1.0 if s == "cf" else 0.0 if s in dropped else 0.3 for s in sources},
             "penalty": 0.0, "exclude": False}
    b.report += ["## 3. Fusion weights and defaults (a coarse grid, then coordinate searches)", "",
                 "| variant | round | setting | NDCG@10 |", "|---|---:|---|---:|"]
    new_items = search(b, bundle, end, "new", dict(start, exclude=True), free + ["penalty"])
    main = search(b, bundle, end, "all", start, free + ["penalty", "exclude"], new_items)
    if main["exclude"]:  # Default requests exclude the history: they get the new-item defaults.
        main = dict(new_items)
    new_shoppers, note, cold = tune_new_shoppers(b, bundle, end, sources, main, dropped)
    singles.update(cold)
    notes += [note] if note else []
    b.report.append("")
    for s in free:
        zero = [v for v, st in (("all", main), ("new", new_items)) if st["weights"][s] == 0]
        if zero:
            notes.append(f"{s}: weight 0 on {' and '.join(zero)} items, the search found the "
                         "blend no better with it")
    return main, new_items, new_shoppers, notes, singles


def tune_new_shoppers(b, bundle, end, sources, main, dropped):
    """The new-shopper defaults: on validation's new shoppers (variant cold), the first best of
    the general defaults `main` and a grid over pop's weight, one weight shared by the models
    not `dropped` (0 included) and the penalty. Returns (the setting, written out even where it
    is the general defaults so that a new shopper excluding the history gets it too, or None
    where the window has fewer than MIN_NEW_SHOPPERS new shoppers; a note or None; the cold
    scores of recent_popular and pop)."""
    singles = b.evaluate(bundle, end, ["recent_popular", "pop"], variants=["cold"])
    cases = singles[("pop", "cold")][1]
    if cases < MIN_NEW_SHOPPERS:
        return None, (f"new shoppers: the general defaults, only {cases} new shoppers on "
                      f"validation (fewer than {MIN_NEW_SHOPPERS})"), singles
    free = ["pop"] + [s for s in sources if s not in ("cf", "pop") and s not in dropped]
    general = dict(main, exclude=False)
    options = [general] + [o for o in grid_options(general, free, (0,) + GRID_MODELS)
                           if any(o["weights"][s] > 0 for s in free)]  # Else nothing ranks.
    values = score_options(b, bundle, end, "cold", options, None, "grid")
    i = first_best(values)
    b.progress(f"new shoppers ({cases} on validation), grid of {len(options)}: "
               f"{'the general defaults' if i == 0 else describe(options[i])} "
               f"(NDCG@10 {values[i]:.4f}, the general defaults {values[0]:.4f})")
    return options[i], None, singles


def describe(state):
    weights = ",".join(f"{k}={v:g}" for k, v in state["weights"].items())
    exclude = str(state["exclude"]).lower()
    return f"{weights}; penalty {state['penalty']:g}; exclude_history {exclude}"


def validation_table(b, bundle, end, modes, sources, singles):
    """The final validation rows: baselines, each source alone (those in `singles`), the blend
    (modes: {variant: its settings}), and the blend without each model."""
    scores = dict(singles)
    for variant, state in modes.items():
        settings = [("chosen", state["weights"], state["penalty"], state["exclude"])]
        settings += [(f"blend without {s}", dict(state["weights"], **{s: 0.0}), state["penalty"],
                      state["exclude"]) for s in sources if s not in ("cf", "pop")]
        scores.update(b.evaluate(bundle, end, [], settings, variants=[variant]))
        scores[("blend", variant)] = scores.pop(("chosen", variant))
    methods = ["recent_popular"] + sources + ["blend"] + \
        [f"blend without {s}" for s in sources if s not in ("cf", "pop")]
    rows = [{"method": m, "variant": v, "ndcg_at_10": scores[(m, v)][0],
             "cases": scores[(m, v)][1]} for m in methods for v in modes if (m, v) in scores]
    b.report += ["## 4. Validation table (chosen settings)", "",
                 "| method | variant | cases | NDCG@10 |", "|---|---|---:|---:|"]
    b.report += [f"| {r['method']} | {r['variant']} | {r['cases']} | {r['ndcg_at_10']:.4f} |"
                 for r in rows]
    b.report.append("")
    return rows


def tune_window(b, args, customers, end):
    """Stage 1 on the validation window, and the validation corpus. Returns the choices so
    far."""
    val_start = end - args.validation_days * DAY
    b.progress(f"validation window {date(val_start)} .. {date(end)}")
    bundle = b.build_cf(b.work, "val", val_start, {})
    b.report += ["## 1. The popularity window and item-CF settings", "",
                 "| setting | variant | NDCG@10 |", "|---|---|---:|"]
    # The window first: CF alone is ranked with popularity back-filling what it does not
    # score, as the bundle will serve it.
    recent_days = choose_recent_days(b, bundle, end)
    if recent_days != RECENT_DAYS[0]:
        shutil.rmtree(bundle)
        bundle = b.build_cf(b.work, "val", val_start, {"recent_days": recent_days})
    cf = tune_cf(b, bundle, end)
    b.report.append("")
    set_cf(bundle, cf)
    corpus = tm.Corpus(args, bundle, customers, end, val_start)
    if len(corpus.validation) == 0:
        sys.exit("error: no basket in the validation window of a customer who bought before "
                 "it; use a longer --validation_days or more data")
    return {"cf": cf, "recent_days": recent_days, "corpus": corpus, "validation_bundle": bundle,
            "validation": {"start_unix": val_start, "end_unix": end,
                           "report_file": "validation.md"}}


def tune_models(b, args, choices, pool, final):
    """Stage 2 (train_validation_models on `pool`), starting each kind's final training
    (`final`, a FinalTraining) once chosen; the validation models go into the validation
    bundle. Adds the epochs and learning rates to `choices`."""
    corpus, bundle = choices["corpus"], choices["validation_bundle"]
    epochs, models, rates = train_validation_models(b, corpus, args, pool, final.start)
    entries = []
    for kind, model in models.items():
        args_k = argparse.Namespace(**vars(args), bundle=bundle)
        entries.append(tm.export(copy.deepcopy(model), corpus, kind, args_k, 0.0))
    tm.write_models(argparse.Namespace(bundle=bundle), corpus, entries, {})
    choices.update(epochs=epochs, learning_rates=rates)


def tune_defaults(b, choices, end):
    """Stage 3 on the validation bundle of tune_models; adds its choices and the validation
    table to `choices`."""
    bundle = choices["validation_bundle"]
    with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
        sources = [s["name"] for s in json.load(f)["sources"]]
    b.progress("tuning the fusion weights and defaults")
    state, new_items, new_shoppers, notes, singles = tune_fusion(b, bundle, end, sources)
    modes = {"all": state, "new": new_items, "cold": new_shoppers or dict(state, exclude=False)}
    if singles[("pop", "cold")][1] == 0:  # No new shopper on validation: no cold rows.
        del modes["cold"]
    choices["validation"].update(rows=validation_table(b, bundle, end, modes, sources, singles),
                                 notes=notes)
    choices.update(state=state, new_items=new_items, new_shoppers=new_shoppers)


def untuned(args):
    weights = tm.parse_weights(args.weights)
    return {"cf": {}, "recent_days": args.recent_days, "epochs": {}, "learning_rates": {},
            "validation": None,
            "new_items": None, "new_shoppers": None,
            "corpus": None,
            "state": {"weights": weights, "penalty": args.popularity_penalty,
                      "exclude": bool(args.exclude_history)}}


def finish(b, args, bundle, corpus, choices, models):
    """Writes the final `models` (FinalTraining.models), the weights, defaults and validation
    report."""
    state = choices["state"]
    entries = []
    for kind, args_k, model in models:
        args_k = argparse.Namespace(**dict(vars(args_k), bundle=bundle))
        entries.append(tm.export(model, corpus, kind, args_k, state["weights"].get(kind, 0.0)))
    tm.write_models(argparse.Namespace(bundle=bundle), corpus, entries, state["weights"])
    path = os.path.join(bundle, "manifest.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["defaults"] = {"exclude_history": state["exclude"],
                            "popularity_penalty": state["penalty"]}
    for key in ("new_items", "new_shoppers"):
        if choices[key]:
            manifest["defaults"][key] = {"weights": choices[key]["weights"],
                                         "popularity_penalty": choices[key]["penalty"]}
    if choices["validation"]:
        manifest["validation"] = choices["validation"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


def write_report(b, bundle, choices):
    v = choices["validation"]
    lines = [f"# Validation report of bundle {os.path.basename(bundle)}", "",
             f"Tuned by tools/make_bundle.py on {date(v['start_unix'])} .. {date(v['end_unix'])}"
             " (models trained before the window), then rebuilt on all training data.", "",
             f"Chosen: CF {choices['cf']}; popularity window {choices['recent_days']} days; "
             f"epochs {choices['epochs']}; learning rates "
             f"{choices['learning_rates']}; defaults "
             f"{describe(choices['state'])}; with the history excluded (items new to the "
             f"shopper) {describe(choices['new_items'])}; for a new shopper "
             f"{describe(choices['new_shoppers']) if choices['new_shoppers'] else 'the defaults'}"
             ".", ""]
    lines += [f"- {n}" for n in v["notes"]] + ([""] if v["notes"] else [])
    with open(os.path.join(bundle, "validation.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines + b.report) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default="data/online-retail-ii/online_retail_ii.csv.gz")
    parser.add_argument("--out_root", default="bundles")
    parser.add_argument("--version", default="",
                        help="version directory name (default: the UTC time, e.g. "
                             "20261129T080000Z)")
    parser.add_argument("--cutoff", default="", help="train only before this date")
    parser.add_argument("--validation_days", type=int, default=28)
    parser.add_argument("--tune", type=int, default=1, help="0: no validation, flags as given")
    parser.add_argument("--final_training", default="warm", choices=("warm", "full"),
                        help="the shipped models: warm = the validation models trained on for "
                             "--final_epochs over all the data; full = retrained from scratch "
                             "for the epoch count chosen on validation (about twice the time)")
    parser.add_argument("--final_epochs", type=int, default=2)
    parser.add_argument("--weights", default="pop=0.3,cnn=0.3,rnn=0.3",
                        help="with --tune=0: fusion weights, source=weight,...")
    parser.add_argument("--popularity_penalty", type=float, default=0.0,
                        help="with --tune=0: the bundle's default popularity penalty")
    parser.add_argument("--exclude_history", type=int, default=0,
                        help="with --tune=0: the bundle's default exclude_history")
    parser.add_argument("--recent_days", type=int, default=RECENT_DAYS[0],
                        help="with --tune=0: the popularity source's window in days")
    parser.add_argument("--cf_flags", default="", help="extra flags for recsys_build_bundle")
    parser.add_argument("--builder", default=os.path.join(ROOT, "build/tools/recsys_build_bundle"))
    parser.add_argument("--evaluator", default=os.path.join(ROOT, "build/tools/recsys_evaluate"))
    tm.add_training_flags(parser)
    args = parser.parse_args()

    version = args.version or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    final = os.path.join(args.out_root, version)
    if os.path.exists(final):
        sys.exit(f"error: {final} already exists")
    os.makedirs(args.out_root, exist_ok=True)
    torch.set_num_threads(args.threads)
    cutoff = rm.parse_time(args.cutoff + " 00:00:00") if args.cutoff else None
    with tempfile.TemporaryDirectory(dir=args.out_root, prefix=".staging-") as work:
        b = Builder(args, work)
        b.progress(f"reading {args.input}")
        try:
            customers = rm.read_purchases(args.input, cutoff)
        except (OSError, ValueError) as e:
            sys.exit(f"error: {e}")
        if not customers:
            sys.exit(f"error: {args.input}: no purchase passes the filter before the cut-off")
        end = cutoff or tm.data_end(customers)
        try:
            choices = tune_window(b, args, customers, end) if args.tune else untuned(args)
            b.progress("building the bundle on all training data")
            bundle = b.build_cf(work, version, cutoff,
                                dict(choices["cf"], recent_days=choices["recent_days"]))
            corpus = tm.Corpus(args, bundle, customers, end, like=choices["corpus"])
            kinds = args.models.split(",")
            with spawn_pool(len(validation_fits(args) if args.tune else kinds)) as pool:
                shipped = FinalTraining(b, args, pool, corpus)
                if args.tune:
                    tune_models(b, args, choices, pool, shipped)
                    tune_defaults(b, choices, end)
                    b.close()  # Its memory is the final fits' now.
                else:
                    for kind in kinds:
                        shipped.start(kind, args.lr)
                finish(b, args, bundle, corpus, choices, shipped.models())
        finally:
            b.close()
        if choices["validation"]:
            write_report(b, bundle, choices)
        os.rename(bundle, final)
        b.progress(f"bundle {final} ready: {describe(choices['state'])}" +
                   (f"; new items: {describe(choices['new_items'])}" if choices["new_items"]
                    else "") +
                   (f"; new shoppers: {describe(choices['new_shoppers'])}"
                    if choices["new_shoppers"] else ""))
        for note in (choices["validation"] or {}).get("notes", []):
            b.progress("note: " + note)


if __name__ == "__main__":
    main()
