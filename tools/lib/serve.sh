# Sourced by tools/*.sh.

# Builds the default bundle into bundles/ (as scripts/run_server.sh does) when there is none.
ensure_default_bundle() {
  if ! ls bundles/*/manifest.json >/dev/null 2>&1; then
    /usr/bin/python3 tools/make_bundle.py --input=data/online-retail-ii/online_retail_ii.csv.gz \
      --out_root=bundles >&2
  fi
}

# start_server ARGS... starts build/server/recsys_server on a free
# loopback port (plaintext, no metrics endpoint) with ARGS, waits until it serves, and sets
# $server (its pid) and $port; an EXIT trap stops it.
start_server() {
  server_log=$(mktemp)
  ./build/server/recsys_server --address=127.0.0.1:0 --plaintext --metrics_port=-1 "$@" \
    2>"$server_log" &
  server=$!
  trap 'kill -TERM $server 2>/dev/null || true; rm -f "$server_log"' EXIT
  port=""
  for _ in $(seq 1 600); do
    port=$(sed -n 's/.* on port \([0-9]*\),.*/\1/p' "$server_log")
    [[ -n $port ]] && return 0
    kill -0 "$server" 2>/dev/null || { cat "$server_log" >&2; exit 1; }
    sleep 0.2
  done
  echo "error: the server did not start" >&2
  exit 1
}
