#!/usr/bin/env bash
# Runs a command against a private redis-server: starts one on a free loopback
# port in a temporary directory, exports RCACHE_TEST_REDIS_URL (and
# RCACHE_TEST_REDIS_PORT), runs the command, then stops that server only.
#
#   tests/with-redis.sh COMMAND [ARG...]
set -euo pipefail

command -v redis-server >/dev/null || { echo "with-redis.sh: redis-server not found (run make prereqs)" >&2; exit 2; }

workdir=$(mktemp -d "${TMPDIR:-/tmp}/rcache-redis.XXXXXX")

stop() {
  if [ -f "$workdir/redis.pid" ]; then kill "$(cat "$workdir/redis.pid")" 2>/dev/null || true; fi
  sleep 0.1
  rm -rf "$workdir"
}
trap stop EXIT

# Another process may take the free port before the server binds it: the
# server then exits (no pid file, or its pid gone), and a new port is tried.
# A PONG counts only while our server runs, since the port may be another's.
started=
for _ in 1 2 3 4 5; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  rm -f "$workdir/redis.pid"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$workdir" --save '' --appendonly no \
    --daemonize yes --pidfile "$workdir/redis.pid" --logfile "$workdir/redis.log" || continue
  for _ in $(seq 1 100); do
    if [ -f "$workdir/redis.pid" ] && kill -0 "$(cat "$workdir/redis.pid")" 2>/dev/null \
      && redis-cli -p "$port" ping >/dev/null 2>&1; then
      started=yes
      break
    fi
    sleep 0.05
  done
  [ -n "$started" ] && break
  stop_pid=$(cat "$workdir/redis.pid" 2>/dev/null || true)
  if [ -n "$stop_pid" ]; then kill "$stop_pid" 2>/dev/null || true; fi
done
[ -n "$started" ] || { echo "with-redis.sh: redis-server did not start on any of 5 free ports" >&2; exit 2; }

export RCACHE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
export RCACHE_TEST_REDIS_PORT="$port"
"$@"
