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
. "$(dirname "$0")/lib.sh"
SIZE_MB=${SIZE_MB:-200}
ROUNDS=${ROUNDS:-3}
BIN=${BACKSTOP_BIN:-$(./scripts/build-release.sh 2>/dev/null)}
bench_workdir age
bench_pg_start "$work/pg" "${PORT:-45437}" "max_wal_size = 4GB"
export PGHOST=127.0.0.1 PGPORT=${PORT:-45437} PGUSER=postgres BACKUP_POSTGRES_BIN="$PGBIN" BACKUP_POSTGRES_DATABASES=bench
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
age-keygen -o "$work/key.txt" 2>/dev/null; chmod 600 "$work/key.txt"
recipient=$(age-keygen -y "$work/key.txt")

echo "making a ~${SIZE_MB} MB database …"
bench_events_db bench "$SIZE_MB"

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
