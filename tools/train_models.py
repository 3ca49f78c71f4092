#!/usr/bin/python3
"""Trains the CNN (Caser) and RNN (GRU4Rec) recommenders of a bundle and exports them.

  /usr/bin/python3 tools/train_models.py --bundle=DIR --input=data/.../online_retail_ii.csv.gz

DIR is a bundle version directory written by recsys_build_bundle (items.tsv fixes the item
indices; the manifest's train_cutoff_unix, if set, keeps held-out purchases out of training).
The script trains on next-basket prediction (the items of a customer's basket are the target
given the events of their earlier baskets) with full-softmax cross-entropy averaged over the
basket's items, writes cnn.pt and rnn.pt
(TorchScript, the contract of tools/recsys_models.py) into DIR, and adds the models, their
sources and the feature schema to DIR/manifest.json. Each source's affine normalisation is a
z-score of its scores over the whole catalogue, fixed from a sample of training requests.
Seeded and reproducible for a fixed thread count; progress goes to stderr.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recsys_models as rm  # noqa: E402


def log(message):
    print(message, file=sys.stderr, flush=True)


def load_items(bundle):
    with open(os.path.join(bundle, "items.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header[0] == "id", "items.tsv: unexpected header"
        return {line.split("\t", 1)[0]: i for i, line in enumerate(f)}


def build_examples(customers, item_index, countries, max_history):
    """One training example per basket after a customer's first: left-padded item indices
    [M, L], event features [M, L, E], mask [M, L], context [M, C], and the basket's distinct
    items (a list of M lists)."""
    n = len(item_index)
    items, features, masks, contexts, targets = [], [], [], [], []
    for _, events in sorted(customers.items()):
        known = [e for e in events if e[2] in item_index]
        if not known:
            continue
        seq_items = [item_index[e[2]] for e in known]
        seq_features = []
        for k, e in enumerate(known):
            gap = 0.0 if k == 0 else (e[0] - known[k - 1][0]) / 86400.0
            seq_features.append(rm.event_features(e[3], e[4], gap))
        # Baskets: runs of the same invoice.
        start = 0
        while start < len(known):
            end = start
            while end < len(known) and known[end][1] == known[start][1]:
                end += 1
            if start > 0:
                lo = max(0, start - max_history)
                pad = max_history - (start - lo)
                row_items = [n] * pad + seq_items[lo:start]
                row_features = [[0.0] * len(rm.EVENT_FEATURES)] * pad + seq_features[lo:start]
                row_mask = [0.0] * pad + [1.0] * (start - lo)
                context = rm.context_features(known[start][0], known[start - 1][0],
                                              known[start][5], countries)
                items.append(row_items)
                features.append(row_features)
                masks.append(row_mask)
                contexts.append(context)
                targets.append(list(dict.fromkeys(seq_items[start:end])))
            start = end
    return (torch.tensor(items, dtype=torch.long), torch.tensor(features, dtype=torch.float32),
            torch.tensor(masks, dtype=torch.float32),
            torch.tensor(contexts, dtype=torch.float32), targets)


def soft_targets(baskets, num_items):
    """[B, N]: each basket's items share probability 1, so the loss is the mean cross-entropy
    over the basket's items (one softmax per basket instead of one per item)."""
    dense = torch.zeros(len(baskets), num_items)
    for row, basket in enumerate(baskets):
        dense[row, basket] = 1.0 / len(basket)
    return dense


