#!/usr/bin/python3
"""Adds tiny, seeded CNN and RNN models to a test bundle, plus reference outputs.

  /usr/bin/python3 tests/testutil/make_tiny_models.py --bundle=DIR

DIR is a bundle version directory (the C++ tests build it from the tiny purchase file). The
script writes cnn.pt and rnn.pt (the contract of tools/recsys_models.py, dimension 8, history 5),
registers them in DIR/manifest.json with fixed fusion parameters, and writes
DIR/reference.json: a request, the features Python computes for it and each model's scores of
every item, so that the C++ featurizer and runner can be checked against Python. It also writes
models that break the contract (wrong_table.pt: one item too many; no_encode.pt: no encode
method; padded.pt: the padding item does not embed to 0; nan_table.pt: a NaN in the output
table; inf_bias.pt: an infinite bias; huge_table.pt: an entry beyond half precision;
stale_prefix.pt: a GRU with biases, whose prefix_sequences() is not its encode()'s) for
the rejection tests, linear.pt, whose encoder is linear in its inputs, unbatched_prefix.pt,
whose prefix_sequences() reads its first input only (as modules made before it took more), and
window1.pt, an RNN that sees one event.
"""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import recsys_models as rm  # noqa: E402

COUNTRIES = ["United Kingdom", "France"]
MAX_HISTORY = 5
DIM = 8
# The reference request: (item id, time, quantity, price) oldest first, then the context.
HISTORY = [("21A", 1262340000, 2.0, 1.5), ("21C", 1262512800, 1.0, 3.0),
           ("21B", 1262599200, 6.0, 2.0)]
REQUEST_TIME = 1262703600  # 2010-01-05 15:00 UTC, a Tuesday.
COUNTRY = "France"


