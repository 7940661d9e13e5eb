#!/usr/bin/env bash
# Benchmarks `backstop restore postgres` against the plain `gunzip -c DUMP | psql` into an
# empty database, on the same dump, in the same run, on a throwaway PostgreSQL. Both load the
# same plain-SQL dump through psql with ON_ERROR_STOP; backstop also creates the database and
# renames it into place (its default, nothing-lost flow), which is part of what is timed.
# Each side runs ROUNDS times, alternating; prints every time, the best of each and the ratio
# (backstop / plain; target: <= 1.0). Never fails on a number.
#
#   SIZE_MB=300 ROUNDS=3 bench/restore-postgres.sh
#   BACKSTOP_BIN=.build/debug/backstop bench/restore-postgres.sh   # skip the release build
. "$(dirname "$0")/lib.sh"
SIZE_MB=${SIZE_MB:-200}
ROUNDS=${ROUNDS:-3}
BIN=${BACKSTOP_BIN:-$(./scripts/build-release.sh 2>/dev/null)}
pgbin=$PGBIN
port=${PORT:-45433}
bench_workdir restore
bench_pg_start "$work/pg" "$port" "max_wal_size = 4GB"
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres BACKUP_DIR="$work/backups" BACKUP_POSTGRES_BIN="$pgbin"
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "making a ~${SIZE_MB} MB database and its dump …"
bench_events_db bench "$SIZE_MB"
psql -d bench >/dev/null <<SQL
CREATE INDEX events_kind ON events (kind);
CREATE TABLE small (id serial PRIMARY KEY, name text);
INSERT INTO small (name) SELECT 'n' || g FROM generate_series(1, 10000) g;
SQL
BACKUP_POSTGRES_DATABASES=bench "$BIN" backup postgres full >/dev/null
dump=$(ls "$BACKUP_DIR"/postgres/bench_full_*.sql.gz)
echo "dump: $dump ($(du -h "$dump" | cut -f1) compressed, $(gunzip -c "$dump" | wc -c | awk '{printf "%.0f MB", $1/1048576}') SQL)"

now() { date +%s.%N; }
declare -a PLAIN BACKSTOP
for round in $(seq 1 "$ROUNDS"); do
  psql -d postgres -c "CREATE DATABASE plain_$round" >/dev/null
  t0=$(now)
  gunzip -c "$dump" | psql -d "plain_$round" >/dev/null
  t1=$(now)
  PLAIN+=("$(echo "$t1 - $t0" | bc)")
  psql -d postgres -c "DROP DATABASE plain_$round" >/dev/null

  t0=$(now)
  "$BIN" restore postgres "$dump" --database "restored_$round" --yes >/dev/null
  t1=$(now)
  BACKSTOP+=("$(echo "$t1 - $t0" | bc)")
  rows=$(psql -At -d "restored_$round" -c "SELECT count(*) FROM events")
  psql -d postgres -c "DROP DATABASE restored_$round" >/dev/null
  printf "round %d: gunzip -c | psql %7.2f s   backstop restore postgres %7.2f s   (%s rows)\n" "$round" "${PLAIN[-1]}" "${BACKSTOP[-1]}" "$rows"
done
best() { printf "%s\n" "$@" | sort -g | head -1; }
bp=$(best "${PLAIN[@]}"); bb=$(best "${BACKSTOP[@]}")
printf "\nbest of %d: gunzip -c | psql %.2f s, backstop restore postgres %.2f s, ratio backstop/plain = %.3f (target <= 1.0)\n" \
  "$ROUNDS" "$bp" "$bb" "$(echo "$bb / $bp" | bc -l)"
