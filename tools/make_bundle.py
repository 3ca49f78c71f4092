#!/usr/bin/python3
"""Builds a complete bundle version in one command: item-CF index, catalogue, CNN and RNN.

  /usr/bin/python3 tools/make_bundle.py --input=data/online-retail-ii/online_retail_ii.csv.gz \\
      --out_root=bundles [--cutoff=2011-11-09] [--version=NAME] [--weights=cf=1,cnn=..,rnn=..]

The input is any CSV in the Online Retail II layout (plain or gzip); --cutoff keeps purchases
at or after that date out of everything (for time-split evaluation). The C++ builder
(build/tools/recsys_build_bundle, built by scripts/build.sh) writes the CF part, then
train_models.py adds the models; the version directory appears in out_root only when complete.
Extra CF options go through --cf_flags, e.g. --cf_flags="--neighbors=50".
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default="data/online-retail-ii/online_retail_ii.csv.gz")
    parser.add_argument("--out_root", default="bundles")
    parser.add_argument("--version", default="",
                        help="version directory name (default: the UTC time, e.g. "
                             "20261129T080000Z)")
    parser.add_argument("--cutoff", default="", help="train only before this date")
    parser.add_argument("--cf_flags", default="", help="extra flags for recsys_build_bundle")
    parser.add_argument("--builder", default=os.path.join(ROOT, "build/tools/recsys_build_bundle"))
    train_models.add_training_flags(parser)
    args = parser.parse_args()

    version = args.version or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    final = os.path.join(args.out_root, version)
    if os.path.exists(final):
        sys.exit(f"error: {final} already exists")
    staging = os.path.join(args.out_root, ".staging-" + version)
    shutil.rmtree(staging, ignore_errors=True)
    command = [args.builder, f"--input={args.input}", f"--out_root={staging}",
               f"--version={version}"] + ([f"--cutoff={args.cutoff}"] if args.cutoff else []) + \
        shlex.split(args.cf_flags)
    if subprocess.run(command).returncode != 0:
        sys.exit("error: recsys_build_bundle failed")
    args.bundle = os.path.join(staging, version)
    train_models.train_bundle(args)
    os.rename(args.bundle, final)
    os.rmdir(staging)
    print(f"bundle {final}: item-CF, {args.models} ready")


if __name__ == "__main__":
    main()
