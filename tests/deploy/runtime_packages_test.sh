#!/usr/bin/env bash
# The runtime image (docker/Dockerfile) installs only docker/runtime-packages.txt: every shared
# library recsys_server links directly must come from one of those packages or from the base
# image (libc6, libgcc-s1, libstdc++6 are in debian:12-slim).
#
#   tests/deploy/runtime_packages_test.sh ROOT RECSYS_SERVER_BINARY
set -euo pipefail
root=$1
binary=$2
listed=$(sed 's/#.*//' "$root/docker/runtime-packages.txt" | xargs)
base="libc6 libgcc-s1 libstdc++6"
status=0
for lib in $(readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
  path=$(ldd "$binary" | awk -v lib="$lib" '$1 == lib {print $3}')
  owner=""
  for candidate in "$path" "$(realpath "$path")" "/usr$path"; do
    owner=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1) && [[ -n $owner ]] && break
  done
  if [[ -z $owner ]]; then
    echo "FAIL: $lib ($path) belongs to no Debian package"
    status=1
  elif [[ " $listed $base " != *" $owner "* ]]; then
    echo "FAIL: $lib comes from $owner, which docker/runtime-packages.txt does not list"
    status=1
  fi
done
# Every listed name is a real package: scripts/deps.sh installed it here (as a dependency of
# the -dev packages), so a typo in the list fails here rather than in a docker build.
for p in $listed; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    { echo "FAIL: $p is not an installed Debian package"; status=1; }
done
[[ $status -eq 0 ]] && echo "OK: every library of $(basename "$binary") comes from: $listed $base"
exit $status
