#!/usr/bin/env bash
# Deploy benchmark: time from `rampart deploy` starting to the new release
# answering through the edge, for the demo app (examples/hello, two
# replicas) and for the Django example (examples/django: two web replicas,
# a worker, its release phase running `migrate`, a PostgreSQL database), on
# this machine's Docker engine.
#
# Rows: deploys with `--path` (a build context sent and built; the engine's
# build cache makes the steps after the first cheap, as in everyday use) and
# deploys with `--image` (an image the engine has). Each row is the median
# of RUNS deploys; the first build is reported on its own. The clock stops at
# the first HTTPS answer that names the new release, so health checks, the
# edge's table swap and everything before them are inside the figure; the
# old replicas' drain and stop happen after it, as users see it.
#
# There is no external anchor: the figure is absolute, and also given as a
# multiple of a plain `docker run` of the same image until its port answers,
# the floor any container platform pays.
#
# Swarm rows: the same hello deploys with runtime.backend = "swarm" (a
# one-task service per replica on an encrypted overlay, reached through the
# relay; images published to the platform's registry and pulled from it;
# media in moto's S3), on this engine made a single-node Swarm for
# the run when it is not one, beside the floor of a bare
# `docker service create` until its task runs.
#
# Usage: bench/deploy.sh [RUNS]      (SKIP_DJANGO=1 leaves the Django rows out)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-7}"
work=$(mktemp -d /tmp/rampart-bench-deploy.XXXXXX)
# The managed PostgreSQL cluster runs as the postgres user, which must reach
# the data directory.
chmod 755 "$work"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  [ -n "${moto:-}" ] && kill "$moto" 2>/dev/null || true
  wait 2>/dev/null || true
  docker ps -aq --filter label=rampart.app=benchhello | xargs -r docker rm -f >/dev/null
  docker ps -aq --filter name=rampart-bench-floor | xargs -r docker rm -f >/dev/null
  docker ps -aq --filter label=rampart.app=benchdjango | xargs -r docker rm -f >/dev/null
  docker network ls -q --filter label=rampart.app=benchhello | xargs -r docker network rm >/dev/null
  docker network ls -q --filter label=rampart.app=benchdjango | xargs -r docker network rm >/dev/null
  docker service ls -q --filter label=rampart.app=benchswarm | xargs -r docker service rm >/dev/null
  docker service ls -q --filter name=rampart-bench-floor | xargs -r docker service rm >/dev/null
  [ -n "${registry:-}" ] && rm -rf "/etc/docker/certs.d/$registry"
  if [ -n "${swarm_made:-}" ]; then docker swarm leave --force >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

command -v bc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null; }
cargo build --profile dist --quiet -p rampart
bin=target/dist/rampart
hello=$(ls -t target/dist/build/rampart-*/out/hello | head -1)

cat > "$work/rampart.toml" <<TOML
[api]
listen = "127.0.0.1:0"
# The bench acts as the bootstrap owner straight away.
[auth]
require_mfa = false
[edge.listen]
https = "127.0.0.1:0"
http = "127.0.0.1:0"
admin = ""
[postgres]
port = 19700
TOML
scripts/python-base-image
"$bin" up --data-dir "$work/data" --config "$work/rampart.toml" > "$work/up.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "API listening" "$work/up.log" && break; sleep 0.1; done
api=$(grep -o 'API listening on https://[0-9.:]*' "$work/up.log" | awk '{print $4}')
edge_port=$(grep -o 'apps are served at https://[0-9.:]*' "$work/up.log" | awk -F: '{print $NF}')
export HOME="$work/home" RAMPART_SERVER="$api" RAMPART_CA="$work/data/ca.pem"
RAMPART_TOKEN=$(cat "$work/data/bootstrap-token")
export RAMPART_TOKEN

ctx="$work/ctx"
mkdir -p "$ctx"
cp "$hello" "$ctx/hello"
printf 'FROM scratch\nCOPY hello /hello\nUSER 65534:65534\nENTRYPOINT ["/hello"]\n' > "$ctx/Dockerfile"
"$bin" apps create benchhello >/dev/null

now() { date +%s.%N; }
# Runs a deploy of the hello app $app (benchhello, later benchswarm) and
# waits until the edge answers with release $1.
app=benchhello
timed() {
  local want=$1; shift
  local start; start=$(now)
  "$bin" deploy "$app" "$@" --json > /dev/null 2>"$work/deploy.err" &
  local deploy=$!
  until curl -s --cacert "$RAMPART_CA" --resolve "$app.localhost:$edge_port:127.0.0.1" \
      "https://$app.localhost:$edge_port/" 2>/dev/null | grep -q "release $want "; do
    sleep 0.02
  done
  local end; end=$(now)
  wait "$deploy"
  echo "$end - $start" | bc -l
}
# The same for the Django example, whose health path names its release.
timed_django() {
  local want=$1; shift
  local start; start=$(now)
  "$bin" deploy benchdjango "$@" --json > /dev/null 2>"$work/deploy.err" &
  local deploy=$!
  until curl -s --cacert "$work/data/ca.pem" --resolve "benchdjango.localhost:$edge_port:127.0.0.1" \
      "https://benchdjango.localhost:$edge_port/health" 2>/dev/null | grep -q "release $want\$"; do
    sleep 0.02
  done
  local end; end=$(now)
  wait "$deploy"
  echo "$end - $start" | bc -l
}
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

