#!/usr/bin/env bash
# Reproduces docs/soak.md: serves the default bundle (bundles/; built first if missing, like
# scripts/run_server.sh) on a free loopback port and runs build/tools/recsys_soak against it
# for SOAK_SECONDS (default 180), sampling the server's resident memory; then SIGTERM, which
# must end the server with exit status 0.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
source tools/lib/serve.sh
ensure_default_bundle
seconds=${SOAK_SECONDS:-180}
out=docs/soak.md
start_server --bundle=bundles

status=0
report=$(./build/tools/recsys_soak --address=127.0.0.1:"$port" --pid=$server \
  --duration="${seconds}s") || status=$?
kill -TERM $server
exit_code=0
wait $server || exit_code=$?
trap - EXIT
{
  echo "# Soak test"
  echo
  echo "Produced by \`tools/soak.sh\` on $(date -u +%Y-%m-%d): \`recsys_server\` with its defaults"
  echo "(2 workers, 1 LibTorch and 1 OpenBLAS thread each, default explanations) serving the default"
  echo "bundle on loopback, and \`build/tools/recsys_soak\` with 4 closed-loop callers replaying"
  echo "the last 20 purchases of the vendored sample's customers; every 7th request is a new"
  echo "shopper (empty history), every 10th asks for KernelSHAP, every 13th is invalid (top_k"
  echo "5000, which must get INVALID_ARGUMENT). Memory is the server's resident set from"
  echo "/proc, after a 5 s warm-up and every 10 s after. Machine: 2 shared cores; client and"
  echo "server share them."
  echo
  echo "$report"
  echo
  echo "After the run, SIGTERM: the server exited with status $exit_code."
} > "$out"
echo "wrote $out" >&2
[[ $status -eq 0 && $exit_code -eq 0 ]]
