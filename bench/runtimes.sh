#!/usr/bin/env bash
# Get/set ops/s from one thread in each runtime that loads librcache.so
# directly, beside that runtime's most used Redis client, all on one private
# redis-server in the same run: Node.js (rcache through koffi, ioredis),
# PyPy (the rcache package, redis-py), LuaJIT (rcache through its FFI,
# redis-lua). One call at a time, 100-byte values, ROUNDS rounds of 1 s runs;
# the report gives medians, ranges and the ratio rcache / baseline.
#   bench/runtimes.sh [ROUNDS]      (make bench-runtimes)
# Installs what only the benchmark needs when it is missing: ioredis (npm, into
# bench/node), redis-py into build/pypy-venv, lua-redis (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
out=build/bench
mkdir -p "$out"

[ -f bench/node/node_modules/ioredis/package.json ] || (cd bench/node && npm ci --silent --no-audit --no-fund)
build/pypy-venv/bin/python -c 'import redis' 2>/dev/null \
  || build/pypy-venv/bin/python -m pip install --quiet --disable-pip-version-check 'redis>=5'
if ! luajit -e 'require("redis")' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua-redis >/dev/null
fi

tests/with-redis.sh bash -c '
  set -euo pipefail
  pypy() {  # bench.py under PyPy, one line per op as "pypy <client> <OP> <ops/s>"
    build/pypy-venv/bin/python bench/bench.py --client "$1" --url "$RCACHE_TEST_REDIS_URL" --threads 1 \
      --seconds 1 --keys 100 | awk -v client="$1" "/^RESULT/ {
        for (i = 2; i <= NF; i++) { split(\$i, kv, \"=\"); f[kv[1]] = kv[2] }
        print \"pypy\", client, toupper(f[\"op\"]), int(f[\"ops_per_sec\"]) }"
  }
  for round in $(seq 1 '"$rounds"'); do
    node bench/bench_node.js "$RCACHE_TEST_REDIS_URL" 1 1
    pypy rcache
    pypy redis-py
    luajit bench/bench_luajit.lua "$RCACHE_TEST_REDIS_URL" 1 1
  done
' | tee "$out/runtimes.txt"

python3 - "$out/runtimes.txt" "$rounds" <<'PY' | tee "$out/runtimes.md"
import collections, os, statistics, sys, time
rates = collections.defaultdict(list)
for line in open(sys.argv[1]):
    runtime, client, op, rate = line.split()
    rates[runtime, client, op].append(int(rate))
baselines = {"node": "ioredis", "pypy": "redis-py", "luajit": "redis-lua"}
load = " ".join(f"{x:.2f}" for x in os.getloadavg())
print(f"# rcache from other runtimes, one thread ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
      f"{sys.argv[2]} rounds, load average after the run {load})\n")
print("| runtime | op | rcache ops/s (median, range) | baseline | baseline ops/s (median, range) | rcache / baseline |")
print("|---|---|---|---|---|---|")
for runtime, baseline in baselines.items():
    for op in ("GET", "SET"):
        mine, theirs = rates[runtime, "rcache", op], rates[runtime, baseline, op]
        if not mine or not theirs:
            continue
        m, t = statistics.median(mine), statistics.median(theirs)
        print(f"| {runtime} | {op} | {m:,.0f} ({min(mine):,}–{max(mine):,}) | {baseline} | "
              f"{t:,.0f} ({min(theirs):,}–{max(theirs):,}) | {m / t:.2f}× |")
PY
