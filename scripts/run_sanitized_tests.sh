#!/usr/bin/env bash
# The sanitizer and fuzz half of the test suite (scripts/run_tests.sh runs it after the main
# one): core/ and explain/ (no LibTorch, no gRPC), built with clang under AddressSanitizer and
# UndefinedBehaviorSanitizer into build-fuzz/; their tests run there, then the request fuzzer
# (tests/fuzz/recommend_fuzzer.cc) for RECSYS_FUZZ_SECONDS (default 60) from the seed corpus.
# A crash leaves its input in build-fuzz/crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-fuzz/build.ninja ]; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DRECSYS_FUZZ=ON -DRECSYS_WITH_TORCH=OFF \
    -DRECSYS_SANITIZE=address,undefined
fi
cmake --build build-fuzz -j "${RECSYS_BUILD_JOBS:-2}"
ctest --test-dir build-fuzz --output-on-failure -j "${RECSYS_TEST_JOBS:-2}"

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp tests/fuzz/corpus/* "$corpus"/
log=build-fuzz/fuzz.log
if ! build-fuzz/tests/fuzz/recommend_fuzzer -max_total_time="${RECSYS_FUZZ_SECONDS:-60}" \
    -artifact_prefix=build-fuzz/ -print_final_stats=1 "$corpus" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "fuzz: FAILED (input saved as build-fuzz/crash-*)" >&2
  exit 1
fi
echo "fuzz: $(grep -E '^Done' "$log")"