n=1
first=$(timed $n --path "$ctx"); n=$((n+1))
builds=()
for _ in $(seq "$RUNS"); do builds+=("$(timed $n --path "$ctx")"); n=$((n+1)); done
images=()
for _ in $(seq "$RUNS"); do images+=("$(timed $n --image rampart/benchhello:r1)"); n=$((n+1)); done
# A new image each run: the same context with a file that changes, so
# every deploy builds (one new small layer), and on a Swarm publishes and
# pulls, an image no node has.
ctx_new="$work/ctx-new"
mkdir -p "$ctx_new"
cp "$hello" "$ctx_new/hello"
printf 'FROM scratch\nCOPY hello /hello\nCOPY stamp /stamp\nUSER 65534:65534\nENTRYPOINT ["/hello"]\n' > "$ctx_new/Dockerfile"
fresh() {
  local runs=()
  for _ in $(seq "$RUNS"); do
    echo "$app $n" > "$ctx_new/stamp"
    runs+=("$(timed $n --path "$ctx_new")"); n=$((n+1))
  done
  printf '%s\n' "${runs[@]}"
}
news=$(fresh); n=$((n+RUNS))

# The floor: docker run of the same image until its port answers.
floors=()
for i in $(seq "$RUNS"); do
  start=$(now)
  id=$(docker run -d --name "rampart-bench-floor-$i" rampart/benchhello:r1)
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
  until curl -s "http://$ip:8080/health" >/dev/null 2>&1; do sleep 0.01; done
  end=$(now)
  floors+=("$(echo "$end - $start" | bc -l)")
  docker rm -f "$id" >/dev/null
done

# Django: the first build, then warm builds (each runs its release phase),
# then image deploys (no release phase).
if [ -z "${SKIP_DJANGO:-}" ]; then
"$bin" apps create benchdjango --with-db >/dev/null
"$bin" env set benchdjango DJANGO_SECRET_KEY="$(openssl rand -hex 32)" >/dev/null
"$bin" apps configure benchdjango --health-path /health >/dev/null
n=1
dj_first=$(timed_django $n --path examples/django); n=$((n+1))
dj_builds=()
for _ in $(seq "$RUNS"); do dj_builds+=("$(timed_django $n --path examples/django)"); n=$((n+1)); done
dj_images=()
for _ in $(seq "$RUNS"); do dj_images+=("$(timed_django $n --image rampart/benchdjango:r1)"); n=$((n+1)); done
dj_floors=()
for i in $(seq "$RUNS"); do
  start=$(now)
  id=$(docker run -d --name "rampart-bench-floor-dj-$i" -e PORT=8080 -e DJANGO_SECRET_KEY=x rampart/benchdjango:r1)
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
  until curl -s -H 'Host: notes.localhost' "http://$ip:8080/health" 2>/dev/null | grep -q '^ok'; do sleep 0.01; done
  end=$(now)
  dj_floors+=("$(echo "$end - $start" | bc -l)")
  docker rm -f "$id" >/dev/null
done
fi

b=$(printf '%s\n' "${builds[@]}" | median)
i=$(printf '%s\n' "${images[@]}" | median)
f=$(printf '%s\n' "${floors[@]}" | median)
printf '\nrampart deploy → new release serving, examples/hello, 2 replicas, %s runs each\n' "$RUNS"
printf '| deploy | median | vs docker run |\n| --- | --- | --- |\n'
printf '| --path, first build | %.2f s | %.1f× |\n' "$first" "$(echo "$first / $f" | bc -l)"
printf '| --path (build cache warm) | %s s | %.1f× |\n' "$b" "$(echo "$b / $f" | bc -l)"
printf '| --image | %s s | %.1f× |\n' "$i" "$(echo "$i / $f" | bc -l)"
nw=$(echo "$news" | median)
printf '| --path, a new image each run | %s s | %.1f× |\n' "$nw" "$(echo "$nw / $f" | bc -l)"
printf '| docker run until the port answers | %s s | 1.0× |\n' "$f"

if [ -z "${SKIP_DJANGO:-}" ]; then
db=$(printf '%s\n' "${dj_builds[@]}" | median)
di=$(printf '%s\n' "${dj_images[@]}" | median)
df=$(printf '%s\n' "${dj_floors[@]}" | median)
printf '\nrampart deploy → new release serving, examples/django, 2 web replicas + a worker, %s runs each\n' "$RUNS"
printf '| deploy | median | vs docker run |\n| --- | --- | --- |\n'
printf '| --path, first build (with release phase) | %.2f s | %.1f× |\n' "$dj_first" "$(echo "$dj_first / $df" | bc -l)"
printf '| --path (build cache warm, release phase) | %s s | %.1f× |\n' "$db" "$(echo "$db / $df" | bc -l)"
printf '| --image (no release phase) | %s s | %.1f× |\n' "$di" "$(echo "$di / $df" | bc -l)"
printf '| docker run until gunicorn answers | %s s | 1.0× |\n' "$df"
fi

