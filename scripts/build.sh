#!/usr/bin/env bash
# Configures (once) and builds everything into build/ with Ninja, two jobs at a time; or only
# the targets given (docker/Dockerfile: the server and the bundle builder).
#
#   scripts/build.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build build -j "${RECSYS_BUILD_JOBS:-2}" ${1:+--target "$@"}
