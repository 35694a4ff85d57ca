#!/usr/bin/env bash
# Runs rcache's benchmarks against a private redis-server and prints one
# Markdown summary (also written to build/bench/report.md) and draws a chart of
# it (build/bench/chart.png, with matplotlib); raw output goes to
# build/bench/log.txt. Needs target/release/librcache.so (cargo build --release).
#
#   bash bench/run.sh
#
# Every client is measured on the same server in the same run: each round runs
# redis-benchmark, rcache from C (bench.c) and from Python (bench.py),
# redis-py + hiredis and valkey-glide-sync (bench.py, each client in its own
# process), near-cache hits against plain gets from C and
# from Python, from 1 and 8 threads on one handle, and valkey-glide-sync's
# server-assisted client-side cache in a process of its own
# (bench_near.c, bench_near.py), and web2py's cache(key, f, 300)
# with the old module, rcache.web2py and rcache.web2py with a near cache
# (bench_web2py.py). Then bench_wire.c: the server's time per read
# (the commands of each read captured and replayed) and the client's CPU
# per get and set, as multiples of hiredis's synchronous API in the same
# program. Last, bench_aio.py: asyncio
# clients (rcache.aio, redis.asyncio, valkey-glide) with 1,000 coroutines
# each, and the event loop's lag while a paused server holds every call; it
# starts a server of its own, since it stops it with SIGSTOP
# (BENCH_AIO_SECONDS, default 3, per run). Then, when
# target/release/examples/bench_topologies is built (make bench builds it),
# bench_near_topologies.py: the near-cache figures on a standalone server, a
# Sentinel group and a 3-primary Cluster of their own, in interleaved rounds
# (BENCH_TOPOLOGY_ROUNDS, default 3), each with its ratio to standalone.
#
# Environment: BENCH_ROUNDS (default 5) repetitions of every Redis figure
# without CPU pinning, of which the median decides the targets; BENCH_SECONDS
# (default 1) wall-time bound of each run; CC (default cc). Then one pass of
# each pinned control (client and server on one CPU; on two CPUs) over the
# get/set figures. The whole run takes about 5½ minutes.
#
# It never touches another Redis server: it starts its own on a free loopback
# port in a temporary directory and stops it on exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
rounds=${BENCH_ROUNDS:-5}
seconds=${BENCH_SECONDS:-1}
value_size=100
out=$root/build/bench
lib=$root/target/release/librcache.so
mkdir -p "$out"
results=$out/results.txt
meta=$out/meta.txt
log=$out/log.txt
: >"$results"
: >"$meta"
: >"$log"

say() { printf 'bench: %s\n' "$*" >&2; }
note() { printf 'note=%s\n' "$*" >>"$meta"; }

[ -f "$lib" ] || { say "$lib not found; run cargo build --release first"; exit 2; }
for tool in redis-server redis-cli redis-benchmark python3; do
  command -v "$tool" >/dev/null || { say "$tool not found (Debian: apt-get install redis-server redis-tools python3)"; exit 2; }
done

# --- the C benchmark ---------------------------------------------------------
${CC:-cc} -O2 -Wall -Wextra -Werror -pthread -I "$root/include" "$root/bench/bench.c" -o "$out/bench" \
  -L "$root/target/release" -lrcache -Wl,-rpath,"$root/target/release"
${CC:-cc} -O2 -std=c11 -Wall -Wextra -Wpedantic -Werror -pthread -I "$root/include" "$root/bench/bench_near.c" \
  -o "$out/bench_near" -L "$root/target/release" -lrcache -Wl,-rpath,"$root/target/release"

# --- hiredis (Debian's libhiredis-dev), the baseline of bench_wire.c -------------
hiredis_header=/usr/include/hiredis/hiredis.h
if [ ! -f "$hiredis_header" ]; then
  say "installing the benchmark-only Debian package libhiredis-dev"
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo)
  if "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libhiredis-dev >>"$log" 2>&1 \
    || { "${as_root[@]}" apt-get update -qq >>"$log" 2>&1 \
      && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libhiredis-dev >>"$log" 2>&1; }; then
    note "run.sh installed libhiredis-dev for bench_wire.c's hiredis baseline"
  fi
