#!/usr/bin/env bash
# Installs what is missing, builds, prepares the default bundle from the vendored Online
# Retail II data (once: tools/make_bundle.py tunes on its last 4 weeks and rebuilds, about 9
# minutes on 2 cores),
# and serves it in the foreground: gRPC on 127.0.0.1:50051, Prometheus metrics on
# 127.0.0.1:9464/metrics. Extra arguments go to recsys_server (see --help), e.g.
# --device=cuda:0.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh
if ! ls bundles/*/manifest.json >/dev/null 2>&1; then
  /usr/bin/python3 tools/make_bundle.py --input=data/online-retail-ii/online_retail_ii.csv.gz \
    --out_root=bundles
fi
exec ./build/server/recsys_server --bundle=bundles --address=127.0.0.1:50051 --plaintext \
  --metrics_port=9464 "$@"
