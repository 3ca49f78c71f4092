#!/usr/bin/python3
"""Trains the CNN (Caser over text-CNN item vectors) and RNN (GRU4Rec) recommenders of a bundle
and exports them.

  /usr/bin/python3 tools/train_models.py --bundle=DIR --input=data/.../online_retail_ii.csv.gz

DIR is a bundle version directory written by recsys_build_bundle (items.tsv fixes the item
indices; the manifest's train_cutoff_unix, if set, keeps held-out purchases out of training).
The script trains on next-basket prediction: each basket after a customer's first is one
example, its items the target given the customer's last max_history events before it. The loss
is the cross-entropy of a softmax over the whole catalogue (every item a negative: the limit of
GRU4Rec's sampled negatives), averaged over the basket's items; Adam, dropout on the embedded
history and the user vector. Each item's side-features (its purchase trend before the example's
time, its price and category: item_feature_table) enter the score through weights the encoder
derives from the user, so the models learn when a shopper follows the season's best-sellers.
The CNN's item vectors come from a text CNN over the item descriptions (--text_cnn), a content
signal that reaches items with few purchases.

With a validation start (make_bundle.py), baskets from then on are held out: training stops
when their NDCG@10 (all items and items new to the shopper, as in tools/evaluate.sh except that
items unknown to the catalogue are left out of the targets; item trends frozen at the window's
start as a served bundle's are) has not improved for --patience epochs, and the best epoch is
kept. make_bundle.py uses this to choose the epoch count, then retrains on all
data. Writes cnn.pt and rnn.pt (TorchScript, the contract of tools/recsys_models.py) into DIR
and adds the models, their sources and the feature schema to DIR/manifest.json. Each source's
affine normalisation is a z-score of its scores over the whole catalogue, fixed from a sample of
training requests. Seeded and reproducible for a fixed thread count; progress goes to stderr.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
# Training runs with --threads OpenMP threads, which by default wait for work by spinning; on
# a shared 2-core machine that made the GRU's training steps 2-3x slower (55 against
# 114-204 ms a step). Passive waiting computes the same (the thread count is the same).
# OpenMP reads it when torch loads it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recsys_models as rm  # noqa: E402

DAY = 86400
TREND_WINDOWS = (7, 28)  # Days of the trend features; then all purchases before.


def log(message):
    print(message, file=sys.stderr, flush=True)


def read_items(bundle):
    """items.tsv: ({id: index}, [price], [category], [description])."""
    index, prices, categories, descriptions = {}, [], [], []
    with open(os.path.join(bundle, "items.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header[0] == "id", "items.tsv: unexpected header"
        price_col, category_col = header.index("price"), header.index("category")
        description_col = header.index("description")
        for i, line in enumerate(f):
            fields = line.rstrip("\n").split("\t")
            index[fields[0]] = i
            prices.append(float(fields[price_col] or 0))
            categories.append(fields[category_col])
            descriptions.append(fields[description_col])
    return index, prices, categories, descriptions


class ItemFeatures:
    """Item side-features: the purchase trend (log1p of purchase lines in the last 7 and 28
    days and all before) as of any day, then log1p(price) and a category one-hot."""

    def __init__(self, customers, item_index, prices, categories, first_day, end,
                 category_names=None):
        """Counts the purchases before `end` (seconds) from `first_day` (days) on. The one-hot
        covers `category_names` (default: the categories present)."""
        n = len(item_index)
        self.first_day = first_day
        days = (end - 1) // DAY - first_day + 2
        counts = np.zeros((days, n), dtype=np.float32)
        rows, columns = [], []  # One np.add.at: a NumPy += per purchase took seconds.
        for events in customers.values():
            for e in events:
                i = item_index.get(e[2])
                if i is not None and e[0] < end:
                    rows.append(e[0] // DAY - first_day + 1)
                    columns.append(i)
        np.add.at(counts, (np.array(rows, dtype=np.int64), np.array(columns, dtype=np.int64)), 1)
        cumulative = np.cumsum(counts, axis=0)  # Row d: lines on days before first_day + d.

        def window(w):
            lagged = np.zeros_like(cumulative)
            lagged[w:] = cumulative[:-w]
            return cumulative - lagged

        self.trend = torch.from_numpy(np.log1p(np.stack(
            [window(w) for w in TREND_WINDOWS] + [cumulative], axis=2)))  # [days, N, 3]
        names = category_names or sorted(set(categories) - {""})
        self.category_names = names
        static = np.zeros((n, 1 + len(names)), dtype=np.float32)
        static[:, 0] = np.log1p(np.maximum(prices, 0))
        for i, c in enumerate(categories):
            if c in names:
                static[i, 1 + names.index(c)] = 1.0
        self.static = torch.from_numpy(static)
        self.names = ([f"log_lines_{w}d" for w in TREND_WINDOWS] + ["log_lines_all",
                      "log_price"] + [f"category={c}" for c in names])

    def day(self, time_s):
        return min(max(time_s // DAY - self.first_day, 0), self.trend.size(0) - 1)

    def dynamic(self, days):
        """[B, N, 3]: the trend as of each of `days` (tensor of day rows)."""
        return self.trend[days]

    def table(self, time_s):
        """[N, F]: every feature as of `time_s`, for export."""
        return torch.cat([self.trend[self.day(time_s)], self.static], dim=1)


class Examples:
    """Left-padded histories [M, L], event features [M, L, E], mask [M, L], context [M, C],
    the day row of each example (for its trend), its basket's distinct items, and (for
    validation) every item bought before it."""

    def __init__(self):
        self.items, self.features, self.masks, self.contexts = [], [], [], []
        self.days, self.targets, self.bought = [], [], []

    def tensors(self):
        self.items = torch.tensor(self.items, dtype=torch.long)
        self.features = torch.tensor(self.features, dtype=torch.float32)
        self.masks = torch.tensor(self.masks, dtype=torch.float32)
        self.contexts = torch.tensor(self.contexts, dtype=torch.float32)
        self.days = torch.tensor(self.days, dtype=torch.long)
        return self

    def __len__(self):
        return len(self.targets)


def build_examples(customers, item_index, countries, max_history, item_features,
                   validation_start=None):
    """(train, validation): one example per basket after a customer's first. With
    validation_start, baskets from then on are validation examples (of customers who bought
    before it), their trend frozen at validation_start; else validation is empty."""
    n = len(item_index)
    train, validation = Examples(), Examples()
    for _, events in sorted(customers.items()):
        known = [e for e in events if e[2] in item_index]
        seq_items = [item_index[e[2]] for e in known]
        seq_features = [rm.event_features(e[3], e[4], 0.0 if k == 0 else
                                          (e[0] - known[k - 1][0]) / DAY)
                        for k, e in enumerate(known)]
        start = 0
        while start < len(known):
            end = start
            while end < len(known) and known[end][1] == known[start][1]:
                end += 1
            held = validation_start is not None and known[start][0] >= validation_start
            if start > 0 and not (held and known[0][0] >= validation_start):
                out = validation if held else train
                lo = max(0, start - max_history)
                pad = max_history - (start - lo)
                out.items.append([n] * pad + seq_items[lo:start])
                out.features.append([[0.0] * len(rm.EVENT_FEATURES)] * pad +
                                    seq_features[lo:start])
                out.masks.append([0.0] * pad + [1.0] * (start - lo))
                out.contexts.append(rm.context_features(known[start][0], known[start - 1][0],
                                                        known[start][5], countries))
                out.days.append(item_features.day(validation_start if held else known[start][0]))
                out.targets.append(list(dict.fromkeys(seq_items[start:end])))
                if held:
                    out.bought.append(set(seq_items[:start]))
            start = end
    return train.tensors(), validation.tensors()


def soft_targets(baskets, num_items):
    """[B, N]: each basket's items share probability 1, so the loss is the mean cross-entropy
    over the basket's items (one softmax per basket instead of one per item)."""
    dense = torch.zeros(len(baskets), num_items)
    for row, basket in enumerate(baskets):
        dense[row, basket] = 1.0 / len(basket)
    return dense