class NoEncode(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.dim = DIM
        self.table = torch.nn.Parameter(torch.zeros(n, DIM))

    @torch.jit.export
    def embed(self, items: torch.Tensor, event_features: torch.Tensor) -> torch.Tensor:
        return torch.zeros(items.size(0), items.size(1), self.dim)

    @torch.jit.export
    def item_table(self) -> torch.Tensor:
        return self.table

    @torch.jit.export
    def item_bias(self) -> torch.Tensor:
        return self.table[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class UnbatchedPrefix(rm.GruRecommender):
    """prefix_sequences() as modules made before it took further inputs: input 0's rows only."""

    @torch.jit.export
    def prefix_sequences(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(embedded * mask.unsqueeze(2))
        return torch.cat([out.new_zeros((1, out.size(2))), out[0]], dim=0)


class Linear(rm._Base):
    """The contract with an encoder that is linear in the embedded history and the context (no
    bias, no squashing): Integrated Gradients of it must equal gradient x input."""

    def __init__(self, n, num_context):
        super().__init__(n, MAX_HISTORY, len(rm.EVENT_FEATURES), num_context, DIM)
        self.sequence = torch.nn.Linear(MAX_HISTORY * DIM, DIM, bias=False)
        self.context_linear = torch.nn.Linear(num_context, DIM, bias=False)

    @torch.jit.export
    def encode(self, embedded: torch.Tensor, mask: torch.Tensor,
               context: torch.Tensor) -> torch.Tensor:
        masked = (embedded * mask.unsqueeze(2)).flatten(1)
        return self.sequence(masked) + self.context_linear(context)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", required=True)
    args = parser.parse_args()
    torch.manual_seed(1234)
    torch.set_num_threads(1)

    with open(os.path.join(args.bundle, "items.tsv"), encoding="utf-8") as f:
        f.readline()
        ids = [line.split("\t", 1)[0] for line in f]
    index = {item_id: i for i, item_id in enumerate(ids)}
    n = len(ids)
    context_names = rm.context_feature_names(COUNTRIES)

    # Features of the reference request, as training computes them.
    events = []
    for k, (item_id, t, quantity, price) in enumerate(HISTORY):
        gap = 0.0 if k == 0 else (t - HISTORY[k - 1][1]) / 86400.0
        events.append(rm.event_features(quantity, price, gap))
    pad = MAX_HISTORY - len(HISTORY)
    items = torch.tensor([[n] * pad + [index[h[0]] for h in HISTORY]])
    features = torch.tensor([[[0.0] * len(rm.EVENT_FEATURES)] * pad + events])
    mask = torch.tensor([[0.0] * pad + [1.0] * len(HISTORY)])
    context = rm.context_features(REQUEST_TIME, HISTORY[-1][1], COUNTRY, COUNTRIES)

    manifest_path = os.path.join(args.bundle, "manifest.json")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["models"] = []
    manifest["sources"] = [s for s in manifest["sources"] if s["name"] == "cf"]
    scores = {}
    for kind, weight, slope, intercept in [("cnn", 0.5, 2.0, -0.25), ("rnn", 0.25, 0.5, 0.1)]:
        model = rm.make_model(kind, n, MAX_HISTORY, len(context_names), DIM)
        with torch.no_grad():  # Visible scores: random weights of a useful size.
            for p in model.parameters():
                p.normal_(0.0, 0.5)
            model.item_embedding.weight[n].zero_()  # Padding embeds to 0 (the contract).
        model.eval()
        scripted = torch.jit.script(model)
        scripted.save(os.path.join(args.bundle, f"{kind}.pt"))
        with torch.no_grad():
            scores[kind] = scripted(items, features, mask, torch.tensor([context]))[0].tolist()
        manifest["models"].append({"name": kind, "kind": kind, "file": f"{kind}.pt",
                                   "embedding_dim": DIM, "max_history": MAX_HISTORY})
        manifest["sources"].append({"name": kind, "weight": weight, "slope": slope,
                                    "intercept": intercept})
    manifest["feature_schema"] = {
        "event_features": [{"name": name, "type": "numeric", "description": d}
                           for name, d in rm.EVENT_FEATURES],
        # Baselines off 0, as training means are (the attribution baseline's context).
        "context_features": [{"name": name, "type": "numeric", "description": "",
                              "baseline": round(0.4 * math.sin(c + 1.0), 4)}
                             for c, name in enumerate(context_names)],
    }
    with open(manifest_path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)

    wrong = rm.make_model("rnn", n + 1, MAX_HISTORY, len(context_names), DIM)
    torch.jit.script(wrong.eval()).save(os.path.join(args.bundle, "wrong_table.pt"))
    long = rm.make_model("rnn", n, MAX_HISTORY, len(context_names), DIM)
    long.output = torch.nn.Embedding(n + 1, DIM)  # One row more than the bias and catalogue.
    long.item_features = torch.zeros(n + 1, 0)
    torch.jit.script(long.eval()).save(os.path.join(args.bundle, "long_table.pt"))
    torch.jit.script(NoEncode(n)).save(os.path.join(args.bundle, "no_encode.pt"))
    stale = rm.make_model("rnn", n, MAX_HISTORY, len(context_names), DIM)
    stale.gru = torch.nn.GRU(DIM, DIM, batch_first=True)  # Padding moves its state.
    with torch.no_grad():
        stale.gru.bias_ih_l0.normal_(0.0, 0.5)
    torch.jit.script(stale.eval()).save(os.path.join(args.bundle, "stale_prefix.pt"))
    window1 = rm.make_model("rnn", n, 1, len(context_names), DIM)  # One event at a time.
    with torch.no_grad():
        for p in window1.parameters():
            p.normal_(0.0, 0.5)
        window1.item_embedding.weight[n].zero_()
    torch.jit.script(window1.eval()).save(os.path.join(args.bundle, "window1.pt"))
    unbatched = UnbatchedPrefix(n, MAX_HISTORY, len(rm.EVENT_FEATURES), len(context_names), DIM)
    torch.jit.script(unbatched.eval()).save(os.path.join(args.bundle, "unbatched_prefix.pt"))
    broken = rm.make_model("rnn", n, MAX_HISTORY, len(context_names), DIM)
    with torch.no_grad():
        broken.output.weight[1, 2] = float("nan")  # As a diverged training run leaves it.
    torch.jit.script(broken.eval()).save(os.path.join(args.bundle, "nan_table.pt"))
    broken = rm.make_model("rnn", n, MAX_HISTORY, len(context_names), DIM)
    with torch.no_grad():
        broken.bias[0] = float("inf")
    torch.jit.script(broken.eval()).save(os.path.join(args.bundle, "inf_bias.pt"))
    huge = rm.make_model("rnn", n, MAX_HISTORY, len(context_names), DIM)
    with torch.no_grad():
        huge.output.weight[0, 0] = 1e5  # Finite, but beyond half precision.
    torch.jit.script(huge.eval()).save(os.path.join(args.bundle, "huge_table.pt"))
    linear = Linear(n, len(context_names))
    with torch.no_grad():
        for p in linear.parameters():
            p.normal_(0.0, 0.5)
        torch.jit.script(linear.eval()).save(os.path.join(args.bundle, "padded.pt"))
        linear.item_embedding.weight[n].zero_()  # Padding embeds to 0, as the contract asks.
    torch.jit.script(linear.eval()).save(os.path.join(args.bundle, "linear.pt"))

    with open(os.path.join(args.bundle, "reference.json"), "w", encoding="utf-8") as f:
        json.dump({
            "history": [{"item_id": h[0], "timestamp": h[1], "quantity": h[2], "price": h[3]}
                        for h in HISTORY],
            "request_time": REQUEST_TIME,
            "country": COUNTRY,
            "items": items[0].tolist(),
            "event_features": [x for row in features[0].tolist() for x in row],
            "mask": mask[0].tolist(),
            "context": context,
            "scores": scores,
        }, f)


if __name__ == "__main__":
    main()
