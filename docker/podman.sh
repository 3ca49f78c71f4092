#!/usr/bin/env bash
# Builds and runs docker/Dockerfile with podman on a machine without a Docker engine and
# without a reachable container registry, only Debian's package repository (see docker/README.md).
# Run as root from anywhere in the repository:
#
#   docker/podman.sh base                         # make and import debian:12 (cached)
#   docker/podman.sh build [TAG] [BUILD_ARGS...]  # base, then the image (default recsys-server:latest)
#   docker/podman.sh run [RUN_ARGS...] IMAGE [SERVER_ARGS...]
#
# base: when no docker.io/library/debian:12 image is in podman's storage, makes one with
# mmdebstrap (minbase variant, merged /usr, bookworm from this machine's own apt sources),
# imports it as docker.io/library/debian:12 and tags it debian:12-slim as well. The tarball is
# kept in $RECSYS_CONTAINER_CACHE (/var/cache/recsys-container) under a key made of the apt
# sources, the mmdebstrap version and its arguments, and remade after
# $RECSYS_BASE_MAX_AGE_DAYS (30) days; an image imported from an older key is replaced. A
# debian:12 that this script did not make (pulled from Docker Hub, say) is used as it is.
#
# build: podman build --pull=never (nothing contacts a registry) --network=host (RUN steps
# reach the apt repository) --isolation=chroot (RUN steps need no OCI runtime, so no cgroups).
# The build stage is tagged TAG-build as well, which keeps podman's layer cache of it (the
# scripts/deps.sh layer above all) from being pruned; the images the tags pointed to before
# are removed, with the layers only they used.
#
# run: podman run with the flags this host needs: --runtime=runc (crun refuses the hybrid
# cgroup layout: "cgroups in hybrid mode not supported"), rlimits no higher than the host's own
# hard limits (podman's defaults are refused), and --init (catatonit as PID 1 passes SIGTERM
# to the server and returns its exit status).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${RECSYS_CONTAINER_CACHE:-/var/cache/recsys-container}
max_age_days=${RECSYS_BASE_MAX_AGE_DAYS:-30}
base_image=docker.io/library/debian:12
slim_image=docker.io/library/debian:12-slim
key_label=org.recsys.base-key

log() { echo "podman.sh: $*" >&2; }
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null ||
      { log "$tool is not installed (scripts/deps.sh installs it)"; exit 1; }
  done
}

# The host's enabled apt sources: what mmdebstrap puts in the base, and what apt-get in the
# build reaches.
apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -s $f ]] && echo "$f"
  done
  return 0
}

make_base() {
  need podman mmdebstrap flock sha256sum
  [[ $(id -u) -eq 0 ]] || { log "run as root (mmdebstrap --mode=root, rootful podman)"; exit 1; }
  local sources=() hooks=/usr/share/mmdebstrap/hooks/merged-usr
  mapfile -t sources < <(apt_sources)
  [[ ${#sources[@]} -gt 0 ]] || { log "no apt sources in /etc/apt"; exit 1; }
  local args=(--variant=minbase --mode=root --hook-dir="$hooks" bookworm)
  local key
  key=$( { cat "${sources[@]}"; mmdebstrap --version; echo "${args[*]}"; } | sha256sum | cut -c1-16)
  local tarball=$cache/debian-12-minbase-$key.tar

  mkdir -p "$cache"
  exec 9>"$cache/lock"
  flock 9
  local current=""
  if podman image exists "$base_image"; then
    current=$(podman image inspect --format "{{index .Labels \"$key_label\"}}" "$base_image")
    if [[ -z $current || $current == "<no value>" ]]; then
      log "using $base_image as it is (not made by this script)"
      podman image exists "$slim_image" || podman tag "$base_image" "$slim_image"
      return 0
    fi
  fi
  if [[ -f $tarball && -n $(find "$tarball" -mtime +"$max_age_days") ]]; then
    log "$tarball is over $max_age_days days old: making it again"
    rm -f "$tarball"
  fi
  if [[ $current == "$key" && -f $tarball ]] && podman image exists "$slim_image"; then
    log "base $base_image is current (key $key)"
    return 0
  fi
  if [[ ! -f $tarball ]]; then
    log "making the base with mmdebstrap ${args[*]} from ${sources[*]}"
    local start=$SECONDS
    rm -f "$cache"/debian-12-minbase-*.tar
    mmdebstrap "${args[@]}" "$tarball.tmp.tar" "${sources[@]}" >"$cache/mmdebstrap.log" 2>&1 ||
      { tail -30 "$cache/mmdebstrap.log" >&2; log "mmdebstrap failed ($cache/mmdebstrap.log)"; exit 1; }
    mv "$tarball.tmp.tar" "$tarball"
    log "base tarball made in $((SECONDS - start)) s: $(du -h "$tarball" | cut -f1)"
  fi
  local old
  old=$(podman image inspect --format '{{.Id}}' "$base_image" 2>/dev/null || true)
  podman import --quiet --change 'CMD ["bash"]' --change "LABEL $key_label=$key" \
    "$tarball" "$base_image" >/dev/null
  podman tag "$base_image" "$slim_image"
  if [[ -n $old ]] && [[ $old != $(podman image inspect --format '{{.Id}}' "$base_image") ]]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
  log "imported $base_image and $slim_image (key $key)"
}

build() {
  local tag=${1:-localhost/recsys-server:latest}
  [[ $# -gt 0 ]] && shift
  [[ $tag == */* ]] || tag=localhost/$tag
  make_base
  local common=(--pull=never --network=host --isolation=chroot --layers -f "$root/docker/Dockerfile")
  local old_image old_build
  old_image=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  old_build=$(podman image inspect --format '{{.Id}}' "$tag-build" 2>/dev/null || true)
  local start=$SECONDS
  podman build "${common[@]}" --target=build -t "$tag-build" "$@" "$root"
  podman build "${common[@]}" -t "$tag" "$@" "$root"
  log "built $tag in $((SECONDS - start)) s"
  local id
  for id in "$old_image" "$old_build"; do
    [[ -n $id ]] || continue
    if ! podman image inspect --format '{{.RepoTags}}' "$id" 2>/dev/null | grep -q '/'; then
      podman rmi "$id" >/dev/null 2>&1 || true
    fi
  done
}

run() {
  need podman
  local nofile nproc
  nofile=$(ulimit -Hn)
  [[ $nofile == unlimited ]] && nofile=1048576
  nproc=$(ulimit -Hu)
  [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
  exec podman run --runtime=runc --init \
    --ulimit nofile="$nofile:$nofile" --ulimit nproc="$nproc:$nproc" "$@"
}

case "${1:-}" in
  base) make_base ;;
  build) shift; build "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
