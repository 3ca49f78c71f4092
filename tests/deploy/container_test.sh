#!/usr/bin/env bash
# The container image for real: builds docker/Dockerfile with podman (docker/podman.sh: a
# registry-free debian:12 base, cached; podman's layer cache), twice: with the default bundle
# baked in, and with BUNDLE=none. Checks that the runtime image adds to its base only
# docker/runtime-packages.txt's packages and what they depend on, and runs as 10001:10001.
# Then, for each image: runs it read-only, as the image's own user, with --init, its ports
# mapped to the host's loopback; waits for grpc.health.v1 SERVING on recsys.v1.Recommender;
# makes a Recommend call and checks a ranked, attributed answer; reads /metrics; checks the
# server process's uid on the host; sends SIGTERM and expects exit 0 within the shutdown grace.
# The baked image runs its own CMD; the other gets a bundle built here, mounted read-only.
#
#   tests/deploy/container_test.sh ROOT BUILD_DIR
#
# Exit 77 (skipped) when not root. CTest label `container`: `ctest -LE container` skips it.
set -euo pipefail
root=$(realpath "$1")
build=$(realpath "$2")
python=/usr/bin/python3
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: needs root (rootful podman, mmdebstrap --mode=root)"
  exit 77
fi
for tool in podman mmdebstrap runc catatonit curl; do
  command -v $tool >/dev/null || { echo "FAIL: $tool not installed (scripts/deps.sh)"; exit 1; }
done

