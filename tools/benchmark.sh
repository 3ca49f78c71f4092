#!/usr/bin/env bash
# Reproduces docs/performance.md and its plots (docs/performance/): everything measured in one
# run on this machine, so that the ratios compare like with like. About 20 minutes on 2 cores.
#
#   1. Saturation throughput (closed loop, 4 callers, 3 runs each, interleaved): recsys_server
#      by explanation method, and the Python baseline (tools/baseline_server.py) on the same
#      bundle and requests.
#   2. gRPC overhead: one caller through gRPC against the same pipeline in process
#      (recsys_loadgen --mode=inprocess), the in-process saturation (2 callers), and an empty
#      RPC (health Check) for the floor of a round trip, 3 runs each.
#   3. Latency against offered load (open loop) at fractions of the default's saturation, 3
#      rounds.
#   4. Scale: synthetic 100k and 1M item bundles (tools/make_synthetic_bundle.py, cached in
#      build/synthetic/) at low load, with the server's peak resident memory.
#   5. Micro-benchmarks (build/tools/recsys_microbench, 3 repetitions) on the default and the
#      1M bundle.
#   6. The int8 item tables (the default) and half ones against float: NDCG@10 of the held-out
#      bundle (tools/eval_bundle.sh) on its test month, each way.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
source tools/lib/serve.sh
ensure_default_bundle
out=docs/performance
mkdir -p "$out"
: >"$out/loadgen.jsonl"
: >"$out/overhead.jsonl"
: >"$out/scale.jsonl"
loadgen() {  # loadgen FILE ARGS...: one recsys_loadgen run, its JSON line appended to FILE.
  local file=$1
  shift
  ./build/tools/recsys_loadgen --warmup=2s "$@" | tee -a "$file" | cut -c1-150 >&2
}

echo "== 1. saturation" >&2
start_server --bundle=bundles
cpp_port=$port
start_baseline --bundle=bundles
for _ in 1 2 3; do
  for method in none replay cf_exact occlusion gradient_x_input; do
    loadgen "$out/loadgen.jsonl" --address=127.0.0.1:"$cpp_port" --mode=closed --concurrency=4 \
      --duration=8s --method="$method" --label="$method"
  done
  loadgen "$out/loadgen.jsonl" --address=127.0.0.1:"$baseline_port" --mode=closed \
    --concurrency=4 --duration=8s --method=replay --label="python baseline (replay)"
done
stop_server "$baseline"

# A CPU profile of the server at saturation with the default explanations (when perf is
# installed; Debian's linux-perf): where a request's time goes, by library.
: >"$out/profile.txt"
if command -v perf >/dev/null; then
  ./build/tools/recsys_loadgen --address=127.0.0.1:"$cpp_port" --mode=closed --concurrency=4 \
    --duration=10s --warmup=1s --method=replay >/dev/null &
  profiled_load=$!
  sleep 2
  perf record -F 499 -g -p "$server" -o "$out/perf.data" -- sleep 6 >/dev/null 2>&1 || true
  wait "$profiled_load"
  perf report -i "$out/perf.data" --no-children -g none --sort dso --percent-limit 1 2>/dev/null |
    grep '%' >"$out/profile.txt" || true
  rm -f "$out/perf.data"
fi

echo "== 2. gRPC overhead" >&2
for _ in 1 2 3; do
  loadgen "$out/overhead.jsonl" --address=127.0.0.1:"$cpp_port" --mode=closed --concurrency=1 \
    --duration=6s --method=replay --label="through gRPC"
  loadgen "$out/overhead.jsonl" --mode=inprocess --bundle=bundles --concurrency=1 \
    --duration=6s --method=replay --label="in process"
  loadgen "$out/overhead.jsonl" --mode=inprocess --bundle=bundles --concurrency=2 \
    --duration=6s --method=replay --label="in process, 2 callers"
  loadgen "$out/overhead.jsonl" --address=127.0.0.1:"$cpp_port" --mode=health --concurrency=1 \
    --duration=6s --label="empty RPC (health Check)"
done

echo "== 3. latency against offered load" >&2
saturation=$(/usr/bin/python3 -c "
import json, statistics
print(statistics.median(json.loads(l)['qps'] for l in open('$out/loadgen.jsonl')
                        if json.loads(l)['label'] == 'replay'))")
for _ in 1 2 3; do
  for fraction in 0.1 0.25 0.5 0.75 0.9; do
    rate=$(/usr/bin/python3 -c "print(round($saturation * $fraction))")
    loadgen "$out/loadgen.jsonl" --address=127.0.0.1:"$cpp_port" --mode=open --rate="$rate" \
      --duration=6s --method=replay --label="default (replay)"
    loadgen "$out/loadgen.jsonl" --address=127.0.0.1:"$cpp_port" --mode=open --rate="$rate" \
      --duration=6s --method=none --label=none
  done
done
stop_server "$server"

echo "== 4. scale" >&2
scale_run() {  # scale_run LABEL BUNDLE SERVER_ARGS...
  local label=$1 bundle=$2
  shift 2
  start_server --bundle="$bundle" "$@"
  for _ in 1 2 3; do
    loadgen "$out/scale.jsonl" --address=127.0.0.1:"$port" --mode=open --rate=20 \
      --duration=15s --label="$label"
  done
  local peak rss
  peak=$(awk '/VmHWM/ {print $2}' /proc/"$server"/status)
  rss=$(awk '/VmRSS/ {print $2}' /proc/"$server"/status)
  echo "{\"label\": \"$label\", \"peak_rss_kib\": $peak, \"rss_kib\": $rss," \
    "\"bundle_bytes\": $(du -sbL "$bundle" | cut -f1)}" >>"$out/scale.jsonl"
  stop_server "$server"
}
default_bundle=$(ls -d bundles/*/ | sort | tail -1)
scale_run "4,620 items (default)" "$default_bundle"
for items in 100000 1000000; do
  # Cached; remade when the default bundle is newer than the copy.
  if [[ ! build/synthetic/synthetic-$items/manifest.json -nt ${default_bundle}manifest.json ]]; then
    /usr/bin/python3 tools/make_synthetic_bundle.py --from=bundles --items=$items \
      --out=build/synthetic
  fi
done
scale_run "100,000 items" build/synthetic/synthetic-100000
scale_run "1,000,000 items" build/synthetic/synthetic-1000000
scale_run "1,000,000 items, 1 worker x 2 threads" build/synthetic/synthetic-1000000 \
  --workers=1 --torch_threads=2

echo "== 5. micro-benchmarks" >&2
micro=(--benchmark_repetitions=3 --benchmark_min_time=0.2 --benchmark_format=json)
./build/tools/recsys_microbench --bundle=bundles "${micro[@]}" >"$out/microbench.json"
./build/tools/recsys_microbench --bundle=build/synthetic/synthetic-1000000 "${micro[@]}" \
  --benchmark_filter='CfScoring|ModelScoreAll|Rank/10|PipelineRun|Explain/0/10' \
  >"$out/microbench-1m.json"

echo "== 6. item table precision" >&2
eval_bundle=$(./tools/eval_bundle.sh)
for precision in float half int8; do
  ./build/tools/recsys_evaluate --bundle="$eval_bundle" --end=2011-12-09 --methods=cnn,rnn,blend \
    --item_tables="$precision" --format=tsv >"$out/precision-$precision.tsv"
done

/usr/bin/python3 tools/plot_latency.py "$out/loadgen.jsonl" "$out/latency.png"
/usr/bin/python3 tools/perf_report.py "$out" >docs/performance.md
echo "wrote docs/performance.md" >&2
