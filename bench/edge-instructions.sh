#!/usr/bin/env bash
# User-space instructions the edge spends per HTTPS keep-alive request,
# counted by callgrind. Unlike req/s or CPU time on a shared 2-core machine,
# the count repeats to within 0.1% from run to run, so two builds of the
# request path can be compared with one run each (check out one, run, check
# out the other, run). It leaves out the kernel, which is most of the edge's
# time per request: a change that saves instructions here saves a smaller
# share of wall-clock CPU.
#
# Setup as in bench/edge.sh: nginx returning a 19-byte body as the upstream,
# one edge worker, shields on with limits too high to trigger, access log
# off. Load: h2load over HTTP/1.1, 16 connections, REQUESTS requests after
# a warm-up of 500; counting starts after the warm-up (callgrind_control
# --zero), so TLS handshakes are counted only for the 16 connections.
#
# Usage: bench/edge-instructions.sh [REQUESTS]   (default 4000)
# RAMPART=PATH counts that binary instead of building this checkout, so
# two builds kept side by side can be compared without a rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${1:-4000}"
work=$(mktemp -d /tmp/rampart-bench-instr.XXXXXX)
. bench/edge-common.sh
need nginx nginx; need h2load nghttp2-client; need valgrind valgrind; need openssl openssl
ports_free bench/edge-instructions.sh 19700 19701 19702 19703

if [ -n "${RAMPART:-}" ]; then
  rampart="$RAMPART"
  build="$RAMPART"
else
  cargo build --profile dist --locked -q -p rampart
  rampart="$PWD/target/dist/rampart"
  build=$(git rev-parse --short HEAD)
fi

self_signed
upstream_conf 19703 > "$work/upstream.conf"
edge_conf 19700 19703 "" > "$work/edge.toml"

nginx -c "$work/upstream.conf" & pids+=($!)
TOKIO_WORKER_THREADS=1 RUST_LOG=warn valgrind --tool=callgrind --dump-instr=no \
  --callgrind-out-file="$work/callgrind.%p" "$rampart" edge --config "$work/edge.toml" \
  >"$work/edge.log" 2>&1 & pids+=($!); edge_pid=$!
wait_port 19702 60
sleep 1

h2load --h1 -n 500 -c 16 https://localhost:19702/ >/dev/null 2>&1
callgrind_control --zero "$edge_pid" >/dev/null 2>&1
h2load --h1 -n "$REQUESTS" -c 16 https://localhost:19702/ >"$work/h2load.txt" 2>&1
callgrind_control --dump "$edge_pid" >/dev/null 2>&1
sleep 1

ok=$(awk '/^requests:/ {print $8}' "$work/h2load.txt")
if [ "$ok" != "$REQUESTS" ]; then
  echo "bench/edge-instructions.sh: only $ok of $REQUESTS requests succeeded" >&2
  cat "$work/h2load.txt" >&2
  exit 1
fi
total=$(cat "$work"/callgrind.*.1 | awk '/^totals:/ {s += $2} END {print s}')
echo "edge, HTTPS keep-alive over HTTP/1.1: $((total / REQUESTS)) user-space instructions per request ($REQUESTS requests, $build)"
