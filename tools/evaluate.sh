#!/usr/bin/env bash
# Reproduces docs/evaluation.md. Tunes on the validation month (train < 2011-10-09, held out
# 2011-10-09 .. 2011-11-09): first the item-CF settings, then the fusion weights of the CNN and
# RNN sources; then builds the test bundle (train < 2011-11-09) with the chosen settings and
# evaluates every method on the test month (2011-11-09 .. 2011-12-10). The test month is never
# used for tuning. Takes about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null

input=${INPUT:-data/online-retail-ii/online_retail_ii.csv.gz}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build=./build/tools/recsys_build_bundle
evaluate=./build/tools/recsys_evaluate
out=docs/evaluation.md

# ndcg VARIANT FLAGS...: builds a validation bundle with FLAGS, prints its CF NDCG@10.
ndcg() {
  local variant=$1
  shift
  local version
  version=v$(date +%s%N)
  "$build" --input="$input" --out_root="$work" --version="$version" --cutoff=2011-10-09 "$@" \
    >/dev/null
  "$evaluate" --input="$input" --bundle="$work/$version" --end=2011-11-09 --methods=cf \
    --variants="$variant" --metric=ndcg10
}

grid="| stage | setting | validation NDCG@10 |\n|---|---|---:|\n"
# Stage 1: the neighbour recency decay, on items new to the customer (repeats play no part).
best_rd=""; best=-1
for rd in 0.7 0.8 0.9 0.97; do
  v=$(ndcg new --recency_decay="$rd")
  echo "recency_decay=$rd: new-items NDCG@10 $v" >&2
  grid+="| 1 (new items) | recency_decay=$rd | $v |\n"
  if awk "BEGIN{exit !($v > $best)}"; then best=$v; best_rd=$rd; fi
done
# Stage 2: the repeat terms, on all items, with that decay.
best_ss=""; best_srd=""; best=-1
for ss in 1 4 16 64; do
  for srd in 0.97 0.99 0.995 1; do
    v=$(ndcg all --recency_decay="$best_rd" --self_similarity="$ss" --self_recency_decay="$srd")
    echo "self_similarity=$ss self_recency_decay=$srd: all-items NDCG@10 $v" >&2
    grid+="| 2 (all items) | self_similarity=$ss, self_recency_decay=$srd | $v |\n"
    if awk "BEGIN{exit !($v > $best)}"; then best=$v; best_ss=$ss; best_srd=$srd; fi
  done
done
chosen="--recency_decay=$best_rd --self_similarity=$best_ss --self_recency_decay=$best_srd"
echo "chosen CF settings: $chosen" >&2

# Stage 3: the weights of the recent-popularity and model sources (CF keeps weight 1), by the
# sum over both variants of NDCG@10 relative to CF alone, so that neither variant is traded
# away for the other.
/usr/bin/python3 tools/make_bundle.py --input="$input" --out_root="$work" --version=val \
  --cutoff=2011-10-09 --cf_flags="$chosen" >&2
cf_all=$("$evaluate" --input="$input" --bundle="$work/val" --end=2011-11-09 --methods=cf \
  --variants=all --metric=ndcg10)
cf_new=$("$evaluate" --input="$input" --bundle="$work/val" --end=2011-11-09 --methods=cf \
  --variants=new --metric=ndcg10)
best_w=""; best=-1
for wp in 0 0.1 0.3; do
for wc in 0 0.3; do
  for wr in 0.1 0.3 1; do
    w="cf=1,pop=$wp,cnn=$wc,rnn=$wr"
    a=$("$evaluate" --input="$input" --bundle="$work/val" --end=2011-11-09 --methods=blend \
      --variants=all --weights="$w" --metric=ndcg10)
    n=$("$evaluate" --input="$input" --bundle="$work/val" --end=2011-11-09 --methods=blend \
      --variants=new --weights="$w" --metric=ndcg10)
    score=$(awk "BEGIN{printf \"%.4f\", $a / $cf_all + $n / $cf_new}")
    echo "weights $w: all $a, new $n, relative sum $score" >&2
    grid+="| 3 (both) | weights $w | all $a, new $n (relative sum $score) |\n"
    if awk "BEGIN{exit !($score > $best)}"; then best=$score; best_w="pop=$wp,cnn=$wc,rnn=$wr"; fi
  done
done
done
echo "chosen weights: cf=1,$best_w" >&2

/usr/bin/python3 tools/make_bundle.py --input="$input" --out_root="$work" --version=test \
  --cutoff=2011-11-09 --cf_flags="$chosen" --weights="$best_w" >&2
{
  echo "# Offline evaluation"
  echo
  echo "Produced by \`tools/evaluate.sh\` on $(date -u +%Y-%m-%d) from \`$input\`."
  echo "Next-basket prediction on a time split: models see only purchases before the cut-off; each customer"
  echo "who bought before it and in the held-out window is one case, whose targets are the items"
  echo "of their first basket in the window, ranked against the full catalogue (no sampled"
  echo "negatives). Items that first appear in the window count as misses for every method."
  echo "The history sent is the last 200 purchases. \`cf\` is scored by the same C++ ranking code"
  echo "(\`core::Ranker\`) that the server runs."
  echo
  echo "- \`popular\`: most purchase lines before the cut-off; \`recent_popular\`: the same over"
  echo "  the last 28 days; \`repeat\`: the customer's own items, most bought first (it has"
  echo "  nothing to offer in the new-items variant)."
  echo "- \`cf\`, \`pop\` (the recent-popularity source), \`cnn\`, \`rnn\`: one source of the"
  echo "  bundle alone; \`blend\`: all sources fused with the bundle's"
  echo "  weights. Models are trained by \`tools/make_bundle.py\` with its defaults."
  echo "- Chosen on the validation month: CF \`$chosen\`; fusion weights cf=1, $best_w."
  echo
  echo "## Test month: train < 2011-11-09, held out 2011-11-09 .. 2011-12-09"
  echo
  "$evaluate" --input="$input" --bundle="$work/test" --end=2011-12-10 \
    --methods=popular,recent_popular,repeat,cf,pop,cnn,rnn,blend
  echo "## Tuning on the validation month: train < 2011-10-09, held out 2011-10-09 .. 2011-11-08"
  echo
  printf "%b" "$grid"
} > "$out"
echo "wrote $out" >&2
