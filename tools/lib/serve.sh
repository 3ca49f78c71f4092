# Sourced by tools/*.sh.

# Builds the default bundle into bundles/ (as scripts/run_server.sh does) when there is none.
ensure_default_bundle() {
  if ! ls bundles/*/manifest.json >/dev/null 2>&1; then
    /usr/bin/python3 tools/make_bundle.py --input=data/online-retail-ii/online_retail_ii.csv.gz \
      --out_root=bundles >&2
  fi
}

# Processes started here; an EXIT trap stops them.
_serve_pids=()
trap 'kill -TERM "${_serve_pids[@]}" 2>/dev/null || true' EXIT

# _wait_for_port PID LOG: waits until LOG says "... port N," and sets $port (exits if PID dies).
_wait_for_port() {
  port=""
  for _ in $(seq 1 600); do
    port=$(sed -n 's/^[^,]* on port \([0-9]*\),.*/\1/p' "$2")
    [[ -n $port ]] && return 0
    kill -0 "$1" 2>/dev/null || { cat "$2" >&2; exit 1; }
    sleep 0.2
  done
  echo "error: the server did not start" >&2
  exit 1
}

# start_server ARGS... starts build/server/recsys_server on a free loopback port (plaintext, no
# metrics endpoint) with ARGS, waits until it serves, and sets $server (its pid) and $port.
start_server() {
  local log
  log=$(mktemp)
  ./build/server/recsys_server --address=127.0.0.1:0 --plaintext --metrics_port=-1 "$@" \
    2>"$log" &
  server=$!
  _serve_pids+=("$server")
  _wait_for_port "$server" "$log"
}

# stop_server PID: stops a server started above and waits for it.
stop_server() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# start_baseline ARGS... starts the Python baseline (tools/baseline_server.py) likewise and sets
# $baseline and $baseline_port.
start_baseline() {
  local log
  log=$(mktemp)
  /usr/bin/python3 tools/baseline_server.py --port=0 "$@" >"$log" 2>&1 &
  baseline=$!
  _serve_pids+=("$baseline")
  _wait_for_port "$baseline" "$log"
  baseline_port=$port
}
