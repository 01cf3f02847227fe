#!/usr/bin/env bash
# Backup engine benchmark: rampart repo against restic on the same data, in
# one run on this machine. Prints each timing, peak RSS and repository size,
# and restic's figure divided by Rampart's (above 1.0 means Rampart is faster
# or smaller).
#
# Data: 256 MiB of random bytes ("media") and a 256 MiB text table dump.
# Steps: first backup, second backup of unchanged data, backup after changing
# 1% of the dump, restore, check --read-data.
#
# Usage: bench/backup.sh [WORKDIR]   (needs ~3 GiB free; installs restic)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d /tmp/rampart-bench-backup.XXXXXX)}"
mkdir -p "$work"

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need restic restic
need /usr/bin/time time
need bc bc

cargo build --profile dist --locked -q -p rampart
rampart="$PWD/target/dist/rampart"

data="$work/data"
if [ ! -f "$data/dump.sql" ]; then
  mkdir -p "$data/media"
  head -c $((256 * 1024 * 1024)) /dev/urandom > "$data/media/photos.bin"
  python3 - "$data/dump.sql" <<'PY'
import random, sys
random.seed(7)
words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
target = 256 * 1024 * 1024
with open(sys.argv[1], "w") as f:
    f.write("COPY public.orders (id, customer, status, amount, created_at) FROM stdin;\n")
    n, size = 0, 0
    while size < target:
        line = "%d\t%s %s\t%s\t%d.%02d\t2026-%02d-%02d %02d:%02d:%02d\n" % (
            n, random.choice(words), random.choice(words), random.choice(("paid", "open", "void")),
            random.randrange(100000), random.randrange(100), random.randrange(1, 13), random.randrange(1, 29),
            random.randrange(24), random.randrange(60), random.randrange(60))
        f.write(line)
        size += len(line)
        n += 1
PY
  truncate -s $((256 * 1024 * 1024)) "$data/dump.sql"
fi
cp "$data/dump.sql" "$work/dump.orig"

change_dump() {
  # Rewrite 1% of the dump in 16 places, the same way for both tools.
  python3 - "$data/dump.sql" <<'PY'
import random, sys
random.seed(11)
path = sys.argv[1]
size = 256 * 1024 * 1024
piece = size // 100 // 16
with open(path, "r+b") as f:
    for i in range(16):
        f.seek(random.randrange(size - piece))
        f.write(bytes(random.randrange(48, 58) for _ in range(piece)))
PY
}

# measure NAME CMD... : prints "seconds peak_kib"
measure() {
  if ! /usr/bin/time -f '%e %M' -o "$work/time.out" "$@" >/dev/null 2>"$work/stderr.log"; then
    cat "$work/stderr.log" >&2
    return 1
  fi
  tail -1 "$work/time.out"
}

export RESTIC_PASSWORD=bench RAMPART_REPO_PASSWORD=bench
export RESTIC_CACHE_DIR="$work/restic-cache"
declare -A R S
run_tool() {
  local tool=$1 repo="$work/repo-$1" restore="$work/restore-$1"
  rm -rf "$repo" "$restore" "$RESTIC_CACHE_DIR"
  cp "$work/dump.orig" "$data/dump.sql"
  if [ "$tool" = rampart ]; then
    "$rampart" repo --repo "$repo" --quiet init
    local b=("$rampart" repo --repo "$repo" --quiet backup "$data")
    local r=("$rampart" repo --repo "$repo" --quiet restore latest --target "$restore")
    local c=("$rampart" repo --repo "$repo" --quiet check --read-data)
  else
    restic -q -r "$repo" init >/dev/null
    local b=(restic -q -r "$repo" backup "$data")
    local r=(restic -q -r "$repo" restore latest --target "$restore")
    local c=(restic -q -r "$repo" check --read-data)
  fi
  sync
  read -r t m < <(measure "${b[@]}"); eval "$2[first]=$t; $2[first_rss]=$m"
  read -r t m < <(measure "${b[@]}"); eval "$2[unchanged]=$t; $2[unchanged_rss]=$m"
  change_dump
  read -r t m < <(measure "${b[@]}"); eval "$2[changed]=$t; $2[changed_rss]=$m"
  sync
  read -r t m < <(measure "${r[@]}"); eval "$2[restore]=$t; $2[restore_rss]=$m"
  read -r t m < <(measure "${c[@]}"); eval "$2[check]=$t; $2[check_rss]=$m"
  eval "$2[size]=$(du -sk "$repo" | cut -f1)"
  rm -rf "$restore"
}

echo "data: 256 MiB random media + 256 MiB text dump; $(nproc) cores; restic $(restic version | cut -d' ' -f2)"
run_tool restic S
run_tool rampart R

printf '\n%-28s %12s %12s %10s\n' "step" "rampart" "restic" "ratio"
for k in first unchanged changed restore check; do
  printf '%-28s %11ss %11ss %9.2fx\n' "$k" "${R[$k]}" "${S[$k]}" "$(echo "${S[$k]} / ${R[$k]}" | bc -l)"
done
for k in first unchanged changed restore check; do
  printf '%-28s %9d MiB %8d MiB %9.2fx\n' "peak RSS $k" $((R[${k}_rss] / 1024)) $((S[${k}_rss] / 1024)) "$(echo "${S[${k}_rss]} / ${R[${k}_rss]}" | bc -l)"
done
printf '%-28s %9d MiB %8d MiB %9.2fx\n' "repository size" $((R[size] / 1024)) $((S[size] / 1024)) "$(echo "${S[size]} / ${R[size]}" | bc -l)"
