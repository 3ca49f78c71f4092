#!/usr/bin/env bash
# Two builds of the project side by side in one run, on the same bundle and requests, for
# changes that must not cost speed (a refactoring): micro-benchmarks (BM_Rank/10,
# BM_Explain/<method>/10, BM_PipelineRun) of each build, interleaved, 2 rounds x 3 repetitions;
# then each build's recsys_server at saturation (recsys_loadgen closed loop, 4 callers, 8 s) by
# explanation method, interleaved, 3 rounds. Prints a Markdown table of medians and
# after/before ratios. About 6 minutes on 2 cores.
#
#   tools/compare_builds.sh BEFORE_BUILD_DIR [AFTER_BUILD_DIR (default: build)] [BUNDLE_ROOT]
#
# Make the "before" build from another revision with a git worktree, e.g.
#   git worktree add /tmp/before main && cmake -S /tmp/before -B /tmp/before/build -G Ninja \
#     -DRECSYS_BUILD_TESTS=OFF && ninja -C /tmp/before/build recsys_server_main \
#     recsys_microbench recsys_loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(realpath "$1")
after=$(realpath "${2:-build}")
bundle=${3:-bundles}
source tools/lib/serve.sh
ensure_default_bundle
work=$(mktemp -d)

micro=(--bundle="$bundle" --benchmark_repetitions=3 --benchmark_min_time=0.2
       --benchmark_format=json --benchmark_filter='BM_Rank/10|BM_Explain/./10|BM_PipelineRun')
for round in 1 2; do
  for side in before after; do
    build=$before
    [[ $side == after ]] && build=$after
    echo "== micro-benchmarks, $side, round $round" >&2
    "$build/tools/recsys_microbench" "${micro[@]}" >"$work/micro-$side-$round.json" 2>/dev/null
  done
done

start_server_from() {  # start_server_from BUILD: like start_server, with that build's binary.
  local log
  log=$(mktemp)
  "$1/server/recsys_server" --address=127.0.0.1:0 --plaintext --metrics_port=-1 \
    --bundle="$bundle" 2>"$log" &
  server=$!
  _serve_pids+=("$server")
  _wait_for_port "$server" "$log"
}
start_server_from "$before"
before_port=$port
start_server_from "$after"
after_port=$port
: >"$work/qps.jsonl"
for round in 1 2 3; do
  for method in none cf_exact gradient_x_input occlusion; do
    for side in before after; do
      p=$before_port
      [[ $side == after ]] && p=$after_port
      "$after/tools/recsys_loadgen" --address=127.0.0.1:"$p" --mode=closed --concurrency=4 \
        --warmup=2s --duration=8s --method="$method" --label="$side $method" \
        >>"$work/qps.jsonl"
      tail -n 1 "$work/qps.jsonl" | cut -c1-120 >&2
    done
  done
done

/usr/bin/python3 - "$work" <<'PY'
import glob, json, statistics, sys
work = sys.argv[1]
times = {}
for side in ("before", "after"):
    for path in glob.glob(f"{work}/micro-{side}-*.json"):
        for b in json.load(open(path))["benchmarks"]:
            if b.get("run_type") != "iteration":
                continue
            name = b["run_name"] + (f" ({b['label']})" if b.get("label") else "")
            times.setdefault(name, {}).setdefault(side, []).append(b["real_time"])
print("| micro-benchmark (median of 6, us) | before | after | after / before |")
print("|---|---:|---:|---:|")
for name in sorted(times):
    t = times[name]
    if "before" in t and "after" in t:
        b, a = statistics.median(t["before"]), statistics.median(t["after"])
        print(f"| {name} | {b/1e3:.1f} | {a/1e3:.1f} | {a/b:.3f} |")
qps = {}
for line in open(f"{work}/qps.jsonl"):
    r = json.loads(line)
    side, method = r["label"].split(" ", 1)
    qps.setdefault(method, {}).setdefault(side, []).append(r["qps"])
print()
print("| saturation QPS (closed loop, 4 callers, median of 3) | before | after | after / before |")
print("|---|---:|---:|---:|")
for method, q in qps.items():
    b, a = statistics.median(q["before"]), statistics.median(q["after"])
    spread = lambda v: f"{min(v):.0f}-{max(v):.0f}"
    print(f"| {method} | {b:.0f} ({spread(q['before'])}) | {a:.0f} ({spread(q['after'])}) | {a/b:.3f} |")
PY
rm -rf "$work"