def ndcg_at_10(model, data, item_features, batch_size=512):
    """{"all": NDCG@10, "new": NDCG@10} of the model alone on the examples: every basket item a
    target, or only those new to the shopper with their past items not ranked."""
    model.eval()
    sums, counts = {"all": 0.0, "new": 0.0}, {"all": 0, "new": 0}
    discount = 1.0 / np.log2(np.arange(2, 12))
    with torch.no_grad():
        for lo in range(0, len(data), batch_size):
            idx = torch.arange(lo, min(lo + batch_size, len(data)))
            logits = model.training_logits(data.items[idx], data.features[idx], data.masks[idx],
                                           data.contexts[idx],
                                           item_features.dynamic(data.days[idx]))
            for row, k in enumerate(idx.tolist()):
                targets = set(data.targets[k])
                for variant in ("all", "new"):
                    wanted = targets if variant == "all" else targets - data.bought[k]
                    if not wanted:
                        continue
                    scores = logits[row]
                    if variant == "new":
                        scores = scores.clone()
                        scores[list(data.bought[k])] = -math.inf
                    top = torch.topk(scores, 10).indices.tolist()
                    dcg = sum(discount[r] for r, i in enumerate(top) if i in wanted)
                    sums[variant] += dcg / discount[:min(len(wanted), 10)].sum()
                    counts[variant] += 1
    return {v: sums[v] / max(counts[v], 1) for v in sums}


