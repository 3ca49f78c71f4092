#!/usr/bin/env bash
# Reproduces docs/scenarios.md: the long-tail knob (ranking.popularity_penalty) at a few
# settings, and new shoppers (customers whose first purchase falls in the held-out month), on
# the held-out bundle of tools/eval_bundle.sh (trained only on purchases before 2011-11-09;
# built on first use, about 7 minutes), scored by the C++ ranker the server runs. About
# 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null

input=${INPUT:-data/online-retail-ii/online_retail_ii.csv.gz}
out=docs/scenarios.md
bundle=$(./tools/eval_bundle.sh)
evaluate() {
  ./build/tools/recsys_evaluate --input="$input" --bundle="$bundle" --end=2011-12-10 "$@"
}

# The blend's row of one variant at one penalty: NDCG@10, Coverage@10, Long tail@10.
row() {
  evaluate --methods=blend --variants="$1" --popularity_penalty="$2" |
    awk -F'|' '$2 ~ /blend/ {gsub(/ /, ""); printf "%s | %s | %s", $6, $9, $10}'
}
tail_table="| popularity_penalty | all: NDCG@10 | all: Coverage@10 | all: Long tail@10 | new: NDCG@10 | new: Coverage@10 | new: Long tail@10 |\n|---:|---:|---:|---:|---:|---:|---:|\n"
for penalty in 0 0.05 0.1 0.2 0.5 1; do
  echo "popularity_penalty=$penalty" >&2
  tail_table+="| $penalty | $(row all "$penalty") | $(row new "$penalty") |\n"
done

{
  echo "# Storefront scenarios, evaluated"
  echo
  echo "Produced by \`tools/evaluate_scenarios.sh\` on $(date -u +%Y-%m-%d) from \`$input\`, on a"
  echo "bundle trained only on purchases before 2011-11-09 (\`tools/make_bundle.py\` defaults) and"
  echo "the month after it held out, scored by \`build/tools/recsys_evaluate\` through the same"
  echo "\`core::Ranker\` the server runs. Variants and metrics as in [evaluation.md](evaluation.md);"
  echo "*Long tail@10* is the share of top-10 slots given to items outside the head, the most"
  echo "popular items that make half of the purchase lines before the cut-off."
  echo
  echo "## Long tail: \`ranking.popularity_penalty\`"
  echo
  echo "The fused score minus penalty x log(1 + the item's purchase lines). The blend of the"
  echo "bundle's sources, top 10 of the whole catalogue; \`all\`: every item of the next basket is"
  echo "a target; \`new\`: only items new to the customer (past items not recommended)."
  echo
  printf "%b" "$tail_table"
  echo
  echo "## New shoppers: an empty history"
  echo
  echo "Customers whose first purchase falls in the held-out month; the request has their"
  echo "country and the time of that purchase and no history. \`recent_popular\`: the 28 days"
  echo "before the cut-off, all customers; \`recent_popular_country\`: the same among customers of"
  echo "the shopper's country (where it has at least 100 recent lines, else all); \`pop\`: the"
  echo "bundle's popularity source alone, which for an empty history reads the country's recent"
  echo "purchases the same way, over the bundle's window (its manifest's \`recent_days\`, chosen"
  echo "on validation); \`blend\`: what the server answers (pop and the models' reading of the"
  echo "context with the bundle's new-shopper defaults, chosen on its validation window's new"
  echo "shoppers; flagged \`fallback_used\`)."
  echo
  evaluate --variants=cold --methods=popular,recent_popular,recent_popular_country,pop,blend |
    sed -n '/^| method/,$p'
} > "$out"
echo "wrote $out" >&2
