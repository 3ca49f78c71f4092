#!/usr/bin/python3
"""The Python baseline for tools/benchmark.sh: the straightforward recsys.v1.Recommender a team
would otherwise write with Debian's python3-grpcio and torch.jit.load.

  /usr/bin/python3 tools/baseline_server.py --bundle=bundles [--port=0] [--threads=8]

It serves Recommend on loopback (plaintext) from the same bundle as recsys_server and does the
same work per request: item-CF scores from the bundle's neighbour lists with the manifest's
recency weights, recent popularity, every TorchScript model's scores over the whole catalogue
(the same features as core/featurizer.cc), the fused score with the manifest's weights, slopes
and intercepts, top_k, and explanations: CF_EXACT (each history event's exact share of the CF
source, popularity as a prior) and REPLAY, the server's default (CF_EXACT plus every weighted
model's score rebuilt step by step from the empty history: context groups, the events (what
they add shared among them by their leave-one-out effects), the side-feature kinds, scored with
one pass of the models' prefix_sequences and user_vectors as explain/replay.h does). Written as a Python developer would: numpy over the whole
catalogue instead of the C++ server's candidate set, so its lists can differ in the tail. Other
request options (filters, diversity, the other explanation methods) are ignored: the benchmark does
not send them. Prints "baseline listening on port N" once it serves.
"""

import argparse
import json
import os
import struct
import sys
import time
from concurrent import futures

import grpc
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recsys_models  # noqa: E402


