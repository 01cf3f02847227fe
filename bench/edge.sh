#!/usr/bin/env bash
# Edge benchmark: Rampart's edge against nginx, HAProxy and Caddy as reverse
# proxies in front of the same trivial upstream (nginx returning a 19-byte
# body), in one run on this machine, over loopback. Every proxy gets one
# worker thread or process (TOKIO_WORKER_THREADS=1 for Rampart, GOMAXPROCS=1
# for Caddy), access logs off, and Rampart's shields on with limits too high
# to trigger. Load: wrk -t1 -c32 -d${DURATION}s.
#
# Rows: direct to the upstream; plain-HTTP proxying (Rampart serves only
# redirects on plain HTTP, by design, so its HTTPS figure stands in);
# HTTPS with keep-alive; HTTPS with a new TLS connection per request;
# Rampart with its access log on; p99 latency at half of each proxy's
# keep-alive saturation (wrk pacing each connection with delay()); peak RSS
# of each proxy holding 10,000 idle keep-alive HTTPS connections (a fresh
# process per sample, median of three samples).
#
# HAProxy derives its file-descriptor needs from maxconn (two per
# connection); with this machine's hard limit of 20,000 descriptors it can
# hold at most about 9,900 connections, so its idle row says how many it
# took.
#
# Ratios are Rampart's figure divided by the other's (above 1.0 is better for
# Rampart; for CPU per request, latency and memory, the other's divided by
# Rampart's). CPU per request is each proxy process's user + system time
# during its run divided by the requests it served.
#
# Throughput rows are measured in ROUNDS rounds (default 3); each round runs
# every proxy once, one after another, so a slow spell of the machine falls
# on all of them alike, and each figure printed is the median of its rounds.
#
# Usage: bench/edge.sh [DURATION_SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-8}"
ROUNDS="${2:-3}"
work=$(mktemp -d /tmp/rampart-bench-edge.XXXXXX)
. bench/edge-common.sh
need wrk wrk; need nginx nginx; need haproxy haproxy; need caddy caddy; need openssl openssl; need bc bc
ulimit -n "$(ulimit -Hn)"
ports_free bench/edge.sh 19100 19201 19202 19301 19302 19401 19402 19501 19502 19601 19602

cargo build --profile dist --locked -q -p rampart
rampart="$PWD/target/dist/rampart"

self_signed
cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem"
upstream_conf 19100 > "$work/upstream.conf"
cat > "$work/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 30000; }
http { access_log off;
  upstream up { server 127.0.0.1:19100; keepalive 128; }
  server { listen 127.0.0.1:19201 backlog=4096;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:19202 ssl backlog=4096; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; keepalive_requests 1000000; keepalive_timeout 120s;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 9900
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 60s
  http-reuse always
frontend fe_http
  bind 127.0.0.1:19301
  default_backend be
frontend fe_https
  bind 127.0.0.1:19302 ssl crt $work/combined.pem alpn http/1.1
  default_backend be
backend be
  server s1 127.0.0.1:19100
CONF
cat > "$work/Caddyfile" <<CONF
{
  auto_https off
  admin off
}
http://localhost:19401 {
  reverse_proxy 127.0.0.1:19100
}
https://localhost:19402 {
  tls $work/cert.pem $work/key.pem
  reverse_proxy 127.0.0.1:19100
}
CONF
edge_conf 19500 19100 "" > "$work/edge.toml"
edge_conf 19600 19100 "$work/access.jsonl" > "$work/edge-log.toml"

nginx -c "$work/upstream.conf" & pids+=($!)
nginx -c "$work/nginx.conf" & pids+=($!); nginx_pid=$!; nginx_master=$!
haproxy -f "$work/haproxy.cfg" -q & pids+=($!); haproxy_pid=$!
GOMAXPROCS=1 caddy run --config "$work/Caddyfile" --adapter caddyfile >/dev/null 2>&1 & pids+=($!); caddy_pid=$!
TOKIO_WORKER_THREADS=1 RUST_LOG=warn "$rampart" edge --config "$work/edge.toml" >/dev/null & pids+=($!); rampart_pid=$!
TOKIO_WORKER_THREADS=1 RUST_LOG=warn "$rampart" edge --config "$work/edge-log.toml" >/dev/null & pids+=($!); rampart_log_pid=$!
for port in 19100 19201 19202 19301 19302 19401 19402 19502 19602; do wait_port "$port"; done
sleep 1
# nginx serves from a worker process, not the master started above.
nginx_pid=$(pgrep -P "$nginx_pid" | head -1)

rps() { # URL [wrk args...]
  local url=$1; shift
  wrk -t1 -c32 -d"${DURATION}s" "$@" "$url" 2>/dev/null | awk '/Requests\/sec/ {print int($2)}'
}
ratio() { echo "scale=2; $1 / $2" | bc -l; }
# CPU time (user + system, all threads) a process has used, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

