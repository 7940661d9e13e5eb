#!/usr/bin/env bash
# Restore time of a base backup + MB (default 1024) of archived WAL:
#   backstop restore postgres --data-dir D --latest --start (checks, unpack, pg_verifybackup, recovery)
# against the same steps done by hand in the same run (tar -xzf both tars, restore_command
# 'gunzip -c ARCHIVE/%f.gz > %p', pg_ctl start, wait for promotion). Prints both wall-clock
# times and the ratio. Runs a throw-away PostgreSQL cluster as the postgres user (root needed).
# BIN=path/to/backstop skips the debug build lookup. Never fails on a number.
. "$(dirname "$0")/lib.sh"
BIN=${BIN:-$PWD/.build/debug/backstop}
MB=${MB:-1024}
bench_workdir pitr
port=$((20000 + RANDOM % 20000)); p1=$((port + 1)); p2=$((port + 2))
bench_on_exit "for d in '$work/r-backstop' '$work/r-hand'; do as_pg '$PGBIN/pg_ctl' -D \"\$d\" -m immediate stop; done"
mkdir -p "$work/backups/postgres/wal"; chown -R postgres: "$work/backups"; chmod -R 777 "$work/backups"
bench_pg_start "$work/data" "$port" "wal_level = replica" "archive_mode = on" \
  "archive_command = '$BIN wal push --backup-dir $work/backups %p'" "fsync = off" "max_wal_size = 4GB"
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
"$BIN" backup postgres incremental --backup-dir "$work/backups" >/dev/null
echo "generating ~$MB MB of WAL after the base backup"
psql -qX -c "CREATE TABLE filler(x bigint, pad text)"
for _ in $(seq 1 $((MB / 64))); do psql -qX -c "INSERT INTO filler SELECT g, repeat('x', 200) FROM generate_series(1, 230000) g"; done
last=$(psql -AtX -c "SELECT pg_walfile_name(pg_current_wal_lsn())"); psql -qX -c "SELECT pg_switch_wal()" >/dev/null
while [ ! -f "$work/backups/postgres/wal/$last.meta" ]; do sleep 0.5; done
segments=$(ls "$work/backups/postgres/wal/" | grep -c '\.gz$')
echo "archive: $segments segments"

t0=$(date +%s.%N)
"$BIN" restore postgres --backup-dir "$work/backups" --data-dir "$work/r-backstop" --latest --start --port $p1 --yes >/dev/null
t1=$(date +%s.%N)

base=$(ls -d "$work"/backups/postgres/wal_*/ | head -1)
mkdir -p "$work/r-hand/pg_wal"; chmod 700 "$work/r-hand"
tar -xzf "$base/base.tar.gz" -C "$work/r-hand"; tar -xzf "$base/pg_wal.tar.gz" -C "$work/r-hand/pg_wal"
touch "$work/r-hand/recovery.signal"
echo "restore_command = 'gunzip -c $work/backups/postgres/wal/%f.gz > %p'" >> "$work/r-hand/postgresql.auto.conf"
chmod -R a+r "$work/backups"; chown -R postgres: "$work/r-hand"
as_pg "$PGBIN/pg_ctl" -D "$work/r-hand" -l "$work/hand.log" -o "-p $p2 -c archive_mode=off" -w -t 3600 start >/dev/null
until [ "$(psql -AtX -p $p2 -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = "f" ]; do sleep 0.3; done
t2=$(date +%s.%N)

python3 - "$t0" "$t1" "$t2" "$segments" <<'PY'
import sys
t0, t1, t2, n = map(float, sys.argv[1:])
b, h = t1 - t0, t2 - t1
print(f"backstop restore --latest --start: {b:.1f} s   by hand (tar + gunzip restore_command): {h:.1f} s   ratio {b / h:.2f}x   ({int(n)} segments)")
PY