def train(model, data, item_features, options, name, validation=None, step_progress=True):
    """Trains for options.epochs, or with `validation` until its NDCG@10 (mean of both
    variants) has not improved for options.patience epochs, restoring the best epoch. Returns
    [(epoch, {"all": .., "new": ..})] of the validation scores (empty without validation).
    Progress goes to stderr: a line per epoch, and without `step_progress` nothing between
    (for fits that share the terminal)."""
    m = len(data)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = (m + options.batch_size - 1) // options.batch_size
    curve, best, best_state = [], -1.0, None
    started = time.time()
    for epoch in range(options.epochs):
        model.train()
        order = torch.randperm(m)
        total = 0.0
        for step in range(steps):
            idx = order[step * options.batch_size:(step + 1) * options.batch_size]
            logits = model.training_logits(data.items[idx], data.features[idx], data.masks[idx],
                                           data.contexts[idx],
                                           item_features.dynamic(data.days[idx]))
            loss = loss_fn(logits, soft_targets([data.targets[i] for i in idx.tolist()],
                                                model.num_items))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            if step_progress and step % 50 == 0:
                sys.stderr.write(f"\r{name} epoch {epoch + 1}/{options.epochs} "
                                 f"{100.0 * (step + 1) / steps:5.1f}% "
                                 f"loss {total / (step + 1):.3f} "
                                 f"{time.time() - started:4.0f}s ")
                sys.stderr.flush()
        line = (f"{name} epoch {epoch + 1}/{options.epochs} 100.0% loss {total / steps:.3f} "
                f"{time.time() - started:4.0f}s")
        if step_progress:
            line = "\r" + line  # Over the step's progress line.
        if validation is None or len(validation) == 0:
            sys.stderr.write(line + "\n")  # One write: a line of its own beside other fits.
            continue
        scores = ndcg_at_10(model, validation, item_features)
        curve.append((epoch + 1, scores))
        sys.stderr.write(f"{line} validation NDCG@10 all {scores['all']:.4f} "
                         f"new {scores['new']:.4f}\n")
        value = epoch_score(scores)
        if value > best:
            best, best_state = value, {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch + 1 - max(e for e, s in curve if epoch_score(s) == best) >= \
                options.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return curve


def epoch_score(scores):
    """What early stopping maximises: the mean validation NDCG@10 of both variants."""
    return (scores["all"] + scores["new"]) / 2


def best_epoch(curve):
    return max(curve, key=lambda c: epoch_score(c[1]))[0]


def calibrate(model, data, item_features, sample, end):
    """Mean and standard deviation of the model's scores over all items, on a sample of
    training requests scored as the exported model scores them (the item trend frozen at
    `end`): the source's fixed z-score normalisation."""
    idx = torch.arange(min(sample, len(data)))
    frozen = torch.full((len(idx),), item_features.day(end), dtype=torch.long)
    with torch.no_grad():
        logits = model.training_logits(data.items[idx], data.features[idx], data.masks[idx],
                                       data.contexts[idx], item_features.dynamic(frozen))
    return float(logits.mean()), float(logits.std())


def add_training_flags(parser):
    """The training options, shared with make_bundle.py."""
    parser.add_argument("--models", default="cnn,rnn")
    parser.add_argument("--epochs", type=int, default=8,
                        help="most epochs (with validation: stop earlier when it stalls)")
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--max_history", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.005,
                        help="Adam's learning rate (make_bundle.py chooses the GRU's on "
                             "validation: this or twice this)")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--item_features", type=int, default=1,
                        help="1: item trend, price and category features; 0: none")
    parser.add_argument("--text_cnn", type=int, default=1,
                        help="1: the CNN's item vectors come from a text CNN over the item "
                             "descriptions; 0: learned per item")
    parser.add_argument("--countries", type=int, default=8,
                        help="countries with their own context feature (the rest: other)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)


class Corpus:
    """What training reads: the item indices of the bundle, the countries, item features and
    the examples. `customers`: rm.read_purchases output, purchases before `end` (the bundle's
    cut-off, or the data's end); with `validation_start`, the item table is frozen there and
    baskets from then on are validation examples. `like`: a corpus whose featurisation
    (countries, categories) to keep, so that its models can be trained on here (warm_start);
    by default both come from the purchases before the table's time."""

    def __init__(self, args, bundle, customers, end, validation_start=None, like=None):
        self.item_index, prices, categories, self.descriptions = read_items(bundle)
        self.end = validation_start or end
        if like:
            self.countries = like.countries
        else:
            by_country = {}
            for events in customers.values():
                before = [e for e in events if e[0] < self.end]
                if before:
                    by_country[before[-1][5]] = by_country.get(before[-1][5], 0) + 1
            self.countries = sorted(by_country,
                                    key=lambda c: (-by_country[c], c))[:args.countries]
        first = min(e[0] for events in customers.values() for e in events)
        self.item_features = ItemFeatures(
            customers, self.item_index, prices, categories, first // DAY, self.end,
            like.item_features.category_names if like else None)
        self.train, self.validation = build_examples(
            customers, self.item_index, self.countries, args.max_history, self.item_features,
            validation_start)
        log(f"{len(self.train)} baskets to learn from, {len(self.validation)} to validate on, "
            f"{len(customers)} customers, {len(self.item_index)} items")

    def make_model(self, kind, args, vocabulary=None):
        # The table holds the trend as of self.end (the bundle's cut-off, or the validation
        # window's start).
        features = self.item_features.table(self.end) if args.item_features else None
        return rm.make_model(kind, len(self.item_index), args.max_history,
                             len(rm.context_feature_names(self.countries)), args.dim, features,
                             args.dropout, self.descriptions if args.text_cnn else None,
                             vocabulary)


def data_end(customers):
    """Midnight after the last purchase: the end of the data when there is no cut-off."""
    return (max(e[0] for c in customers.values() for e in c) // DAY + 1) * DAY


def parse_weights(text):
    """{source: weight} from "source=weight,..."."""
    return {k: float(v) for k, v in (kv.split("=") for kv in text.split(",") if kv)}


def read_customers(path, bundle):
    """Purchases before the bundle's cut-off, and that cut-off (or the day after the data)."""
    with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
        cutoff = json.load(f).get("train_cutoff_unix") or None
    log(f"reading {path}" + (f" (before {cutoff})" if cutoff else ""))
    customers = rm.read_purchases(path, cutoff)
    return customers, cutoff or data_end(customers)


def seed_everything(seed):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


ITEM_ROWS = ("item_embedding.weight", "output.weight", "bias")
DATA_BUFFERS = ("item_features", "tokens")


def warm_start(model, previous, previous_index, index):
    """Copies the trained `previous` (same kind, settings and featurisation: Corpus's `like`;
    catalogue `previous_index`) into `model` (catalogue `index`): per-item rows by item id
    (items new to `index` keep their fresh initialisation), everything else as is; the data
    buffers stay `model`'s."""
    pairs = [(index[i], previous_index[i]) for i in index if i in previous_index]
    new = torch.tensor([p[0] for p in pairs])
    old = torch.tensor([p[1] for p in pairs])
    state = model.state_dict()
    with torch.no_grad():
        for name, value in previous.state_dict().items():
            if name in ITEM_ROWS:
                state[name][new] = value[old]
            elif name not in DATA_BUFFERS:
                state[name].copy_(value)


def fit(corpus, kind, args, validate, previous=None, name=None, step_progress=True):
    """A trained model of `kind`, and its validation curve (empty unless `validate`).
    `previous`: (model, item index) to start from instead of a random initialisation; `name`
    (default `kind`) and `step_progress`: train's progress."""
    seed_everything(args.seed)
    vocabulary = getattr(previous[0], "vocabulary", None) if previous else None
    model = corpus.make_model(kind, args, vocabulary)
    if previous:
        warm_start(model, previous[0], previous[1], corpus.item_index)
    curve = train(model, corpus.train, corpus.item_features, args, name or kind,
                  corpus.validation if validate else None, step_progress)
    return model, curve


def export(model, corpus, kind, args, weight):
    """Writes DIR/kind.pt; returns its model and source entries for the manifest."""
    mean, std = calibrate(model, corpus.train, corpus.item_features, 512, corpus.end)
    model.freeze()
    torch.jit.script(model).save(os.path.join(args.bundle, f"{kind}.pt"))
    log(f"{kind}: wrote {kind}.pt; score mean {mean:.3f}, std {std:.3f}")
    return ({"name": kind, "kind": kind, "file": f"{kind}.pt", "embedding_dim": args.dim,
             "max_history": args.max_history},
            {"name": kind, "weight": float(weight), "slope": 1.0 / std, "intercept": -mean / std})


def write_models(args, corpus, entries, weights):
    """Adds the models and their sources (entries: [(model, source)]) to the manifest."""
    manifest_path = os.path.join(args.bundle, "manifest.json")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    names = {model["name"] for model, _ in entries}
    manifest["models"] = [model for model, _ in entries]
    manifest["sources"] = [s for s in manifest["sources"] if s["name"] not in names] + \
        [source for _, source in entries]
    for source in manifest["sources"]:
        if source["name"] in weights:
            source["weight"] = float(weights[source["name"]])
    context = ([{"name": n, "type": "numeric", "description": d} for n, d in rm.TIME_CONTEXT] +
               [{"name": "country=" + c, "type": "numeric",
                 "description": "1 if the shopper's country is " + c}
                for c in corpus.countries] +
               [{"name": "country=other", "type": "numeric",
                 "description": "1 if the country is none of the above"}])
    # The attribution baseline's context: each feature's mean over the training examples, so
    # that a context attribution is how far the request's context moves the score from the
    # average one (docs/explanations.md).
    means = corpus.train.contexts.mean(0).tolist() if len(corpus.train) else [0.0] * len(context)
    for feature, mean in zip(context, means):
        feature["baseline"] = round(float(mean), 6)
    manifest["feature_schema"] = {
        "event_features": [{"name": n, "type": "numeric", "description": d}
                           for n, d in rm.EVENT_FEATURES],
        "context_features": context,
    }
    with open(manifest_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(manifest_path + ".tmp", manifest_path)
    log(f"updated {manifest_path}")


def train_bundle(args, weights, epochs=None):
    """Trains args.models on args.input for epochs[kind] (default args.epochs) and adds them to
    the bundle directory args.bundle with fusion `weights` ({source: weight})."""
    torch.set_num_threads(args.threads)
    customers, end = read_customers(args.input, args.bundle)
    corpus = Corpus(args, args.bundle, customers, end)
    entries = []
    for kind in args.models.split(","):
        if epochs and kind in epochs:
            args_k = argparse.Namespace(**vars(args))
            args_k.epochs = epochs[kind]
        else:
            args_k = args
        model, _ = fit(corpus, kind, args_k, validate=False)
        entries.append(export(model, corpus, kind, args, weights.get(kind, 0.5)))
    write_models(args, corpus, entries, weights)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="bundle version directory")
    parser.add_argument("--input", default="data/online-retail-ii/online_retail_ii.csv.gz")
    parser.add_argument("--weights", default="",
                        help="fusion weights, source=weight,... (default 0.5 per model)")
    add_training_flags(parser)
    args = parser.parse_args()
    train_bundle(args, parse_weights(args.weights))


if __name__ == "__main__":
    main()
