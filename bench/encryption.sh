#!/usr/bin/env bash
# Benchmarks encryption at rest on the same data in the same run, on a throwaway PostgreSQL:
#   1. `backstop backup postgres full` without and with BACKUP_ENCRYPTION_RECIPIENTS
#      (gzip vs gzip + age; goal: ratio <= 1.05),
#   2. `backstop restore postgres` of the plain dump vs of the encrypted dump (decrypt + restore).
# Each side runs ROUNDS times, alternating; prints every time, the best of each and the
# ratios (encrypted / plain). Never fails on a number.
#
#   SIZE_MB=200 ROUNDS=3 bench/encryption.sh
#   BACKSTOP_BIN=.build/debug/backstop bench/encryption.sh   # skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
SIZE_MB=${SIZE_MB:-200}
ROUNDS=${ROUNDS:-3}
BIN=${BACKSTOP_BIN:-$(./scripts/build-release.sh 2>/dev/null)}

work=$(mktemp -d /tmp/backstop-bench-age-XXXXXX); chmod 777 "$work"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port=${PORT:-45437}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

as_pg "$pgbin/initdb" -D "$work/pg" -U postgres -A trust >/dev/null
printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nmax_wal_size = 4GB\n" "$port" "$work" >> "$work/pg/postgresql.conf"
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres BACKUP_POSTGRES_BIN="$pgbin" BACKUP_POSTGRES_DATABASES=bench
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
age-keygen -o "$work/key.txt" 2>/dev/null; chmod 600 "$work/key.txt"
recipient=$(age-keygen -y "$work/key.txt")

echo "making a ~${SIZE_MB} MB database …"
psql -d postgres -c "CREATE DATABASE bench" >/dev/null
psql -d bench >/dev/null <<SQL
CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, kind text, body text, doc jsonb);
INSERT INTO events SELECT g, '2020-01-01'::timestamptz + g * interval '1 second', 'kind' || (g % 17),
  repeat(md5(g::text), 4), jsonb_build_object('g', g, 'h', md5(g::text))
  FROM generate_series(1, ${SIZE_MB} * 2800) g;
SQL

now() { date +%s.%N; }
best() { printf "%s\n" "$@" | sort -g | head -1; }
declare -a PLAIN ENC RPLAIN RENC
for round in $(seq 1 "$ROUNDS"); do
  t0=$(now); BACKUP_DIR="$work/plain" "$BIN" backup postgres full >/dev/null; t1=$(now)
  PLAIN+=("$(echo "$t1 - $t0" | bc)")
  t0=$(now); BACKUP_DIR="$work/enc" BACKUP_ENCRYPTION_RECIPIENTS="$recipient" "$BIN" backup postgres full >/dev/null; t1=$(now)
  ENC+=("$(echo "$t1 - $t0" | bc)")
  printf "backup round %d: gzip %7.2f s   gzip+age %7.2f s\n" "$round" "${PLAIN[-1]}" "${ENC[-1]}"
done
pdump=$(ls "$work"/plain/postgres/bench_full_*.sql.gz | tail -1)
edump=$(ls "$work"/enc/postgres/bench_full_*.sql.gz.age | tail -1)
echo "dumps: $(du -h "$pdump" | cut -f1) plain, $(du -h "$edump" | cut -f1) encrypted"
for round in $(seq 1 "$ROUNDS"); do
  t0=$(now); BACKUP_DIR="$work/plain" "$BIN" restore postgres "$pdump" --database "rp_$round" --yes >/dev/null; t1=$(now)
  RPLAIN+=("$(echo "$t1 - $t0" | bc)")
  psql -d postgres -c "DROP DATABASE rp_$round" >/dev/null
  t0=$(now); BACKUP_DIR="$work/enc" BACKUP_ENCRYPTION_IDENTITY_FILE="$work/key.txt" "$BIN" restore postgres "$edump" --database "re_$round" --yes >/dev/null; t1=$(now)
  RENC+=("$(echo "$t1 - $t0" | bc)")
  psql -d postgres -c "DROP DATABASE re_$round" >/dev/null
  printf "restore round %d: plain %7.2f s   decrypt+restore %7.2f s\n" "$round" "${RPLAIN[-1]}" "${RENC[-1]}"
done
bp=$(best "${PLAIN[@]}"); be=$(best "${ENC[@]}"); rp=$(best "${RPLAIN[@]}"); re=$(best "${RENC[@]}")
printf "\nbest of %d: backup gzip %.2f s, gzip+age %.2f s, ratio = %.3f (goal <= 1.05)\n" "$ROUNDS" "$bp" "$be" "$(echo "$be / $bp" | bc -l)"
printf "best of %d: restore plain %.2f s, decrypt+restore %.2f s, ratio = %.3f\n" "$ROUNDS" "$rp" "$re" "$(echo "$re / $rp" | bc -l)"
