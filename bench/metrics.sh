#!/usr/bin/env bash
# Benchmarks /metrics: wrk for 10 s at 20 connections against `backstop serve` (release
# build) and, in the same run on the same machine, against prometheus-postgres-exporter and
# prometheus-redis-exporter scraping the same throwaway servers. Prints requests/s, p99
# latency and resident memory side by side, with backstop's ratios to each exporter.
# Resident memory is read from /proc/PID/status once start-up has settled (SETTLE seconds,
# default 15: backstop's first health round and its start-up memory release are done) and again
# after each process's load run; each figure is VmRSS = RssAnon (heap, stacks, written data)
# + RssFile (mapped code and read-only data). BACKSTOP_BIN skips the release build.
# Never fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
./scripts/install-deps.sh
for p in prometheus-postgres-exporter prometheus-redis-exporter; do
  command -v "$p" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
BIN=${BACKSTOP_BIN:-$(./scripts/build-release.sh 2>/dev/null)}

DURATION=${DURATION:-10s}
SETTLE=${SETTLE:-15}
work=$(mktemp -d /tmp/backstop-bench-XXXXXX); chmod 777 "$work"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  redis-cli -p 46379 shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

as_pg "$pgbin/initdb" -D "$work/pg" -U postgres -A trust >/dev/null
printf "port = 45432\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$work" >> "$work/pg/postgresql.conf"
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
"$pgbin/psql" -h 127.0.0.1 -p 45432 -U postgres -qc "CREATE DATABASE psscript" >/dev/null
redis-server --port 46379 --bind 127.0.0.1 --daemonize yes --save "" --logfile "$work/redis.log" --dir "$work"

BACKUP_DIR="$work/backups" PGHOST=127.0.0.1 PGPORT=45432 PGUSER=postgres REDIS_HOST=127.0.0.1 REDIS_PORT=46379 \
  METRICS_LISTEN=127.0.0.1:49847 HEALTH_CHECK_INTERVAL=5s "$BIN" serve >"$work/backstop.log" 2>&1 &
pids+=($!)
DATA_SOURCE_NAME="postgresql://postgres@127.0.0.1:45432/psscript?sslmode=disable" \
  prometheus-postgres-exporter --web.listen-address=127.0.0.1:49187 >"$work/pgexp.log" 2>&1 &
pids+=($!)
prometheus-redis-exporter -redis.addr redis://127.0.0.1:46379 -web.listen-address 127.0.0.1:49121 >"$work/redisexp.log" 2>&1 &
pids+=($!)
sleep "$SETTLE"

# "total (anon+file)" in MiB from /proc/PID/status.
rss() { awk '/^VmRSS/ {t=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {printf "%.1f (%.1f+%.1f)", t/1024, a/1024, f/1024}' "/proc/$1/status"; }
mib() { echo "${1%% *}"; }
declare -A RPS P99 RSS
run() { # name url pid
  local out; out=$(wrk -t2 -c20 -d"$DURATION" --latency "$2")
  RPS[$1]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  P99[$1]=$(echo "$out" | awk '$1=="99%" {print $2}')
  sleep 3
  RSS[$1]=$(rss "$3")
}
idle_backstop=$(rss "${pids[0]}"); idle_pg=$(rss "${pids[1]}"); idle_redis=$(rss "${pids[2]}")
run backstop http://127.0.0.1:49847/metrics "${pids[0]}"
run postgres_exporter http://127.0.0.1:49187/metrics "${pids[1]}"
run redis_exporter http://127.0.0.1:49121/metrics "${pids[2]}"

printf "\n%-20s %12s %10s %22s %22s\n" "target" "requests/s" "p99" "idle RSS MiB" "RSS after load MiB"
printf "%-20s %12s %10s %22s %22s\n" "" "" "" "total (anon+file)" "total (anon+file)"
printf "%-20s %12s %10s %22s %22s\n" backstop "${RPS[backstop]}" "${P99[backstop]}" "$idle_backstop" "${RSS[backstop]}"
printf "%-20s %12s %10s %22s %22s\n" postgres_exporter "${RPS[postgres_exporter]}" "${P99[postgres_exporter]}" "$idle_pg" "${RSS[postgres_exporter]}"
printf "%-20s %12s %10s %22s %22s\n" redis_exporter "${RPS[redis_exporter]}" "${P99[redis_exporter]}" "$idle_redis" "${RSS[redis_exporter]}"
awk -v b="${RPS[backstop]}" -v p="${RPS[postgres_exporter]}" -v r="${RPS[redis_exporter]}" -v bm="$(mib "$idle_backstop")" -v pm="$(mib "$idle_pg")" -v rm="$(mib "$idle_redis")" 'BEGIN {
  printf "\nthroughput ratio backstop/postgres_exporter %.2fx, backstop/redis_exporter %.2fx\n", b/p, b/r
  printf "idle RSS ratio   backstop/postgres_exporter %.2fx, backstop/redis_exporter %.2fx\n", bm/pm, bm/rm
  printf "targets: >= 10000 requests/s, p99 < 5ms, idle RSS no larger than the exporters\n" }'
