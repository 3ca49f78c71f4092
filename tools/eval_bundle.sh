#!/usr/bin/env bash
# Prints the directory of the held-out evaluation bundle (trained only on purchases before
# 2011-11-09, tools/make_bundle.py defaults), building it first when it is missing or was made
# by an older builder (about 7 minutes on 2 cores: it tunes on its validation window). Cached under build/eval-bundles/.
# Used by tools/faithfulness.sh and tools/evaluate_scenarios.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
input=${INPUT:-data/online-retail-ii/online_retail_ii.csv.gz}
# Bump when the bundle builder's output changes, so that the cache is rebuilt.
format=10
root=build/eval-bundles
bundle=$root/cut-2011-11-09-f$format
if [[ ! -f $bundle/manifest.json ]]; then
  rm -rf "$root"
  /usr/bin/python3 tools/make_bundle.py --input="$input" --out_root="$root" \
    --version="$(basename "$bundle")" --cutoff=2011-11-09 >&2
fi
echo "$bundle"