def train(model, data, epochs, batch_size, lr, name):
    items, features, masks, contexts, targets = data
    m = len(targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    num_items = model.num_items
    steps = (m + batch_size - 1) // batch_size
    started = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(m)
        total = 0.0
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            logits = model(items[idx], features[idx], masks[idx], contexts[idx])
            loss = loss_fn(logits, soft_targets([targets[i] for i in idx.tolist()], num_items))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            if step % 50 == 0 or step == steps - 1:
                done = epoch * steps + step + 1
                eta = (time.time() - started) / done * (epochs * steps - done)
                sys.stderr.write(f"\r{name} epoch {epoch + 1}/{epochs} "
                                 f"{100.0 * (step + 1) / steps:5.1f}% "
                                 f"loss {total / (step + 1):.3f} eta {eta:4.0f}s ")
                sys.stderr.flush()
        sys.stderr.write("\n")
    model.eval()
    return model


def calibrate(model, data, sample):
    """Mean and standard deviation of the model's scores over all items, on a sample of
    training requests: the source's fixed z-score normalisation."""
    items, features, masks, contexts, _ = data
    idx = torch.arange(min(sample, len(items)))
    with torch.no_grad():
        logits = model(items[idx], features[idx], masks[idx], contexts[idx])
    return float(logits.mean()), float(logits.std())


def add_training_flags(parser):
    """The training options, shared with make_bundle.py."""
    parser.add_argument("--models", default="cnn,rnn")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--max_history", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--countries", type=int, default=8,
                        help="countries with their own context feature (the rest: other)")
    parser.add_argument("--weights", default="pop=0.3,cnn=0,rnn=0.1",
                        help="fusion weights, source=weight,... (cf, pop, cnn, rnn); the "
                             "default is what tools/evaluate.sh chose on the validation month")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)


def train_bundle(args):
    """Trains args.models on args.input and adds them to the bundle directory args.bundle."""
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)

    manifest_path = os.path.join(args.bundle, "manifest.json")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    cutoff = manifest.get("train_cutoff_unix") or None
    item_index = load_items(args.bundle)
    log(f"reading {args.input}" + (f" (before {cutoff})" if cutoff else ""))
    customers = rm.read_purchases(args.input, cutoff)
    by_country = {}
    for events in customers.values():
        by_country[events[-1][5]] = by_country.get(events[-1][5], 0) + 1
    countries = sorted(by_country, key=lambda c: (-by_country[c], c))[:args.countries]
    data = build_examples(customers, item_index, countries, args.max_history)
    log(f"{len(data[4])} baskets to predict ({sum(len(t) for t in data[4])} items) from "
        f"{len(customers)} customers, {len(item_index)} items")

    weights = dict(kv.split("=") for kv in args.weights.split(","))
    sources = [s for s in manifest["sources"] if s["name"] not in ("cnn", "rnn")]
    models = []
    for kind in args.models.split(","):
        torch.manual_seed(args.seed)
        model = rm.make_model(kind, len(item_index), args.max_history,
                              len(rm.context_feature_names(countries)), args.dim)
        train(model, data, args.epochs, args.batch_size, args.lr, kind)
        mean, std = calibrate(model, data, 512)
        scripted = torch.jit.script(model)
        scripted.save(os.path.join(args.bundle, f"{kind}.pt"))
        models.append({"name": kind, "kind": kind, "file": f"{kind}.pt",
                       "embedding_dim": args.dim, "max_history": args.max_history})
        sources.append({"name": kind, "weight": float(weights.get(kind, 0.5)),
                        "slope": 1.0 / std, "intercept": -mean / std})
        log(f"{kind}: wrote {kind}.pt; score mean {mean:.3f}, std {std:.3f}")

    for source in sources:  # --weights may also set cf and pop.
        if source["name"] in weights:
            source["weight"] = float(weights[source["name"]])
    manifest["models"] = models
    manifest["sources"] = sources
    manifest["feature_schema"] = {
        "event_features": [{"name": n, "type": "numeric", "description": d}
                           for n, d in rm.EVENT_FEATURES],
        "context_features": [{"name": n, "type": "numeric", "description": d}
                             for n, d in rm.TIME_CONTEXT] +
                            [{"name": "country=" + c, "type": "numeric",
                              "description": "1 if the shopper's country is " + c}
                             for c in countries] +
                            [{"name": "country=other", "type": "numeric",
                              "description": "1 if the country is none of the above"}],
    }
    with open(manifest_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(manifest_path + ".tmp", manifest_path)
    log(f"updated {manifest_path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="bundle version directory")
    parser.add_argument("--input", default="data/online-retail-ii/online_retail_ii.csv.gz")
    add_training_flags(parser)
    train_bundle(parser.parse_args())


if __name__ == "__main__":
    main()
