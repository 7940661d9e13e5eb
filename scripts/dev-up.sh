#!/usr/bin/env bash
# Runs Backstop for real against throwaway local servers: installs what is missing, builds,
# starts PostgreSQL, a Redis master with one replica and three Sentinels in a temporary
# folder on loopback ports, then runs `backstop serve` in the foreground. Ctrl-C stops
# everything and removes the folder.
#
#   ./scripts/dev-up.sh            # metrics on http://127.0.0.1:9847/metrics
#   METRICS_PORT=9900 ./scripts/dev-up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

./scripts/install-deps.sh
swift build --product backstop

base_port=${BASE_PORT:-55432}
pg_port=$base_port
redis_port=$((base_port + 1)); replica_port=$((base_port + 2))
s1=$((base_port + 3)); s2=$((base_port + 4)); s3=$((base_port + 5))
metrics_port=${METRICS_PORT:-9847}
work=$(mktemp -d /tmp/backstop-dev-XXXXXX)
chmod 777 "$work"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  echo "dev-up: stopping throwaway servers"
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  for p in $s1 $s2 $s3 $replica_port $redis_port; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "dev-up: PostgreSQL on 127.0.0.1:$pg_port (data in $work/pg)"
as_pg "$pgbin/initdb" -D "$work/pg" -U postgres -A trust >/dev/null
cat >> "$work/pg/postgresql.conf" <<CONF
port = $pg_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
wal_level = replica
max_wal_senders = 5
CONF
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
"$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE psscript" >/dev/null
"$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d psscript -qc \
  "CREATE TABLE scripts (id serial PRIMARY KEY, name text, body text); INSERT INTO scripts (name, body) SELECT 'script ' || i, repeat('x', 100) FROM generate_series(1, 1000) i" >/dev/null

echo "dev-up: Redis master 127.0.0.1:$redis_port, replica :$replica_port, Sentinels :$s1 :$s2 :$s3"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --dbfilename master.rdb --daemonize yes --logfile "$work/redis-master.log" --save ""
redis-server --port "$replica_port" --bind 127.0.0.1 --dir "$work" --dbfilename replica.rdb --daemonize yes --logfile "$work/redis-replica.log" --replicaof 127.0.0.1 "$redis_port" --save ""
for p in $s1 $s2 $s3; do
  cat > "$work/sentinel-$p.conf" <<CONF
port $p
bind 127.0.0.1
sentinel monitor mymaster 127.0.0.1 $redis_port 2
sentinel down-after-milliseconds mymaster 5000
sentinel failover-timeout mymaster 30000
CONF
  redis-sentinel "$work/sentinel-$p.conf" --daemonize yes --logfile "$work/sentinel-$p.log" --dir "$work"
done
redis-cli -p "$redis_port" mset greeting hello counter 1 >/dev/null

mkdir -p "$work/backups"
export BACKUP_DIR="$work/backups"
export PGHOST=127.0.0.1 PGPORT=$pg_port PGUSER=postgres PGDATABASE=psscript
export REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port
export REDIS_SENTINELS="127.0.0.1:$s1,127.0.0.1:$s2,127.0.0.1:$s3" REDIS_SENTINEL_MASTER=mymaster
export METRICS_LISTEN="127.0.0.1:$metrics_port"
export HEALTH_CHECK_INTERVAL=${HEALTH_CHECK_INTERVAL:-15s}

echo "dev-up: backups in $BACKUP_DIR"
echo "dev-up: metrics at http://127.0.0.1:$metrics_port/metrics  (Ctrl-C to stop)"
echo "dev-up: in another shell, with the same variables: .build/debug/backstop health"
.build/debug/backstop serve
