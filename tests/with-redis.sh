#!/usr/bin/env bash
# Runs a command against a private redis-server: starts one on a free loopback
# port in a temporary directory, exports RCACHE_TEST_REDIS_URL (and
# RCACHE_TEST_REDIS_PORT), runs the command, then stops that server only.
#
#   tests/with-redis.sh COMMAND [ARG...]
set -euo pipefail

command -v redis-server >/dev/null || { echo "with-redis.sh: redis-server not found (run make prereqs)" >&2; exit 2; }

workdir=$(mktemp -d "${TMPDIR:-/tmp}/rcache-redis.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

redis-server --port "$port" --bind 127.0.0.1 --dir "$workdir" --save '' --appendonly no \
  --daemonize yes --pidfile "$workdir/redis.pid" --logfile "$workdir/redis.log"

stop() {
  if [ -f "$workdir/redis.pid" ]; then kill "$(cat "$workdir/redis.pid")" 2>/dev/null || true; fi
  sleep 0.1
  rm -rf "$workdir"
}
trap stop EXIT

for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done

export RCACHE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
export RCACHE_TEST_REDIS_PORT="$port"
"$@"