def load_pb2(out_dir):
    """Generates and imports recommender_pb2 (protoc --python_out) into out_dir."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(out_dir, exist_ok=True)
    proto = os.path.join(root, "proto/recsys/v1/recommender.proto")
    generated = os.path.join(out_dir, "recsys/v1/recommender_pb2.py")
    if not os.path.exists(generated) or os.path.getmtime(generated) < os.path.getmtime(proto):
        if os.system(f"protoc -I {root}/proto --python_out={out_dir} {proto}") != 0:
            sys.exit("error: protoc failed")
    sys.path.insert(0, out_dir)
    from recsys.v1 import recommender_pb2  # noqa: E402
    return recommender_pb2


def recency_weights(n, decay):
    w = np.array([decay ** (n - 1 - i) for i in range(n)], dtype=np.float64)
    return w / w.sum() if n else w


class Bundle:
    def __init__(self, root):
        if not os.path.exists(os.path.join(root, "manifest.json")):
            versions = sorted(d for d in os.listdir(root)
                              if os.path.exists(os.path.join(root, d, "manifest.json")))
            if not versions:
                sys.exit(f"error: no bundle under {root}")
            root = os.path.join(root, versions[-1])
        with open(os.path.join(root, "manifest.json")) as f:
            self.manifest = json.load(f)
        m = self.manifest
        self.version = m["version"]
        self.ids, self.price, self.popularity, self.recent = [], [], [], []
        with open(os.path.join(root, m["items_file"])) as f:
            header = f.readline().rstrip("\n").split("\t")
            col = {name: i for i, name in enumerate(header)}
            for line in f:
                row = line.rstrip("\n").split("\t")
                self.ids.append(row[col["id"]])
                self.popularity.append(int(row[col["popularity"]]))
                self.recent.append(int(row[col["recent_popularity"]]))
        self.index = {item: i for i, item in enumerate(self.ids)}
        self.num_items = len(self.ids)
        self.popularity = np.array(self.popularity, dtype=np.float64)
        self.pop_score = np.log1p(np.array(self.recent, dtype=np.float64))
        with open(os.path.join(root, m["cf_index_file"]), "rb") as f:
            data = f.read()
        magic, _, num_items, _, _, num_neighbors = struct.unpack_from("<8sIIIfQ", data, 0)
        assert magic == b"RECSYSCF" and num_items == self.num_items, "bad CF index"
        self.offsets = np.frombuffer(data, dtype="<u8", count=num_items + 1, offset=32).astype(np.int64)
        entries = np.frombuffer(data, dtype=[("item", "<i4"), ("sim", "<f4")],
                                count=num_neighbors, offset=32 + 8 * (num_items + 1))
        self.neighbor_items = entries["item"].astype(np.int64)
        self.neighbor_sims = entries["sim"].astype(np.float64)
        cf = m["cf"]
        self.recency_decay = cf["recency_decay"]
        self.self_recency_decay = cf["self_recency_decay"]
        self.self_similarity = cf["self_similarity"]
        self.self_half_life_days = cf.get("self_half_life_days", 0.0)
        self.countries = [f["name"][len("country="):] for f in
                          m["feature_schema"]["context_features"]
                          if f["name"].startswith("country=") and f["name"] != "country=other"]
        self.models = {}
        for spec in m["models"]:
            model = torch.jit.load(os.path.join(root, spec["file"]))
            model.eval()
            if not hasattr(model, "prefix_sequences") or model.prefix_sequences(
                    torch.zeros(2, spec["max_history"], spec["embedding_dim"]),
                    torch.zeros(2, spec["max_history"])).size(0) != spec["max_history"] + 2:
                sys.exit(f"error: {spec['file']} has no prefix_sequences() over a batch, which "
                         "replay uses: rebuild the bundle with tools/make_bundle.py")
            self.models[spec["name"]] = (model, spec["max_history"])
        self.sources = m["sources"]
        # Context groups as core::ContextGroups makes them: x_sin/x_cos -> x, name=value -> name.
        self.context_groups = {}
        for c, f in enumerate(m["feature_schema"]["context_features"]):
            name = f["name"].split("=")[0]
            for suffix in ("_sin", "_cos"):
                name = name[:-len(suffix)] if name.endswith(suffix) else name
            self.context_groups.setdefault(name, []).append(c)
        self.event_feature_names = [f["name"] for f in m["feature_schema"]["event_features"]]
        # The attribution baseline's context (core::BaselineContext): the manifest's training
        # means, 0 where a bundle has none.
        self.context_baseline = torch.tensor(
            [[f.get("baseline", 0.0) for f in m["feature_schema"]["context_features"]]],
            dtype=torch.float32)


def without_event(x, p, fill):
    """Input tensor x [1, L, ...] without position p, the older positions moving up."""
    return torch.cat([torch.full_like(x[:, :1], fill), x[:, :p], x[:, p + 1:]], dim=1)


def replay(model, inputs, targets, groups, baseline, padding):
    """Replay attributions of one model's scores of `targets` (explain/replay.h): returns
    (steps, scores [len(steps) + 1, K], left_out [m, K]); steps[i] = (kind, index) is credited
    with scores[i + 1] - scores[i], except the events, which share what their steps add by their
    leave-one-out effects scores[-1] - left_out[j] (see split_events)."""
    items, events, mask, context = inputs
    length, m = items.size(1), int(mask.sum().item())
    steps, prefixes, contexts = [], [], []
    partial = baseline
    for name, features in groups.items():
        if bool((context[0, features] != baseline[0, features]).any()):
            partial = partial.clone()
            partial[0, features] = context[0, features]
            steps.append(("context", name))
            prefixes.append(length - m)
            contexts.append(partial)
    if m > 0:  # The events, all at once: split_events shares what they add.
        steps.append(("events", length - m))
        prefixes.append(length)
        contexts.append(context)
    featured, current = [], torch.zeros_like(events)
    for e in range(events.size(2)):
        if bool((events[0, :, e] != 0).any()):
            current = current.clone()
            current[0, :, e] = events[0, :, e]
            steps.append(("feature", e))
            featured.append(current)
    with torch.no_grad():
        index = torch.tensor(targets)
        table, bias = model.item_table()[index], model.item_bias()[index]
        # One pass: the history without side-features (its prefixes: rows 0..L, row 0 the empty
        # history), then each featured input whole (rows L + 1, ...), then the request without
        # each of its events.
        left = range(length - m, length)
        batch_items = torch.cat([items] * (1 + len(featured)) +
                                [without_event(items, p, padding) for p in left])
        batch = torch.cat([torch.zeros_like(events)] + featured +
                          [without_event(events, p, 0.0) for p in left])
        batch_mask = torch.cat([mask] * (1 + len(featured)) +
                               [without_event(mask, p, 0.0) for p in left])
        n = batch.size(0)
        sequences = model.prefix_sequences(model.embed(batch_items, batch), batch_mask)
        rows = [0] + prefixes + list(range(length + 1, length + n))
        scores = model.user_vectors(sequences[rows],
                                    torch.cat([baseline] + contexts + [context] * (n - 1)))
        scores = (scores @ table.t() + bias).double().numpy()
    return steps, scores[:len(steps) + 1], scores[len(steps) + 1:]


def split_events(added, end, left_out):
    """Event credits as explain/replay.h gives them: each event's leave-one-out effect
    end - left_out plus an equal share of what those leave out of `added` (the events step)."""
    effects = end - left_out
    return effects + (added - effects.sum()) / len(effects)


class Recommender:
    def __init__(self, bundle, pb):
        self.b = bundle
        self.pb = pb

    def features(self, history, known, max_history, request_time, country):
        """items, event features, mask (1 x L ...) and context (1 x C), as core/featurizer.cc."""
        b = self.b
        items = [b.num_items] * max_history
        events = [[0.0, 0.0, 0.0] for _ in range(max_history)]
        mask = [0.0] * max_history
        first = max(0, len(known) - max_history)
        for k in range(first, len(known)):
            pos = max_history - (len(known) - k)
            t, index = known[k]
            e = history[t]
            gap = 0.0
            if k > 0:
                prev = history[known[k - 1][0]]
                if e.HasField("timestamp") and prev.HasField("timestamp"):
                    gap = max(0, e.timestamp.seconds - prev.timestamp.seconds) / 86400.0
            items[pos] = index
            mask[pos] = 1.0
            events[pos] = recsys_models.event_features(
                e.quantity if e.HasField("quantity") else 0.0,
                e.price if e.HasField("price") else 0.0, gap)
        last = None
        if known and history[known[-1][0]].HasField("timestamp"):
            last = history[known[-1][0]].timestamp.seconds
        context = recsys_models.context_features(request_time, last, country, b.countries)
        return (torch.tensor([items]), torch.tensor([events], dtype=torch.float32),
                torch.tensor([mask]), torch.tensor([context], dtype=torch.float32))

    def Recommend(self, request, context):
        pb, b = self.pb, self.b
        top_k = request.top_k or 10
        if top_k < 0 or top_k > 100:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "top_k: must be in [0, 100]")
        history = request.history
        known = [(t, b.index[e.item_id]) for t, e in enumerate(history) if e.item_id in b.index]
        request_time = (request.context.time.seconds if request.context.HasField("time")
                        else int(time.time()))
        weights = recency_weights(len(known), b.recency_decay)
        self_weights = recency_weights(len(known), b.self_recency_decay)
        if b.self_half_life_days > 0 and known:  # core::SelfWeights, in log2 space.
            ages = np.array([max(0, request_time - history[t].timestamp.seconds) / 86400.0
                             if history[t].HasField("timestamp") else 0.0 for t, _ in known])
            log_w = (np.arange(len(known) - 1, -1, -1) * np.log2(b.self_recency_decay) -
                     ages / b.self_half_life_days)
            self_weights = np.exp2(log_w - log_w.max())
            self_weights /= self_weights.sum()
        cf = np.zeros(b.num_items)
        for k, (_, i) in enumerate(known):
            lo, hi = b.offsets[i], b.offsets[i + 1]
            cf[b.neighbor_items[lo:hi]] += weights[k] * b.neighbor_sims[lo:hi]
            cf[i] += self_weights[k] * b.self_similarity
        raw = {"cf": cf, "pop": b.pop_score}
        weight = {s["name"]: s["weight"] for s in b.sources}
        weight.update(request.fusion.weights)
        inputs = {}
        with torch.no_grad():
            for name, (model, max_history) in b.models.items():
                inputs[name] = self.features(history, known, max_history, request_time,
                                             request.context.country)
                raw[name] = model(*inputs[name])[0].numpy().astype(np.float64)
        fused = np.zeros(b.num_items)
        for s in b.sources:
            fused += weight[s["name"]] * (s["slope"] * raw[s["name"]] + s["intercept"])
        if request.ranking.popularity_penalty > 0:
            fused -= request.ranking.popularity_penalty * np.log1p(b.popularity)
        for item in request.exclude_item_ids:
            if item in b.index:
                fused[b.index[item]] = -np.inf
        k = min(top_k, b.num_items)
        top = np.argpartition(-fused, k - 1)[:k]
        top = top[np.argsort(-fused[top], kind="stable")]

        response = pb.RecommendResponse(request_id=request.request_id)
        response.metadata.bundle_version = b.version
        explain = request.explain.method != pb.ATTRIBUTION_METHOD_NONE
        replayed = {}  # Model name -> (steps, scores [steps + 1, k]).
        if request.explain.method in (pb.ATTRIBUTION_METHOD_UNSPECIFIED,
                                      pb.ATTRIBUTION_METHOD_REPLAY):
            for name, (model, _) in b.models.items():
                if weight[name] != 0:
                    replayed[name] = replay(model, inputs[name], top.tolist(), b.context_groups,
                                            b.context_baseline, b.num_items)
        for rank, i in enumerate(top, 1):
            item = response.items.add(item_id=b.ids[i], rank=rank, score=float(fused[i]))
            for s in b.sources:
                name = s["name"]
                w = weight[name]
                source = item.sources.add(source=name, raw_score=float(raw[name][i]), weight=w)
                source.normalized_score = s["slope"] * source.raw_score + s["intercept"]
                source.contribution = w * source.normalized_score
                if not explain:
                    continue
                if name == "cf":
                    for k, (t, j) in enumerate(known):
                        if j == i:
                            share = self_weights[k] * b.self_similarity
                        else:
                            lo, hi = b.offsets[j], b.offsets[j + 1]
                            hit = np.nonzero(b.neighbor_items[lo:hi] == i)[0]
                            share = weights[k] * b.neighbor_sims[lo + hit[0]] if len(hit) else 0
                        if share:
                            item.attributions.add(
                                feature="history[%d]" % t, history_index=t,
                                kind=pb.FEATURE_KIND_HISTORY_EVENT, item_id=b.ids[j],
                                attribution=float(w * s["slope"] * share))
                elif name == "pop":
                    item.attributions.add(feature="recent_popularity",
                                          kind=pb.FEATURE_KIND_PRIOR,
                                          attribution=float(w * s["slope"] * raw[name][i]))
                elif name in replayed:
                    self.add_replay(item, replayed[name], rank - 1, w * s["slope"], known)
            if explain:
                item.attributions.sort(key=lambda a: -abs(a.attribution))
        return response


    def add_replay(self, item, replayed, k, scale, known):
        """The replay entries of target k: each step's score change (the events step split
        among the events), scaled into the fused score."""
        pb, b = self.pb, self.b
        steps, scores, left_out = replayed
        for step, (kind, index) in enumerate(steps):
            change = scores[step + 1, k] - scores[step, k]
            value = float(scale * change)
            if kind == "events":
                events = split_events(change, scores[-1, k], left_out[:, k])
                for e, credit in enumerate(events):
                    t, j = known[len(known) - len(events) + e]
                    item.attributions.add(feature="history[%d]" % t, history_index=t,
                                          kind=pb.FEATURE_KIND_HISTORY_EVENT, item_id=b.ids[j],
                                          attribution=float(scale * credit))
            elif kind == "context":
                item.attributions.add(feature=index, kind=pb.FEATURE_KIND_CONTEXT,
                                      history_index=-1, attribution=value)
            else:
                item.attributions.add(feature=b.event_feature_names[index], history_index=-1,
                                      kind=pb.FEATURE_KIND_EVENT_FEATURE, attribution=value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="bundles", help="bundle version or bundles root")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: pick one)")
    parser.add_argument("--threads", type=int, default=8, help="gRPC handler threads")
    parser.add_argument("--pb_dir", default="build/python", help="where recommender_pb2 goes")
    args = parser.parse_args()
    pb = load_pb2(args.pb_dir)
    service = Recommender(Bundle(args.bundle), pb)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.threads))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "recsys.v1.Recommender",
        {"Recommend": grpc.unary_unary_rpc_method_handler(
            service.Recommend, request_deserializer=pb.RecommendRequest.FromString,
            response_serializer=pb.RecommendResponse.SerializeToString)})])
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"baseline listening on port {port}, torch threads {torch.get_num_threads()}",
          flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