# Swarm: a second platform on the engine as a Swarm manager.
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
server=""
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = "inactive" ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  swarm_made=1
fi
python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install --quiet 'moto[server]'
moto_port=19755
python3 -m moto.server -H 127.0.0.1 -p "$moto_port" > "$work/moto.log" 2>&1 &
moto=$!
until curl -s "http://127.0.0.1:$moto_port/" >/dev/null 2>&1; do sleep 0.1; done
echo "bench-secret" > "$work/s3-secret"
mkdir -p "$work/swarm"
# The platform's registry, on the default bridge's address (a registry
# must be an address other nodes reach), trusted by this engine for the run.
registry="$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1):19756"
cat > "$work/swarm/rampart.toml" <<TOML
[api]
listen = "127.0.0.1:0"
[auth]
require_mfa = false
[edge.listen]
https = "127.0.0.1:0"
http = "127.0.0.1:0"
admin = ""
[runtime]
backend = "swarm"
registry = "$registry"
[media]
s3_endpoint = "http://127.0.0.1:$moto_port"
s3_access_key_id = "bench"
s3_secret_key_file = "$work/s3-secret"
TOML
"$bin" up --data-dir "$work/swarm/data" --config "$work/swarm/rampart.toml" > "$work/swarm/up.log" 2>&1 &
server=$!
for _ in $(seq 300); do grep -q "API listening" "$work/swarm/up.log" && break; sleep 0.1; done
api=$(grep -o 'API listening on https://[0-9.:]*' "$work/swarm/up.log" | awk '{print $4}')
edge_port=$(grep -o 'apps are served at https://[0-9.:]*' "$work/swarm/up.log" | awk -F: '{print $NF}')
export RAMPART_SERVER="$api" RAMPART_CA="$work/swarm/data/ca.pem"
mkdir -p "/etc/docker/certs.d/$registry"
cp "$RAMPART_CA" "/etc/docker/certs.d/$registry/ca.crt"
RAMPART_TOKEN=$(cat "$work/swarm/data/bootstrap-token")
export RAMPART_TOKEN
"$bin" apps create benchswarm >/dev/null
app=benchswarm
n=1
sw_first=$(timed $n --path "$ctx"); n=$((n+1))
sw_builds=()
for _ in $(seq "$RUNS"); do sw_builds+=("$(timed $n --path "$ctx")"); n=$((n+1)); done
sw_images=()
for _ in $(seq "$RUNS"); do sw_images+=("$(timed $n --image rampart/benchswarm:r1)"); n=$((n+1)); done
sw_news=$(fresh); n=$((n+RUNS))
# The floor: a bare service of the same image until its task runs.
sw_floors=()
for k in $(seq "$RUNS"); do
  start=$(now)
  docker service create -d --quiet --name "rampart-bench-floor-$k" rampart/benchswarm:r1 >/dev/null 2>&1
  until docker service ps "rampart-bench-floor-$k" --format '{{.CurrentState}}' 2>/dev/null | grep -q '^Running'; do sleep 0.02; done
  end=$(now)
  sw_floors+=("$(echo "$end - $start" | bc -l)")
  docker service rm "rampart-bench-floor-$k" >/dev/null
done
sb=$(printf '%s\n' "${sw_builds[@]}" | median)
si=$(printf '%s\n' "${sw_images[@]}" | median)
sf=$(printf '%s\n' "${sw_floors[@]}" | median)
printf '\nrampart deploy → new release serving on a single-node Swarm, examples/hello, 2 replicas, %s runs each\n' "$RUNS"
printf '| deploy | median | vs docker run | vs the Docker backend |\n| --- | --- | --- | --- |\n'
printf '| --path, first build | %.2f s | %.1f× | %.1f× |\n' "$sw_first" "$(echo "$sw_first / $f" | bc -l)" "$(echo "$sw_first / $first" | bc -l)"
printf '| --path (build cache warm) | %s s | %.1f× | %.1f× |\n' "$sb" "$(echo "$sb / $f" | bc -l)" "$(echo "$sb / $b" | bc -l)"
printf '| --image | %s s | %.1f× | %.1f× |\n' "$si" "$(echo "$si / $f" | bc -l)" "$(echo "$si / $i" | bc -l)"
sn=$(echo "$sw_news" | median)
printf '| --path, a new image each run (published to the registry, pulled) | %s s | %.1f× | %.1f× |\n' "$sn" "$(echo "$sn / $f" | bc -l)" "$(echo "$sn / $nw" | bc -l)"
printf '| docker service create until its task runs | %s s | %.1f× | |\n' "$sf" "$(echo "$sf / $f" | bc -l)"