fi
have_hiredis=no
if [ -f "$hiredis_header" ] && ${CC:-cc} -O2 -std=c11 -Wall -Wextra -Wpedantic -Werror -I "$root/include" \
  "$root/bench/bench_wire.c" -o "$out/bench_wire" -L "$root/target/release" -lrcache -lhiredis \
  -Wl,-rpath,"$root/target/release" >>"$log" 2>&1; then
  have_hiredis=yes
else
  note "libhiredis-dev is missing or bench_wire.c did not build (see build/bench/log.txt): no server-cost or client-CPU figures"
fi

# --- benchmark-only Python packages --------------------------------------------
missing=()
python3 -c 'import redis' 2>/dev/null || missing+=(redis)
python3 -c 'import hiredis' 2>/dev/null || missing+=(hiredis)
python3 -c 'import matplotlib' 2>/dev/null || missing+=(matplotlib)
python3 -c 'import glide_sync' 2>/dev/null || missing+=(valkey-glide-sync)
python3 -c 'import glide' 2>/dev/null || missing+=(valkey-glide)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing benchmark-only Python packages: python3 -m pip install --quiet ${missing[*]}"
  if PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet "${missing[@]}" >>"$log" 2>&1; then
    note "run.sh installed ${missing[*]} with pip for the redis-py comparison and the chart"
  else
    say "pip install failed (see $log); the redis-py figures or the chart may be missing"
    note "pip install ${missing[*]} failed; see build/bench/log.txt"
  fi
fi
have_redis_py=no
python3 -c 'import redis' 2>/dev/null && have_redis_py=yes
[ "$have_redis_py" = yes ] || note "redis-py is not importable: its figures, the Python 1-thread target and the web2py comparison are not measured"
have_glide=no
python3 -c 'import glide_sync' 2>/dev/null && have_glide=yes
[ "$have_glide" = yes ] || note "valkey-glide-sync is not importable: its figures are not measured"
have_matplotlib=no
python3 -c 'import matplotlib' 2>/dev/null && have_matplotlib=yes
[ "$have_matplotlib" = yes ] || note "matplotlib is not importable: no chart was drawn"

# --- a private redis-server --------------------------------------------------
workdir=$(mktemp -d "${TMPDIR:-/tmp}/rcache-bench.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop() {
  if [ -f "$workdir/redis.pid" ]; then
    pid=$(cat "$workdir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$workdir"
}
trap stop EXIT
trap 'exit 130' INT TERM
redis-server --port "$port" --bind 127.0.0.1 --dir "$workdir" --save '' --appendonly no \
  --daemonize yes --pidfile "$workdir/redis.pid" --logfile "$workdir/redis.log"
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && [ -s "$workdir/redis.pid" ] && break
  sleep 0.05
done
redis-cli -p "$port" ping >/dev/null || { say "the private redis-server did not start; see $workdir/redis.log"; exit 1; }
redis_pid=$(cat "$workdir/redis.pid")
url="redis://127.0.0.1:$port/0"
all_cpus="0-$(($(nproc) - 1))"

# --- what was measured, and on what -------------------------------------------
{
  echo "date=$(date -u)"
  echo "day=$(date -u +%F)"
  echo "nproc=$(nproc)"
  echo "memory=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "redis=$(redis-server --version | awk '{ print $1, $2, $3 }')"
  echo "python=$(python3 --version 2>&1)"
  echo "rcache=$("$out/bench" --version)"
  echo "commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" --no-optional-locks status --porcelain -- src include Cargo.toml Cargo.lock 2>/dev/null | grep -q . && echo ' + uncommitted library changes')"
  echo "port=$port"
  echo "rounds=$rounds"
  echo "seconds=$seconds"
  echo "value_size=$value_size"
  if [ "$have_redis_py" = yes ]; then
    python3 -c 'import redis, redis.utils; print(f"redis_py={redis.__version__}"); print(f"hiredis={bool(redis.utils.HIREDIS_AVAILABLE)}")'
  fi
  if [ "$have_glide" = yes ]; then
    python3 -c 'from importlib.metadata import version; print("valkey_glide_sync=" + version("valkey-glide-sync"))'
  fi
} >>"$meta"

# --- runners: each appends "RESULT round=R placement=P ..." lines to $results ---
failures=0
tag() { sed -n "s/^RESULT /RESULT round=$1 placement=$2 /p" >>"$results"; }

