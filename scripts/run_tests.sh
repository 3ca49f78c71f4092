#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite under CTest, then the
# sanitizer and fuzz half (scripts/run_sanitized_tests.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh
ctest --test-dir build --output-on-failure -j "${RECSYS_TEST_JOBS:-2}"
./scripts/run_sanitized_tests.sh
