#!/usr/bin/env bash
# Reproduces docs/faithfulness.md: the deletion test of every attribution method through the
# real server. Serves the held-out bundle of tools/eval_bundle.sh (trained only on purchases
# before 2011-11-09; built on first use, about 7 minutes) on a free loopback port and runs
# build/tools/recsys_faithfulness over requests of customers who bought again in
# 2011-11-09 .. 2011-12-09. About a minute for the requests on 2 cores, then about 6 minutes
# for KernelSHAP with up to 8192 coalitions.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null

input=${INPUT:-data/online-retail-ii/online_retail_ii.csv.gz}
cases=${CASES:-300}
out=docs/faithfulness.md
bundle=$(./tools/eval_bundle.sh)

source tools/lib/serve.sh
start_server --bundle="$bundle" --max_samples=8192

faithfulness() {
  ./build/tools/recsys_faithfulness --address=127.0.0.1:"$port" --input="$input" \
    --cutoff=2011-11-09 --end=2011-12-10 --cases="$cases" "$@"
}
all=$(faithfulness)
new=$(faithfulness --exclude_history)
shap_samples=$(faithfulness --exclude_history \
  --methods=occlusion,kernel_shap@128,kernel_shap@512,kernel_shap@2048,kernel_shap@8192)
{
  echo "# Faithfulness of the explanations"
  echo
  echo "Produced by \`tools/faithfulness.sh\` on $(date -u +%Y-%m-%d), through the real server"
  echo "(\`recsys_server\` on loopback) serving a bundle trained only on purchases before"
  echo "2011-11-09 (\`tools/make_bundle.py --cutoff=2011-11-09\`, default settings)."
  echo
  echo "Deletion test: for each request and method, the method's top-attributed history event"
  echo "of the top recommended item is deleted from the request and the item is re-scored"
  echo "(\`candidates_only\`, same request otherwise); the same is done for one random history"
  echo "event, the same for every method. A faithful method finds the events the score depends"
  echo "on: deleting them costs more than deleting a random one. Scores are the fused score"
  echo "(its units: see README, \"Reading a response\"). \`replay\` is the server's default."
  echo "\`cf_exact\` attributes only the exact sources (cf, pop), so its pick ignores the models;"
  echo "the others see the whole score. Requests where a method had no positive history"
  echo "attribution, or ran degraded, are left out for every method, so all rows cover the"
  echo "same requests."
  echo
  echo "Occlusion's attribution of an event is by definition the score drop of deleting it"
  echo "alone, so it is the ceiling of this test; the question is how close the others come."
  echo "\"top's deletion raises the score\": the share of requests where deleting the method's top"
  echo "event raised the item's score, so that the event it credited most has a negative effect"
  echo "on this request (such a pick loses unless deleting the random event raises it at least as"
  echo "much); why the gradient methods and KernelSHAP make such picks: [explanations.md](explanations.md)."
  echo "Completeness (|completeness_error|, and its largest ratio to |score - baseline_score|):"
  echo "replay and KernelSHAP add up (float rounding), Integrated Gradients up to its"
  echo "integration error; occlusion misses the interactions, gradient x input the curvature,"
  echo "LIME whatever its fit leaves (its mean R^2 is in its own column), \`cf_exact\` the"
  echo "models' whole share. Timings are the server's own stage timings (2 workers, 1 LibTorch"
  echo "thread each, one request at a time). Replay's model pass runs in the rank stage (the"
  echo "ranker's encoder pass covers replay's steps), so compare its rank + explain with the others'."
  echo
  echo "## All items (the bundle's default: past items may be recommended again)"
  echo
  echo "$all"
  echo
  echo "## Items new to the shopper (\`filters.exclude_history\`)"
  echo
  echo "$new"
  echo
  echo "## KernelSHAP against its coalition count (items new to the shopper)"
  echo
  echo 'The same test with `explain.samples` set per request (`kernel_shap@N`: N coalitions; the'
  echo "server's default is 128, the request limit 1024 unless \`--max_samples\` raises it, as here),"
  echo 'occlusion beside it; its own run, so its requests are those where these methods (not all'
  echo 'of the tables above) had a positive history attribution. Where more coalitions no longer'
  echo 'move the rate, the estimate is near the Shapley values of the game; what they credit that'
  echo 'a deletion does not: [explanations.md](explanations.md).'
  echo
  echo "$shap_samples"
} > "$out"
echo "wrote $out" >&2