# Runs a command with output to the log, its RESULT lines tagged; a failure is counted, not fatal.
run_tagged() {
  local round=$1 placement=$2
  shift 2
  echo "\$ $*" >>"$log"
  if ! timeout -k 5 180 "$@" 2>&1 | tee -a "$log" | tag "$round" "$placement"; then
    say "FAILED: $* (see $log)"
    failures=$((failures + 1))
  fi
}

# redis-benchmark's --csv lines become RESULT lines (its rps and its p50/p99 in ms).
redis_benchmark() {
  local round=$1 placement=$2 clients=$3 requests=$4
  shift 4
  local command=("$@" redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -d "$value_size" -c "$clients" -P 1
    -r 10000 -n "$requests" --csv)
  echo "\$ ${command[*]}" >>"$log"
  if ! timeout -k 5 180 "${command[@]}" 2>&1 | tee -a "$log" | awk -F, -v clients="$clients" -v n="$requests" '
      { gsub(/"/, "") }
      $1 == "test" { for (i = 1; i <= NF; i++) col[$i] = i; next }
      $1 == "SET" || $1 == "GET" {
        rps = $(col["rps"])
        printf "RESULT label=redis-benchmark op=%s threads=%d ops=%d seconds=%.3f ops_per_sec=%.0f p50_us=%.3f p99_us=%.3f\n",
          tolower($1), clients, n, n / rps, rps, $(col["p50_latency_ms"]) * 1000, $(col["p99_latency_ms"]) * 1000
      }' | tag "$round" "$placement"; then
    say "FAILED: ${command[*]} (see $log)"
    failures=$((failures + 1))
  fi
}

# One pass over the Redis figures; $pin (empty or "taskset -c 0") places the clients.
redis_round() {
  local round=$1 placement=$2
  shift 2
  local pin=("$@")
  redis_benchmark "$round" "$placement" 1 40000 "${pin[@]}"
  run_tagged "$round" "$placement" "${pin[@]}" "$out/bench" --url "$url" --threads 1 --seconds "$seconds" --value-size "$value_size"
  redis_benchmark "$round" "$placement" 8 150000 "${pin[@]}"
  run_tagged "$round" "$placement" "${pin[@]}" "$out/bench" --url "$url" --threads 8 --seconds "$seconds" --value-size "$value_size"
  run_tagged "$round" "$placement" "${pin[@]}" python3 "$root/bench/bench.py" --client rcache --url "$url" \
    --threads 1,8 --seconds "$seconds" --value-size "$value_size"
  if [ "$have_redis_py" = yes ]; then
    run_tagged "$round" "$placement" "${pin[@]}" python3 "$root/bench/bench.py" --client redis-py --url "$url" \
      --threads 1,8 --seconds "$seconds" --value-size "$value_size"
  fi
  if [ "$have_glide" = yes ]; then
    run_tagged "$round" "$placement" "${pin[@]}" python3 "$root/bench/bench.py" --client valkey-glide --url "$url" \
      --threads 1,8 --seconds "$seconds" --value-size "$value_size"
  fi
}

# One pass over the one-thread figures of the near cache and of web2py's cache(key, f, 300).
near_round() {
  local round=$1
  run_tagged "$round" free "$out/bench_near" "$url" --seconds "$seconds" --value-size "$value_size"
  run_tagged "$round" free python3 "$root/bench/bench_near.py" "$url" --seconds "$seconds" --value-size "$value_size"
  if [ "$have_redis_py" = yes ]; then
    run_tagged "$round" free python3 "$root/bench/bench_web2py.py" --url "$url" --seconds "$seconds" --rounds 1 \
      --variant "?near_cache=10000"
  fi
}

started=$(date +%s)
say "private redis-server on 127.0.0.1:$port; $rounds rounds of ${seconds} s runs; raw output in $log"
say "memory:// (C and Python, 1 and 8 threads)"
run_tagged 1 free "$out/bench" --url memory:// --threads 1,8 --seconds 1 --value-size "$value_size"
run_tagged 1 free python3 "$root/bench/bench.py" --client rcache --url memory:// --threads 1,8 --seconds 1 --value-size "$value_size"
for round in $(seq 1 "$rounds"); do
  echo "load_round=$round $(cut -d' ' -f1-3 /proc/loadavg)" >>"$meta"
  say "round $round/$rounds: redis-benchmark, C and Python, 1 and 8 threads, no pinning"
  redis_round "$round" free
  say "round $round/$rounds: near-cache hits from C and Python; web2py cache(key, f, 300), no pinning"
  near_round "$round"
done
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
  say "control: every client and the redis-server pinned to CPU 0"
  taskset -a -p -c 0 "$redis_pid" >/dev/null
  redis_round 1 cpu0 taskset -c 0
  say "control: clients pinned to CPU 0, the redis-server to CPU 1"
  taskset -a -p -c 1 "$redis_pid" >/dev/null
  redis_round 1 split taskset -c 0
  taskset -a -p -c "$all_cpus" "$redis_pid" >/dev/null
else
  note "the pinned controls were skipped (no taskset, or a single CPU)"
fi
# The server's time per read must be the only traffic on the server: run alone, unpinned.
wire=$out/wire.md
: >"$wire"
if [ "$have_hiredis" = yes ]; then
  say "server time per read (captured commands, replayed) and client CPU per call against hiredis (bench_wire.c)"
  echo "\$ $out/bench_wire --port $port" >>"$log"
  if ! timeout -k 5 300 "$out/bench_wire" --port "$port" >"$wire" 2>>"$log"; then
    say "FAILED: bench_wire (see $log)"
    failures=$((failures + 1))
  fi
fi
say "asyncio: 1,000 coroutines on one client (rcache.aio, redis.asyncio, valkey-glide), on a server of its own that it pauses"
echo "\$ python3 bench/bench_aio.py --seconds ${BENCH_AIO_SECONDS:-3}" >>"$log"
if ! timeout -k 5 600 python3 "$root/bench/bench_aio.py" --seconds "${BENCH_AIO_SECONDS:-3}" >"$out/aio.md" 2>>"$log"; then
  say "FAILED: bench_aio.py (see $log)"
  failures=$((failures + 1))
fi
topologies=$out/near_topologies.md
: >"$topologies"
if [ -x "$root/target/release/examples/bench_topologies" ]; then
  say "near-cache hits on standalone, Sentinel and Cluster (bench_near_topologies.py, servers of their own)"
  echo "\$ target/release/examples/bench_topologies python3 bench/bench_near_topologies.py" >>"$log"
  if ! timeout -k 5 900 "$root/target/release/examples/bench_topologies" python3 "$root/bench/bench_near_topologies.py" \
    --rounds "${BENCH_TOPOLOGY_ROUNDS:-3}" --seconds "$seconds" --bench-near "$out/bench_near" \
    --markdown "$topologies" >>"$log" 2>&1; then
    say "FAILED: bench_near_topologies.py (see $log)"
    failures=$((failures + 1))
  fi
else
  note "target/release/examples/bench_topologies is not built (cargo build --release --example bench_topologies): no Sentinel and Cluster near-cache figures"
fi
say "done in $(($(date +%s) - started)) s"

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$meta"
[ "$failures" -eq 0 ] || note "$failures benchmark command(s) failed; see build/bench/log.txt"
note "Redis figures depend on whether the scheduler puts a client thread and redis-server on the same CPU (cheap wake-ups) or on different CPUs (costly cross-CPU wake-ups on this VM): see the min–max column and the one-CPU control."
note "client CPU µs/op is the benchmark process's getrusage/process_time delta over its operations; this kernel samples CPU time at scheduler ticks, so it is indicative only, least reliable when the client mostly sleeps (split placement)."
{
  python3 "$root/bench/summarize.py" "$results" "$meta"
  if [ -s "$wire" ]; then
    printf '\n## Server time per read and client CPU per call, against hiredis\n\n'
    cat "$wire"
  fi
  if [ -s "$out/aio.md" ]; then
    echo
    cat "$out/aio.md"
  fi
  if [ -s "$topologies" ]; then
    printf '\n## Near-cache hits on standalone, Sentinel and Cluster\n\n'
    cat "$topologies"
  fi
} | tee "$out/report.md"
echo
say "report written to build/bench/report.md"
rm -f "$out/chart.png"
if [ "$have_matplotlib" = yes ]; then
  if python3 "$root/bench/chart.py" "$results" "$meta" "$out/chart.png" >>"$log" 2>&1; then
    say "chart written to build/bench/chart.png"
  else
    say "the chart failed (see $log); the report stands without it"
  fi
else
  say "matplotlib is not importable: no chart (the report stands without it)"
fi
[ "$failures" -eq 0 ]
