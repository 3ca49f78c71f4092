#!/usr/bin/env bash
# Reproduces docs/evaluation.md. Every bundle is built by tools/make_bundle.py with a cut-off;
# the builder tunes on the last 4 weeks before that cut-off (never on the month after it) and
# rebuilds on everything before it. Each bundle is then evaluated on the month after its cut-off
# with the protocol of tools/evaluate.cc (every basket of a customer who bought before the
# cut-off is one request, history = all purchases before the basket), paired 95% bootstrap
# intervals over customers against the blend.
#
#   tools/evaluate.sh            # about 35 minutes on 2 cores
#   EVAL_WORK=DIR tools/evaluate.sh   # keeps the bundles in DIR and reuses those already there
#
# Sections: the Online Retail II test month (and the previous, untuned builder with the
# long-tail knob, as a reference); (a) the 2010 season; (b) a ratings-like transform of the log
# (tools/ratings_like.py).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh recsys_build_bundle recsys_evaluate >/dev/null

input=${INPUT:-data/online-retail-ii/online_retail_ii.csv.gz}
if [[ -n ${EVAL_WORK:-} ]]; then
  work=$EVAL_WORK
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
out=docs/evaluation.md
methods=popular,recent_popular,repeat,cf,pop,cnn,rnn,blend

# bundle NAME INPUT CUTOFF [FLAGS...]: builds $work/NAME (unless there), its log in
# $work/NAME.log and the seconds it took in $work/NAME.seconds.
bundle() {
  local name=$1 data=$2 cutoff=$3 start
  shift 3
  [[ -f $work/$name/manifest.json && -f $work/$name.seconds ]] && return 0
  echo "building $name" >&2
  start=$(date +%s)
  if ! /usr/bin/python3 tools/make_bundle.py --input="$data" --out_root="$work" \
    --version="$name" --cutoff="$cutoff" "$@" 2>"$work/$name.log"; then
    tr '\r' '\n' <"$work/$name.log" | tail -20 >&2
    echo "error: make_bundle.py failed for $name" >&2
    exit 1
  fi
  echo $(($(date +%s) - start)) >"$work/$name.seconds"
}

# report NAME DATA END [EVALUATE FLAGS...]: the bundle's test table and its builder's decisions.
report() {
  local name=$1 data=$2 end=$3
  shift 3
  echo "\`make_bundle.py\` took $(cat "$work/$name.seconds") s on 2 cores. Builder's notes:"
  echo
  /usr/bin/python3 - "$work/$name/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
notes = m.get("validation", {}).get("notes", [])
for n in notes or ["(none: every model kept a weight)"]:
    print(f"- {n}")
w = ", ".join(f"{s['name']} {s['weight']:g}" for s in m["sources"])
d = m["defaults"]
print(f"- weights chosen on validation: {w}; popularity penalty {d['popularity_penalty']:g}; "
      f"exclude_history {str(d['exclude_history']).lower()}; popularity window "
      f"{m.get('recent_days', 28)} days; CF {m['cf']}")
EOF
  echo
  ./build/tools/recsys_evaluate --input="$data" --bundle="$work/$name" --end="$end" "$@"
  echo "Validation (the builder's window, models trained before it; from the bundle's"
  echo "validation.md):"
  echo
  sed -n '/^## 4/,$p' "$work/$name/validation.md" | tail -n +2
}

bundle test "$input" 2011-11-09
# The previous builder: no tuning, the former weights, the long-tail knob at 0.1.
bundle previous "$input" 2011-11-09 --tune=0 --weights=pop=0.3,cnn=0,rnn=0.1 \
  --popularity_penalty=0.1 --item_features=0 --text_cnn=0 --dropout=0 --lr=0.002 --epochs=10
bundle season2010 "$input" 2010-11-09
[[ -f $work/ratings_like.csv.gz ]] ||
  /usr/bin/python3 tools/ratings_like.py --input="$input" --output="$work/ratings_like.csv.gz"
bundle ratings "$work/ratings_like.csv.gz" 2011-11-09

{
  echo "# Offline evaluation"
  echo
  echo "Produced by \`tools/evaluate.sh\` on $(date -u +%Y-%m-%d) from \`$input\`."
  echo
  echo "Protocol: a time split at each cut-off. Every basket in the month after the cut-off of"
  echo "a customer who bought before it is one request; its history is all of that customer's"
  echo "purchases before the basket, including earlier baskets in the month (what a storefront"
  echo "knows at request time), the last 200 sent; targets are the basket's items (**all**), or"
  echo "those the customer never bought before with the history excluded from the ranking"
  echo "(**new**). Ranked against the full catalogue; items first sold after the cut-off count"
  echo "as misses. The bundle methods run through \`core::Ranker\`, the server's ranking code."
  echo "The last columns are paired 95% bootstrap intervals over customers (1000 resamples) of"
  echo "the blend's NDCG@10 minus the row's: \"above 0\" means the blend beats the row."
  echo
  echo "- \`popular\`, \`recent_popular\`: most purchase lines before the cut-off, overall and in"
  echo "  its last 28 days; \`repeat\`: the customer's own items, most bought first."
  echo "- \`cf\`, \`pop\` (recent popularity over the bundle's window, 7 to 56 days), \`cnn\`,"
  echo "  \`rnn\`: one source of the bundle alone; \`blend\`: the bundle with its own weights and"
  echo "  defaults (popularity penalty, exclude_history), all chosen (the window too) by"
  echo "  \`make_bundle.py\` on its validation window."
  echo "- \`previous\`: the builder before self-tuning (fixed weights cf 1, pop 0.3, cnn 0,"
  echo "  rnn 0.1, models without item features or dropout, 10 epochs) with the long-tail knob"
  echo "  \`ranking.popularity_penalty\` 0.1 as its default."
  echo
  echo "## Online Retail II test month: cut-off 2011-11-09, held out 2011-11-09 .. 2011-12-09"
  echo
  report test "$input" 2011-12-10 --methods="$methods,previous" \
    --bundles="previous=$work/previous"
  echo "## (a) The 2010 season: cut-off 2010-11-09, held out 2010-11-09 .. 2010-12-09"
  echo
  report season2010 "$input" 2010-12-10 --methods="$methods"
  echo "## (b) Ratings-like: each customer-item pair once, quantity 1, price 1.0, one country"
  echo
  echo "\`tools/ratings_like.py\` of the same log (no repeats, so the **all** and **new**"
  echo "variants differ only by the exclusion of past items); cut-off 2011-11-09."
  echo
  report ratings "$work/ratings_like.csv.gz" 2011-12-10 --methods="$methods"
  echo "## The test bundle's tuning record (validation.md)"
  echo
  sed -n '/^## 1/,/^## 4/p' "$work/test/validation.md" | sed '$d'
} > "$out"
echo "wrote $out" >&2