declare -A R C RR CR
# Runs wrk against URL; RR[KEY] gathers req/s and CR[KEY] the CPU
# microseconds PID spent per request meanwhile (a measure of the proxy's own
# cost that does not depend on how the two cores were shared with wrk and
# the upstream), one figure per round.
measure() { # KEY PID URL [wrk args...]
  local key=$1 pid=$2 url=$3 t0 t1 r; shift 3
  t0=$(ticks "$pid")
  r=$(rps "$url" "$@")
  t1=$(ticks "$pid")
  RR[$key]+="$r "
  CR[$key]+="$(echo "scale=1; ($t1 - $t0) * 1000000 / $TCK / ($r * $DURATION)" | bc -l) "
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
R[direct]=$(rps http://127.0.0.1:19100/)
for _ in $(seq "$ROUNDS"); do
  measure nginx_http "$nginx_pid" http://127.0.0.1:19201/
  measure haproxy_http "$haproxy_pid" http://127.0.0.1:19301/
  measure caddy_http "$caddy_pid" http://localhost:19401/
  measure nginx_https "$nginx_pid" https://localhost:19202/
  measure haproxy_https "$haproxy_pid" https://localhost:19302/
  measure caddy_https "$caddy_pid" https://localhost:19402/
  measure rampart_https "$rampart_pid" https://localhost:19502/
  measure rampart_log "$rampart_log_pid" https://localhost:19602/
  measure nginx_new "$nginx_pid" https://localhost:19202/ -H "Connection: close"
  measure haproxy_new "$haproxy_pid" https://localhost:19302/ -H "Connection: close"
  measure caddy_new "$caddy_pid" https://localhost:19402/ -H "Connection: close"
  measure rampart_new "$rampart_pid" https://localhost:19502/ -H "Connection: close"
done
for key in "${!RR[@]}"; do
  R[$key]=$(echo "${RR[$key]}" | median | awk '{printf "%d", $1 + 0.5}')
  C[$key]=$(echo "${CR[$key]}" | median)
done

# p99 at half of keep-alive saturation: each connection waits 2 ms between
# requests, so N connections offer at most N * 500 requests per second.
cat > "$work/pace.lua" <<'LUA'
function delay() return 2 end
LUA
p99() { # URL SATURATION
  local conns=$(( $2 / 1000 )); [ "$conns" -lt 1 ] && conns=1
  wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$work/pace.lua" "$1" 2>/dev/null \
    | awk '/^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}'
}
P_rampart=$(p99 https://localhost:19502/ "${R[rampart_https]}")
P_nginx=$(p99 https://localhost:19202/ "${R[nginx_https]}")
P_haproxy=$(p99 https://localhost:19302/ "${R[haproxy_https]}")

# Peak RSS holding 10,000 idle keep-alive HTTPS connections.
cat > "$work/idle.py" <<'PY'
import asyncio, ssl, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
async def one(sem):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        w.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); await w.drain()
        await r.readuntil(b"\r\n\r\n"); await r.readexactly(19)
        return w
async def main():
    sem = asyncio.Semaphore(200)
    writers = await asyncio.gather(*(one(sem) for _ in range(count)), return_exceptions=True)
    ok = sum(1 for w in writers if not isinstance(w, Exception))
    print(ok, flush=True)
    await asyncio.sleep(3)
asyncio.run(main())
PY
idle_rss() { # PORT PID -> "connections peak_kib"
  local ok; ok=$(python3 "$work/idle.py" "$1" 10000 | head -1)
  echo "$ok $(awk '/VmHWM/ {print $2}' /proc/"$2"/status)"
}
# Each idle sample gets a fresh process, so its peak is the idle
# connections' alone (not the throughput rows' that ran before), and the row
# is the median of IDLE_SAMPLES samples: the peak of the same build moves by
# a quarter from one process to the next.
IDLE_SAMPLES=3
kill "$nginx_master" "$haproxy_pid" "$rampart_pid" 2>/dev/null || true
for p in "$nginx_master" "$haproxy_pid" "$rampart_pid"; do wait "$p" 2>/dev/null || true; done
idle_sample() { # NAME; sets conns and kib
  local pid port worker
  case $1 in
    nginx) nginx -c "$work/nginx.conf" 2>/dev/null & pid=$!; port=19202 ;;
    haproxy) haproxy -f "$work/haproxy.cfg" -q & pid=$!; port=19302 ;;
    rampart) TOKIO_WORKER_THREADS=1 RUST_LOG=warn "$rampart" edge --config "$work/edge.toml" >/dev/null & pid=$!; port=19502 ;;
  esac
  pids+=("$pid")
  wait_port "$port"; sleep 0.5
  worker=$pid
  if [ "$1" = nginx ]; then worker=$(pgrep -P "$pid" | head -1); fi
  read -r conns kib < <(idle_rss "$port" "$worker")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
declare -A I M
for _ in $(seq "$IDLE_SAMPLES"); do
  for p in rampart nginx haproxy; do
    idle_sample "$p"
    I[$p]+="$conns "; M[$p]+="$kib "
  done
done
for p in rampart nginx haproxy; do
  echo "${M[$p]}" > "$work/idle-$p.samples"
  M[$p]=$(echo "${M[$p]}" | median | awk '{printf "%d", $1}')
  I[$p]=$(echo "${I[$p]}" | median | awk '{printf "%d", $1}')
done

echo "edge benchmark: $(nproc) cores, wrk -t1 -c32 -d${DURATION}s, median of $ROUNDS rounds, one worker per proxy, 19-byte upstream body"
echo "nginx $(nginx -v 2>&1 | cut -d/ -f2), HAProxy $(haproxy -v | head -1 | awk '{print $3}'), Caddy $(caddy version | awk '{print $1}')"
printf '\n%-44s %10s %14s\n' "row" "req/s" "CPU us/req"
printf '%-44s %10s %14s\n' "direct to the upstream" "${R[direct]}" "-"
for p in nginx haproxy caddy; do printf '%-44s %10s %14s\n' "$p, plain HTTP" "${R[${p}_http]}" "${C[${p}_http]}"; done
for p in nginx haproxy caddy rampart; do printf '%-44s %10s %14s\n' "$p, HTTPS keep-alive" "${R[${p}_https]}" "${C[${p}_https]}"; done
for p in nginx haproxy caddy rampart; do printf '%-44s %10s %14s\n' "$p, HTTPS new connection per request" "${R[${p}_new]}" "${C[${p}_new]}"; done
printf '%-44s %10s %14s\n' "rampart, HTTPS keep-alive, access log on" "${R[rampart_log]}" "${C[rampart_log]}"
printf '\n%-44s %10s %10s %10s\n' "Rampart's ratio to" "nginx" "HAProxy" "Caddy"
printf '%-44s %10s %10s %10s\n' "plain HTTP (Rampart over HTTPS)" "$(ratio "${R[rampart_https]}" "${R[nginx_http]}")" "$(ratio "${R[rampart_https]}" "${R[haproxy_http]}")" "$(ratio "${R[rampart_https]}" "${R[caddy_http]}")"
printf '%-44s %10s %10s %10s\n' "HTTPS keep-alive" "$(ratio "${R[rampart_https]}" "${R[nginx_https]}")" "$(ratio "${R[rampart_https]}" "${R[haproxy_https]}")" "$(ratio "${R[rampart_https]}" "${R[caddy_https]}")"
printf '%-44s %10s %10s %10s\n' "HTTPS new connection per request" "$(ratio "${R[rampart_new]}" "${R[nginx_new]}")" "$(ratio "${R[rampart_new]}" "${R[haproxy_new]}")" "$(ratio "${R[rampart_new]}" "${R[caddy_new]}")"
printf '%-44s %10s %10s %10s\n' "CPU per request, HTTPS keep-alive" "$(ratio "${C[nginx_https]}" "${C[rampart_https]}")" "$(ratio "${C[haproxy_https]}" "${C[rampart_https]}")" "$(ratio "${C[caddy_https]}" "${C[rampart_https]}")"
printf '%-44s %10s %10s %10s\n' "CPU per request, new connection" "$(ratio "${C[nginx_new]}" "${C[rampart_new]}")" "$(ratio "${C[haproxy_new]}" "${C[rampart_new]}")" "$(ratio "${C[caddy_new]}" "${C[rampart_new]}")"
printf '\n%-44s %10s %10s %10s\n' "" "rampart" "nginx" "HAProxy"
printf '%-44s %9sms %9sms %9sms\n' "p99 at half of keep-alive saturation" "$P_rampart" "$P_nginx" "$P_haproxy"
printf '%-44s %8sMiB %8sMiB %8sMiB\n' "peak RSS, 10,000 idle HTTPS connections" "$((M[rampart] / 1024))" "$((M[nginx] / 1024))" "$((M[haproxy] / 1024))"
printf '%-44s %10s %10s %10s\n' "idle connections established" "${I[rampart]}" "${I[nginx]}" "${I[haproxy]}"
printf '\n%s\n' "each round, HTTPS keep-alive req/s and CPU us/req:"
for p in nginx haproxy caddy rampart; do printf '  %-10s %s / %s\n' "$p" "${RR[${p}_https]}" "${CR[${p}_https]}"; done
printf '%s\n' "each sample, peak RSS (KiB) with 10,000 idle connections, fresh process each:"
for p in rampart nginx haproxy; do printf '  %-10s %s\n' "$p" "$(cat "$work/idle-$p.samples")"; done
