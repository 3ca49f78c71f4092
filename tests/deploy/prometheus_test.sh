#!/usr/bin/env bash
# Prometheus for real: starts recsys_server on loopback (a CF bundle built from the vendored
# sample), checks its exposition with `promtool check metrics`, starts Debian's prometheus with
# the shipped deploy/prometheus/prometheus.yml (target rewritten to the server's metrics port,
# scrape interval 1 s), sends traffic, and asserts through Prometheus's HTTP API that the
# target is up, the Recommend counters (OK and INVALID_ARGUMENT) and latency histograms
# arrived, and every query of the Grafana dashboard (deploy/grafana) evaluates and returns data.
#
#   tests/deploy/prometheus_test.sh ROOT BUILD_DIR
set -euo pipefail
root=$(realpath "$1")
build=$(realpath "$2")
for tool in prometheus promtool curl; do
  command -v $tool >/dev/null || { echo "FAIL: $tool not installed (scripts/deps.sh)"; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  [[ -f $work/prometheus.log ]] && tail -20 "$work/prometheus.log"
  exit 1
}

"$build/tools/recsys_build_bundle" \
  --input="$root/data/online-retail-ii/online_retail_ii_small.csv.gz" \
  --out_root="$work/bundles" --version=v1 >/dev/null 2>&1 || fail "bundle build"
"$build/server/recsys_server" --address=127.0.0.1:0 --plaintext --metrics_port=0 \
  --bundle="$work/bundles" 2>"$work/server.log" &
pids+=($!)
for _ in $(seq 1 300); do
  grep -q "metrics on port" "$work/server.log" && break
  sleep 0.1
done
grpc_port=$(sed -n "s/^[^,]* on port \([0-9]*\),.*/\1/p" "$work/server.log")
metrics_port=$(sed -n 's/.*metrics on port \([0-9]*\).*/\1/p' "$work/server.log")
[[ -n $grpc_port && -n $metrics_port ]] || { cat "$work/server.log"; fail "server did not start"; }
echo "server: gRPC $grpc_port, metrics $metrics_port"

# Traffic: good requests and a bad one (INVALID_ARGUMENT).
query() { "$build/tools/recsys_query" --address=127.0.0.1:"$grpc_port" "$@"; }
for _ in $(seq 1 20); do
  echo '{"history": [{"itemId": "85123A"}, {"itemId": "22423"}], "topK": 5}' |
    query --method=Recommend >/dev/null
done
if echo '{"topK": 5000}' | query --method=Recommend >/dev/null 2>&1; then
  fail "topK 5000 was accepted"
fi
query --method=GetModelInfo >/dev/null

curl -sf "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics.txt" || fail "no /metrics"
if ! promtool check metrics <"$work/metrics.txt" >"$work/promtool.txt" 2>&1 ||
  [[ -s $work/promtool.txt ]]; then
  cat "$work/promtool.txt"
  fail "promtool check metrics reported problems"
fi
echo "promtool check metrics: clean ($(grep -c '^recsys_' "$work/metrics.txt") recsys_ samples)"

# Prometheus with the shipped scrape config, pointed at this server.
sed -e "s/127.0.0.1:9464/127.0.0.1:$metrics_port/" -e "s/scrape_interval: 15s/scrape_interval: 1s/" \
  "$root/deploy/prometheus/prometheus.yml" >"$work/prometheus.yml"
promtool check config "$work/prometheus.yml" >/dev/null || fail "promtool check config"
prom_port=$(/usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address=127.0.0.1:"$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$prom_port/api/v1"

# value QUERY: the first sample's value of an instant query ("" when none).
value() {
  curl -sf --get "$api/query" --data-urlencode "query=$1" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["status"] == "success", r
print(r["data"]["result"][0]["value"][1] if r["data"]["result"] else "")'
}
up=""
for _ in $(seq 1 60); do
  up=$(value 'up{job="recsys"}' 2>/dev/null || true)
  [[ $up == 1 ]] && break
  sleep 0.5
done
[[ $up == 1 ]] || fail "target recsys not up (up=$up)"
echo "prometheus: target up"

ok=$(value 'recsys_requests_total{job="recsys",method="Recommend",code="OK"}')
[[ $ok == 20 ]] || fail "Recommend OK counter is '$ok', expected 20"
bad=$(value 'recsys_requests_total{job="recsys",method="Recommend",code="INVALID_ARGUMENT"}')
[[ $bad == 1 ]] || fail "Recommend INVALID_ARGUMENT counter is '$bad', expected 1"
count=$(value 'recsys_request_duration_seconds_count{job="recsys",method="Recommend"}')
[[ $count == 21 ]] || fail "latency histogram count is '$count', expected 21"
buckets=$(curl -sf --get "$api/query" \
  --data-urlencode 'query=count(recsys_request_duration_seconds_bucket{job="recsys",method="Recommend"})' |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])')
[[ $buckets -gt 5 ]] || fail "only $buckets latency buckets"
echo "prometheus: counters (OK 20, INVALID_ARGUMENT 1) and the latency histogram ($buckets buckets) arrived"

# Every dashboard query evaluates; those about requests return data. A second scrape after
# more traffic gives the rate() windows two points.
for _ in $(seq 1 5); do
  echo '{"history": [{"itemId": "85123A"}], "topK": 3}' | query --method=Recommend >/dev/null
done
sleep 3
/usr/bin/python3 - "$root/deploy/grafana/recsys-dashboard.json" "$api" <<'EOF' || fail "dashboard queries"
import json, sys, urllib.parse, urllib.request
dashboard, api = json.load(open(sys.argv[1])), sys.argv[2]
failed = 0
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        expr = (target["expr"].replace("$job", "recsys").replace("$__rate_interval", "1m"))
        url = f"{api}/query?" + urllib.parse.urlencode({"query": expr})
        r = json.load(urllib.request.urlopen(url))
        n = len(r["data"]["result"]) if r["status"] == "success" else -1
        needs_data = any(name in expr for name in ("requests_total", "duration_seconds",
                                                   "bundle_items", "queue_depth", "in_flight"))
        status = "ok" if n > 0 or (n == 0 and not needs_data) else "FAIL"
        failed += status == "FAIL"
        print(f"  {status}: {panel['title']} / {target['legendFormat']}: {n} series")
sys.exit(1 if failed else 0)
EOF
echo "OK"
