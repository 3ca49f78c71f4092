#!/usr/bin/env bash
# Installs what is missing, builds, prepares the default bundle from the vendored Online
# Retail II data (once), and serves it in the foreground: gRPC on 127.0.0.1:50051, Prometheus
# metrics on 127.0.0.1:9464/metrics. Extra arguments go to recsys_server (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh
if ! ls bundles/*/manifest.json >/dev/null 2>&1; then
  ./build/tools/recsys_build_bundle --input=data/online-retail-ii/online_retail_ii.csv.gz \
    --out_root=bundles
fi
exec ./build/server/recsys_server --bundle=bundles --address=127.0.0.1:50051 \
  --metrics_port=9464 "$@"