image=localhost/recsys-server:test
image_mounted=localhost/recsys-server:test-nobundle
grace=10  # the server's default --shutdown_grace
work=$(mktemp -d)
chmod 755 "$work"  # the container's user reads the mounted bundle
containers=()
cleanup() {
  for c in "${containers[@]}"; do podman rm -f "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}
mib() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

# --- Build (both images share every layer up to the bundle step).
start=$SECONDS
"$root/docker/podman.sh" build "$image" >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log"; fail "podman build"; }
echo "built $image in $((SECONDS - start)) s"
start=$SECONDS
"$root/docker/podman.sh" build "$image_mounted" --build-arg BUNDLE=none >"$work/build2.log" 2>&1 ||
  { tail -40 "$work/build2.log"; fail "podman build BUNDLE=none"; }
echo "built $image_mounted in $((SECONDS - start)) s"
base=docker.io/library/debian:12-slim
echo "sizes: $base $(mib $base), $image $(mib $image), $image_mounted $(mib $image_mounted)"

# --- The image's user, and its packages against its base's.
user=$(podman image inspect --format '{{.Config.User}}' "$image")
[[ $user == 10001:10001 ]] || fail "image user is '$user', expected 10001:10001"
packages() {
  "$root/docker/podman.sh" run --rm --network=none --user=0 --entrypoint=dpkg-query "$1" \
    -W -f='${Package}\t${Provides}\t${Depends}, ${Pre-Depends}\n'
}
packages "$base" >"$work/base.tsv" || fail "dpkg-query in $base"
packages "$image" >"$work/image.tsv" || fail "dpkg-query in $image"
"$python" - "$root/docker/runtime-packages.txt" "$work/base.tsv" "$work/image.tsv" <<'EOF' ||
import re, sys
listed = [l.split("#")[0].strip() for l in open(sys.argv[1])]
listed = [p for p in listed if p]
def read(path):
    pkgs = {}
    for line in open(path):
        name, provides, depends = line.rstrip("\n").split("\t")
        pkgs[name] = (provides, depends)
    return pkgs
base, image = read(sys.argv[2]), read(sys.argv[3])
# Names a package answers to: its own and its Provides.
answers = {}
for name, (provides, _) in image.items():
    answers.setdefault(name, set()).add(name)
    for p in filter(None, (x.strip() for x in provides.split(","))):
        answers.setdefault(re.split(r"[ (:]", p)[0], set()).add(name)
def deps(name):
    out = set()
    for clause in filter(None, (c.strip() for c in image[name][1].split(","))):
        for alt in clause.split("|"):
            dep = re.split(r"[ (:]", alt.strip())[0]
            out |= answers.get(dep, set())
    return out
status = 0
missing = [p for p in listed if p not in image]
if missing:
    print("FAIL: listed but not installed:", " ".join(missing)); status = 1
closure, todo = set(), [p for p in listed if p in image]
while todo:
    p = todo.pop()
    if p not in closure:
        closure.add(p); todo.extend(deps(p))
added = sorted(set(image) - set(base))
removed = sorted(set(base) - set(image))
extra = [p for p in added if p not in closure]
tools = [p for p in added if re.match(r"(gcc|g\+\+|cpp|clang|llvm|cmake|ninja|make$|python|perl$|.*-dev$)", p)]
if extra:
    print("FAIL: added but not listed in runtime-packages.txt nor a dependency:", " ".join(extra)); status = 1
if tools:
    print("FAIL: build tools in the runtime image:", " ".join(tools)); status = 1
if removed:
    print("FAIL: packages of the base missing:", " ".join(removed)); status = 1
if status == 0:
    print(f"packages: the runtime image adds {len(added)} packages to its base's {len(base)}: "
          f"the {len(listed)} listed and their dependencies")
sys.exit(status)
EOF
  fail "runtime image packages"

# --- Running it.
free_port() {
  "$python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}
# health PORT: waits up to 60 s for grpc.health.v1.Health/Check of recsys.v1.Recommender to
# say SERVING (a raw-bytes call: HealthCheckRequest{service=1}, HealthCheckResponse{status=1}).
health() {
  "$python" - "127.0.0.1:$1" <<'EOF'
import sys, time, grpc
service = b"recsys.v1.Recommender"
request = b"\x0a" + bytes([len(service)]) + service
names = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
check = grpc.insecure_channel(sys.argv[1]).unary_unary("/grpc.health.v1.Health/Check")
last = "no answer"
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        response = check(request, timeout=2)
        status = response[1] if response[:1] == b"\x08" else 0
        last = names.get(status, str(status))
        if status == 1:
            print(f"health: {sys.argv[1]} recsys.v1.Recommender SERVING")
            sys.exit(0)
    except grpc.RpcError as e:
        last = f"{e.code().name}: {e.details()}"
    time.sleep(0.5)
print(f"health: not SERVING after 60 s ({last})")
sys.exit(1)
EOF
}

# scenario NAME IMAGE EXPECTED_BUNDLE_VERSION(or "") RUN_ARGS... -- SERVER_ARGS...
scenario() {
  local name=$1 img=$2 version=$3
  shift 3
  local run_args=() server_args=()
  while [[ $1 != -- ]]; do run_args+=("$1"); shift; done
  shift
  server_args=("$@")
  local c=recsys-container-test-$name-$$
  containers+=("$c")
  echo "--- $name: $img"
  "$root/docker/podman.sh" run -d --name "$c" --read-only "${run_args[@]}" "$img" "${server_args[@]}" \
    >/dev/null || fail "$name: podman run"
  health "$grpc_port" || { podman logs "$c" | tail -20; fail "$name: not SERVING"; }

  echo '{"history": [{"itemId": "85123A"}, {"itemId": "22423"}], "topK": 5}' |
    "$build/tools/recsys_query" --address="127.0.0.1:$grpc_port" --method=Recommend \
      >"$work/$name.json" || { podman logs "$c" | tail -20; fail "$name: Recommend"; }
  "$python" - "$work/$name.json" "$version" <<'EOF' || fail "$name: Recommend answer"
import json, sys
r = json.load(open(sys.argv[1]))
items = r.get("items", [])
assert len(items) == 5, f"{len(items)} items, expected 5"
assert [i.get("rank") for i in items] == [1, 2, 3, 4, 5], [i.get("rank") for i in items]
scores = [i["score"] for i in items]
assert scores == sorted(scores, reverse=True), scores
assert len({i["itemId"] for i in items}) == 5
for i in items:
    n = len(i.get("attributions", [])) + sum(len(s.get("attributions", [])) for s in i.get("sources", []))
    assert n > 0, f"item {i['itemId']} has no attributions"
    assert i.get("reason"), f"item {i['itemId']} has no reason"
meta = r["metadata"]
assert meta.get("attributionMethod", "") not in ("", "ATTRIBUTION_METHOD_NONE"), meta
version = meta.get("bundleVersion", "")
assert version and (not sys.argv[2] or version == sys.argv[2]), f"bundle version '{version}'"
print(f"recommend: 5 ranked items from bundle {version}, {meta['attributionMethod']}, "
      f"top {items[0]['itemId']} ({items[0]['score']:.4f}): {items[0]['reason']}")
EOF

  curl -sf "http://127.0.0.1:$metrics_port/metrics" >"$work/$name.metrics" || fail "$name: no /metrics"
  grep -E '^recsys_requests_total\{.*method="Recommend"' "$work/$name.metrics" | grep -q 'code="OK".* 1$' ||
    { grep '^recsys_requests_total' "$work/$name.metrics"; fail "$name: no Recommend OK count of 1 in /metrics"; }
  echo "metrics: $(grep -c '^recsys_' "$work/$name.metrics") recsys_ samples, Recommend OK 1"

  # The server process, seen from the host: catatonit (--init) is PID 1, the server its child.
  [[ $(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$c") == true ]] ||
    fail "$name: root file system not read-only"
  if podman exec "$c" sh -c 'echo x >/bundles/x' 2>/dev/null; then fail "$name: /bundles writable"; fi
  local init server uid
  init=$(podman inspect --format '{{.State.Pid}}' "$c")
  server=$(pgrep -P "$init" | head -1)
  [[ -n $server && $(readlink "/proc/$server/exe") == */recsys_server ]] ||
    fail "$name: no recsys_server child of the init process $init"
  uid=$(awk '/^Uid:/ {print $2, $3, $4, $5} /^Gid:/ {print $2, $3, $4, $5}' "/proc/$server/status" | xargs)
  [[ $uid == "10001 10001 10001 10001 10001 10001 10001 10001" ]] ||
    fail "$name: server runs with uid/gid $uid, expected 10001"
  echo "process: recsys_server (host pid $server) runs as uid 10001 gid 10001, read-only root"

  local t0 code elapsed
  t0=$(date +%s.%N)
  podman kill --signal=TERM "$c" >/dev/null
  code=$(timeout $((grace + 20)) podman wait "$c") || fail "$name: still running $((grace + 20)) s after SIGTERM"
  elapsed=$("$python" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
  podman logs "$c" 2>&1 | grep -q "signal 15, shutting down" ||
    { podman logs "$c" | tail; fail "$name: the server did not see SIGTERM"; }
  [[ $code == 0 ]] || { podman logs "$c" | tail; fail "$name: exit status $code after SIGTERM"; }
  "$python" -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$elapsed" "$grace" ||
    fail "$name: exit took $elapsed s, over the ${grace} s grace"
  echo "shutdown: SIGTERM -> exit 0 in $elapsed s (grace ${grace} s)"
}

# Baked bundle, the image's own CMD (0.0.0.0:50051, metrics 9464), ports mapped to loopback.
grpc_port=$(free_port)
metrics_port=$(free_port)
scenario baked "$image" "" -p "127.0.0.1:$grpc_port:50051" -p "127.0.0.1:$metrics_port:9464" --

# A bundle built here, mounted read-only.
"$build/tools/recsys_build_bundle" \
  --input="$root/data/online-retail-ii/online_retail_ii_small.csv.gz" \
  --out_root="$work/bundles" --version=v1 >/dev/null 2>&1 || fail "bundle build"
chmod -R a+rX "$work/bundles"
grpc_port=$(free_port)
metrics_port=$(free_port)
scenario mounted "$image_mounted" v1 -v "$work/bundles:/bundles:ro" \
  -p "127.0.0.1:$grpc_port:50051" -p "127.0.0.1:$metrics_port:9464" --
echo "OK"
