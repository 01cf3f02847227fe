#!/usr/bin/env bash
# Watch benchmark: what the watch costs the edge, and how fast its
# detectors judge.
#
# Rows: HTTPS keep-alive requests per second through the platform's edge
# (`rampart up`, one deployed app of two hello replicas) with the watch on
# (every request becomes an access event the detectors read) and with it
# off (`[watch] enabled = false`: no event is even built), in ROUNDS
# alternating rounds, medians printed, and their ratio (the target is
# >= 0.95); and the events per second the per-client detectors sustain on
# one core, from crates/watch/examples/throughput.rs. Load: wrk -t1 -c32
# for DURATION seconds, with TOKIO_WORKER_THREADS=1 for the platform.
#
# Usage: bench/watch.sh [DURATION_SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-8}"
ROUNDS="${2:-3}"
work=$(mktemp -d /tmp/rampart-bench-watch.XXXXXX)
. bench/edge-common.sh
need wrk wrk; need bc bc
cleanup_apps() {
  docker ps -aq --filter label=rampart.app=benchwatch | xargs -r docker rm -f >/dev/null
  docker network ls -q --filter label=rampart.app=benchwatch | xargs -r docker network rm >/dev/null
}
trap 'cleanup; cleanup_apps' EXIT

cargo build --profile dist --locked -q -p rampart
cargo build --profile dist --locked -q -p rampart-watch --example throughput
bin="$PWD/target/dist/rampart"
hello=$(ls -t target/dist/build/rampart-*/out/hello | head -1)
ctx="$work/ctx"
mkdir -p "$ctx"
cp "$hello" "$ctx/hello"
printf 'FROM scratch\nCOPY hello /hello\nUSER 65534:65534\nENTRYPOINT ["/hello"]\n' > "$ctx/Dockerfile"

# One round: a fresh platform with the watch on or off, the app deployed,
# then wrk; prints requests per second.
round() { # on|off
  local enabled=true; [ "$1" = off ] && enabled=false
  local dir="$work/$1-$RANDOM"
  mkdir -p "$dir"
  cat > "$dir/rampart.toml" <<TOML
[api]
listen = "127.0.0.1:0"
[auth]
require_mfa = false
[edge.listen]
https = "127.0.0.1:0"
http = "127.0.0.1:0"
admin = ""
[edge.limits]
requests_per_second = 1000000
burst = 1000000
[watch]
enabled = $enabled
TOML
  TOKIO_WORKER_THREADS=1 RUST_LOG=warn "$bin" up --data-dir "$dir/data" --config "$dir/rampart.toml" > "$dir/up.log" 2>&1 &
  local server=$!
  pids+=("$server")
  for _ in $(seq 100); do grep -q "API listening" "$dir/up.log" && break; sleep 0.1; done
  local api edge_port
  api=$(grep -o 'API listening on https://[0-9.:]*' "$dir/up.log" | awk '{print $4}')
  edge_port=$(grep -o 'apps are served at https://[0-9.:]*' "$dir/up.log" | awk -F: '{print $NF}')
  (
    export HOME="$dir/home" RAMPART_SERVER="$api" RAMPART_CA="$dir/data/ca.pem"
    RAMPART_TOKEN=$(cat "$dir/data/bootstrap-token")
    export RAMPART_TOKEN
    "$bin" apps create benchwatch >/dev/null
    "$bin" scale benchwatch web=2 >/dev/null
    "$bin" deploy benchwatch --path "$ctx" --json >/dev/null 2>"$dir/deploy.err"
  )
  wrk -t1 -c32 -d"${DURATION}s" -H "Host: benchwatch.localhost" "https://127.0.0.1:$edge_port/" 2>/dev/null \
    | awk '/Requests\/sec/ {print int($2)}'
  kill "$server"; wait "$server" 2>/dev/null || true
  cleanup_apps
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

on="" off=""
for _ in $(seq "$ROUNDS"); do
  off+="$(round off) "
  on+="$(round on) "
done
OFF=$(echo "$off" | median)
ON=$(echo "$on" | median)
EVENTS=$(target/dist/examples/throughput 5000000)

printf '%-58s %12s\n' "row" "figure"
printf '%-58s %12s\n' "edge HTTPS keep-alive, watch off (req/s, median)" "$OFF"
printf '%-58s %12s\n' "edge HTTPS keep-alive, watch on (req/s, median)" "$ON"
printf '%-58s %12s\n' "ratio on / off (target >= 0.95)" "$(echo "scale=3; $ON / $OFF" | bc -l)"
printf '%-58s %s\n' "detectors, one core" "$EVENTS"
echo "rounds: off [$off] on [$on]"
