# Setup shared by bench/edge.sh and bench/edge-instructions.sh, so both
# measure the same upstream and the same edge configuration. Sourced, not
# run: the sourcing script sets `work` (a fresh directory) first.
# shellcheck shell=bash

# Installs a Debian package when its command is missing.
need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }

# Processes added to `pids` are stopped when the script exits.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Stops the script when one of the loopback ports is taken.
ports_free() { # SCRIPT PORT...
  local script=$1 port; shift
  for port in "$@"; do
    if (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      echo "$script: port $port is in use; stop whatever listens there first" >&2
      exit 1
    fi
  done
}

# Waits until a loopback port accepts connections, up to SECONDS (10).
wait_port() { # PORT [SECONDS]
  for _ in $(seq $(( ${2:-10} * 10 ))); do (echo > /dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done
}

# A self-signed certificate for localhost: $work/cert.pem and $work/key.pem.
self_signed() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost 2>/dev/null
}

# The upstream every proxy is measured against: one nginx worker returning a
# 19-byte body, with its access log off.
upstream_conf() { # PORT
  cat <<CONF
worker_processes 1; daemon off; pid $work/upstream.pid; error_log $work/upstream.err warn;
events { worker_connections 20000; }
http { access_log off; default_type text/plain;
  server { listen 127.0.0.1:$1 backlog=4096; location / { return 200 "0123456789abcdefgh\n"; } } }
CONF
}

# Rampart's edge serving localhost with the certificate above in front of
# the upstream, its shields on with limits too high to trigger. Plain HTTP
# on PORT_BASE + 1, HTTPS on PORT_BASE + 2; ACCESS_LOG empty for none.
edge_conf() { # PORT_BASE UPSTREAM_PORT ACCESS_LOG
  cat <<CONF
[listen]
http = "127.0.0.1:$(( $1 + 1 ))"
https = "127.0.0.1:$(( $1 + 2 ))"
admin = ""
[tls]
state_dir = "$work/state-$1"
[limits]
requests_per_second = 100000000
burst = 100000000
connections_per_ip = 1000000
max_connections = 1000000
[log]
access = "$3"
[[site]]
hosts = ["localhost"]
tls = "files"
cert = "$work/cert.pem"
key = "$work/key.pem"
upstreams = ["127.0.0.1:$2"]
health_path = "/"
health_interval_ms = 5000
CONF
}
