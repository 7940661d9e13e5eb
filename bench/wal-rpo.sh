#!/usr/bin/env bash
# RPO of the WAL archive: for N (default 30) single-row commits, the time from the commit
# returning to pg_receivewal reporting the commit's LSN flushed (pg_stat_replication.flush_lsn),
# with serve's receiver as is, then with BACKUP_WAL_SYNCHRONOUS=true and
# synchronous_standby_names = 'backstop' (commits wait for the archive), in the same run.
# Also prints the commit latency of each mode (the price of RPO 0). Waits at most 5 s per
# commit (without --synchronous pg_receivewal flushes only when a segment completes).
# Root needed (the cluster runs as postgres). Never fails on a number.
. "$(dirname "$0")/lib.sh"
BIN=${BIN:-$PWD/.build/debug/backstop}
N=${N:-30}
bench_workdir rpo
port=$((20000 + RANDOM % 20000)); mport=$((port + 1))
serve_pid=""
bench_pg_start "$work/data" "$port" "wal_level = replica"
bench_on_exit '[ -n "$serve_pid" ] && kill "$serve_pid" && wait "$serve_pid"'
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
psql -qX -c "CREATE TABLE rpo(x int)"

run_mode() { # $1 = true|false
  BACKUP_DIR=$work/backups-$1 METRICS_LISTEN=127.0.0.1:$mport BACKUP_WAL_ARCHIVE=receivewal BACKUP_WAL_SYNCHRONOUS=$1 \
    REDIS_HOST=127.0.0.1 REDIS_PORT=1 BACKUP_SCHEDULE_FULL= BACKUP_SCHEDULE_INCREMENTAL= BACKUP_SCHEDULE_REDIS= \
    BACKUP_SCHEDULE_CLEANUP= BACKUP_SCHEDULE_DRILL= "$BIN" serve >"$work/serve-$1.log" 2>&1 &
  serve_pid=$!
  until [ "$(psql -AtX -c "SELECT count(*) FROM pg_stat_replication WHERE application_name='backstop'")" = "1" ]; do sleep 0.2; done
  if [ "$1" = true ]; then psql -qX -c "ALTER SYSTEM SET synchronous_standby_names = 'backstop'" -c "SELECT pg_reload_conf()" >/dev/null; sleep 1; fi
  python3 - "$N" "$1" <<'PY'
import subprocess, sys, time
n, mode = int(sys.argv[1]), sys.argv[2]
def q(sql): return subprocess.run(["psql", "-qAtX", "-c", sql], capture_output=True, text=True, check=True).stdout.strip()
rpo, commit = [], []
for i in range(n):
    t0 = time.monotonic()
    lsn = q(f"INSERT INTO rpo VALUES ({i}); SELECT pg_current_wal_lsn()")
    t1 = time.monotonic()
    commit.append(t1 - t0)
    while time.monotonic() - t1 < 5:
        if q(f"SELECT flush_lsn >= '{lsn}' FROM pg_stat_replication WHERE application_name='backstop'") == "t": break
        time.sleep(0.005)
    rpo.append(time.monotonic() - t1)
rpo.sort(); commit.sort()
med = lambda v: v[len(v) // 2]
print(f"synchronous={mode}: commit-to-durable median {med(rpo)*1000:.1f} ms, max {rpo[-1]*1000:.1f} ms; commit latency median {med(commit)*1000:.1f} ms")
print(f"RESULT {mode} {med(rpo)} {med(commit)}")
PY
  if [ "$1" = true ]; then psql -qX -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null; fi
  kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=""
  psql -qX -c "SELECT pg_drop_replication_slot('backstop')" >/dev/null 2>&1 || true
}
out=$( { run_mode false; run_mode true; } | tee /dev/stderr | grep '^RESULT')
python3 - "$out" <<'PY'
import sys
rows = {l.split()[1]: list(map(float, l.split()[2:])) for l in sys.argv[1].splitlines()}
a, s = rows["false"], rows["true"]
print(f"ratio (without / with --synchronous): commit-to-durable {a[0] / max(s[0], 1e-6):.1f}x, commit latency {a[1] / max(s[1], 1e-6):.2f}x")
PY
