#!/usr/bin/python3
"""Grows a real bundle into a synthetic one with --items catalogue items, for the scale
benchmarks (tools/benchmark.sh): how latency and memory grow with the catalogue.

  /usr/bin/python3 tools/make_synthetic_bundle.py --from=bundles --items=1000000 \\
      --out=build/synthetic/1000000

The real items keep their rows, CF neighbour lists and model weights, so held-out requests
still mean something; every added item ("SYN0000001", ...) gets a random category of the real
ones, a random price and popularity, --neighbors random CF neighbours with decreasing
similarities, and random embedding and output rows scaled like the trained ones. The models
have the same architecture and sizes as the real ones, with item tables of the new size.
Seeded: the same flags give the same bundle.
"""

import argparse
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recsys_models  # noqa: E402


def resolve(path):
    if os.path.exists(os.path.join(path, "manifest.json")):
        return path
    versions = sorted(d for d in os.listdir(path)
                      if not d.startswith(".") and
                      os.path.exists(os.path.join(path, d, "manifest.json")))
    if not versions:
        sys.exit(f"error: no bundle under {path}")
    return os.path.join(path, versions[-1])


def progress(what, done, total):
    print(f"{what}: {done:,} / {total:,}", file=sys.stderr, flush=True)


def grow_items(src, dst, n, rng):
    with open(src) as f:
        lines = f.read().splitlines()
    header = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    real = len(rows)
    col = {name: i for i, name in enumerate(header)}
    categories = sorted({r[col["category"]] for r in rows})
    with open(dst, "w") as out:
        out.write("\n".join(lines) + "\n")
        extra = n - real
        prices = np.round(rng.lognormal(1.0, 0.8, extra), 2)
        popularity = rng.geometric(0.05, extra)
        cats = rng.integers(0, len(categories), extra)
        for k in range(extra):
            row = [""] * len(header)
            row[col["id"]] = f"SYN{k + 1:07d}"
            row[col["description"]] = f"SYNTHETIC ITEM {k + 1}"
            row[col["price"]] = f"{prices[k]:.2f}"
            row[col["category"]] = categories[cats[k]]
            row[col["popularity"]] = str(popularity[k])
            row[col["recent_popularity"]] = "0"
            out.write("\t".join(row) + "\n")
    return real


def grow_cf(src, dst, real, n, neighbors, rng):
    with open(src, "rb") as f:
        data = f.read()
    magic, version, num_items, per_item, shrinkage, num_neighbors = \
        struct.unpack_from("<8sIIIfQ", data, 0)
    assert magic == b"RECSYSCF" and num_items == real, "unexpected CF index"
    offsets = np.frombuffer(data, dtype="<u8", count=real + 1, offset=32)
    entries = np.frombuffer(data, dtype=[("item", "<i4"), ("sim", "<f4")],
                            count=num_neighbors, offset=32 + 8 * (real + 1))
    extra = n - real
    new_entries = np.empty(extra * neighbors, dtype=entries.dtype)
    # Neighbours: random items other than the item itself; similarities decreasing.
    items = rng.integers(0, n - 1, (extra, neighbors)).astype(np.int32)
    own = np.arange(real, n, dtype=np.int32)[:, None]
    items[items >= own] += 1
    items.sort(axis=1)
    new_entries["item"] = items.reshape(-1)
    sims = np.sort(rng.uniform(0.01, 0.3, (extra, neighbors)).astype(np.float32), axis=1)[:, ::-1]
    new_entries["sim"] = sims.reshape(-1)
    new_offsets = np.concatenate([offsets, offsets[-1] + neighbors *
                                  np.arange(1, extra + 1, dtype=np.uint64)])
    header = struct.pack("<8sIIIfQ", magic, version, n, per_item, shrinkage,
                         num_neighbors + extra * neighbors)
    body = header + new_offsets.astype("<u8").tobytes() + entries.tobytes() + \
        new_entries.tobytes()
    with open(dst, "wb") as f:
        f.write(body)
        f.write(struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF))


# The text CNN's item encoder: training only, its item vectors are in the exported tables.
TRAINING_ONLY = ("tokens", "words.", "text.", "content.", "output_projection.")


def grow_model(src, dst, spec, num_context, real, n, seed):
    torch.manual_seed(seed)
    trained = torch.jit.load(src).state_dict()
    features = trained.get("item_features", torch.zeros(real, 0))
    model = recsys_models.make_model(spec["kind"], n, spec["max_history"], num_context,
                                     spec["embedding_dim"], torch.zeros(n, features.size(1)))
    state = model.state_dict()
    with torch.no_grad():
        for name, value in trained.items():
            if name.startswith(TRAINING_ONLY):
                continue
            if name not in state or state[name].dim() != value.dim():
                sys.exit(f"error: {src}: {name} has no place in this version's "
                         f"{spec['kind']} model; rebuild the bundle with tools/make_bundle.py")
            target = state[name]
            if name == "item_features":  # Real rows, then copies of random real rows.
                target[:real] = value
                target[real:] = value[torch.randint(0, real, (n - real,))]
            elif name == "item_embedding.weight":  # Real rows, then random; padding row last.
                std = value[:real].std()
                target.normal_(0, float(std))
                target[:real] = value[:real]
                target[n] = value[real]
            elif name == "output.weight":
                target.normal_(0, float(value.std()))
                target[:real] = value
            elif name == "bias":
                target.fill_(float(value.mean()))
                target[:real] = value
            else:
                target.copy_(value)
    model.load_state_dict(state)
    model.eval()
    torch.jit.script(model).save(dst)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", default="bundles",
                        help="real bundle version or bundles root")
    parser.add_argument("--items", type=int, required=True, help="catalogue size")
    parser.add_argument("--neighbors", type=int, default=20,
                        help="CF neighbours per added item (the real ones keep theirs)")
    parser.add_argument("--out", required=True, help="bundle root to write the version into")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    src = resolve(args.source)
    with open(os.path.join(src, "manifest.json")) as f:
        manifest = json.load(f)
    version = f"synthetic-{args.items}"
    final = os.path.join(args.out, version)
    staging = os.path.join(args.out, "." + version)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    rng = np.random.default_rng(args.seed)
    real = grow_items(os.path.join(src, manifest["items_file"]),
                      os.path.join(staging, manifest["items_file"]), args.items, rng)
    if args.items <= real:
        sys.exit(f"error: --items must exceed the real catalogue's {real}")
    progress("items", args.items, args.items)
    grow_cf(os.path.join(src, manifest["cf_index_file"]),
            os.path.join(staging, manifest["cf_index_file"]), real, args.items, args.neighbors,
            rng)
    progress("cf neighbour lists", args.items, args.items)
    num_context = len(manifest["feature_schema"]["context_features"])
    for i, spec in enumerate(manifest["models"]):
        grow_model(os.path.join(src, spec["file"]), os.path.join(staging, spec["file"]), spec,
                   num_context, real, args.items, args.seed + i)
        progress(f"model {spec['name']}", i + 1, len(manifest["models"]))
    if manifest.get("country_popularity_file"):
        name = manifest["country_popularity_file"]
        shutil.copy(os.path.join(src, name), os.path.join(staging, name))
    manifest["version"] = version
    manifest["data_source"] = (f"synthetic: {src} grown to {args.items} items "
                               f"(tools/make_synthetic_bundle.py, seed {args.seed})")
    with open(os.path.join(staging, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(staging, final)
    print(f"bundle {final}: {args.items:,} items", file=sys.stderr)


if __name__ == "__main__":
    main()
