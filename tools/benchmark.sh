#!/usr/bin/env bash
# Reproduces docs/performance.md and docs/performance/latency.png: the service end to end on
# loopback with build/tools/recsys_loadgen. Serves the default bundle (built first if missing);
# measures saturation throughput per explanation method (closed loop, 4 callers, 3 runs each),
# then latency against offered load (open loop) at fractions of the default's saturation, with
# and without explanations. About 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
source tools/lib/serve.sh
ensure_default_bundle
mkdir -p docs/performance
results=docs/performance/loadgen.jsonl
: >"$results"
start_server --bundle=bundles
run() {
  ./build/tools/recsys_loadgen --address=127.0.0.1:"$port" --warmup=2s "$@" | tee -a "$results" |
    cut -c1-160 >&2
}
for method in none cf_exact occlusion gradient_x_input; do
  for _ in 1 2 3; do
    run --mode=closed --concurrency=4 --duration=8s --method="$method" --label="$method"
  done
done
saturation=$(/usr/bin/python3 -c "
import json, statistics
print(statistics.median(json.loads(l)['qps'] for l in open('$results')
                        if json.loads(l)['label'] == 'cf_exact'))")
for fraction in 0.1 0.25 0.5 0.75 0.9; do
  rate=$(/usr/bin/python3 -c "print(round($saturation * $fraction))")
  run --mode=open --rate="$rate" --duration=10s --method=cf_exact --label="default (cf_exact)"
  run --mode=open --rate="$rate" --duration=10s --method=none --label=none
done
/usr/bin/python3 tools/plot_latency.py "$results" docs/performance/latency.png
tables=$(/usr/bin/python3 tools/perf_report.py "$results")
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
{
  echo "# Performance"
  echo
  echo "Produced by \`tools/benchmark.sh\` on $(date -u +%Y-%m-%d): \`recsys_server\` with its"
  echo "defaults (2 workers, 1 LibTorch and 1 OpenBLAS thread each) serving the default bundle"
  echo "(4,620 items; cf, pop, cnn, rnn) on loopback, and \`build/tools/recsys_loadgen\` replaying"
  echo "held-out requests (customers' last 50 purchases before 2011-11-09, top 10). Machine: $(nproc)"
  echo "cores ($cpu), shared with other work, and the load generator runs on the same cores, so"
  echo "absolute numbers are pessimistic and move between runs; compare within a table."
  echo
  echo "## Saturation throughput by explanation method (closed loop, 4 callers, 8 s, 3 runs)"
  echo
  echo "$tables" | sed -n '1,/^$/p'
  echo "## Latency against offered load (open loop, latency from the intended send time)"
  echo
  echo "![latency against offered load](performance/latency.png)"
  echo
  echo "$tables" | sed -n '/^| series/,$p'
  echo
  echo "## Not measured yet"
  echo
  echo "The Python baseline server, micro-benchmarks, 100k and 1M item catalogues and profiles"
  echo "are still to come (issue 7); so is gRPC overhead against the in-process cost."
} >docs/performance.md
echo "wrote docs/performance.md" >&2
