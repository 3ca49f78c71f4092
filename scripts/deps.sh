#!/usr/bin/env bash
# Installs the Debian 12 packages this project needs to build, test and run: only those that
# are missing, so a second run does nothing. Used by the README commands, by CI and by
# docker/. Run as root (or with sudo available).
#
#   scripts/deps.sh                        # everything, container tools included
#   scripts/deps.sh --no-container-tools   # without podman & co (docker/Dockerfile's build stage)
set -euo pipefail

packages=(
  # Build tools.
  cmake ninja-build g++ pkg-config openssl
  # Libraries.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev prometheus-cpp-dev libcpp-httplib-dev nlohmann-json3-dev zlib1g-dev
  # LibTorch, on OpenBLAS: without it LibTorch calls the reference BLAS, about 4x slower.
  libtorch-dev libopenblas0-pthread
  # Tests and benchmarks; clang and its runtimes for the sanitizer and fuzz build.
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
  # Offline training and export (tools/), matching libtorch-dev 1.13; plots for docs/; the
  # Python baseline server of the benchmarks (tools/baseline_server.py).
  python3-torch python3-matplotlib python3-grpcio
  # Deployment tests (tests/deploy/): a real Prometheus and promtool, YAML, HTTP.
  prometheus python3-yaml curl
)
# The container image test (tests/deploy/container_test.sh, docker/podman.sh): podman on runc
# (crun refuses this host's hybrid cgroup layout), catatonit for `podman run --init`, and
# mmdebstrap to make the debian:12 base from the apt repository when no registry is reachable.
container_tools=(podman runc catatonit mmdebstrap)
case "${1:-}" in
  "") packages+=("${container_tools[@]}") ;;
  --no-container-tools) ;;
  *) echo "usage: $0 [--no-container-tools]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
