# Shared set-up of the bench scripts, sourced first thing (it turns on `set -euo pipefail` and
# makes the repository root the working folder):
#   . "$(dirname "$0")/lib.sh"
#   bench_workdir NAME                 -> $work, a scratch folder removed at exit
#   bench_pg_start DIR PORT [LINE...]  -> a throwaway PostgreSQL (as the postgres user when
#                                         root) on 127.0.0.1:PORT, postgresql.conf LINEs added,
#                                         stopped at exit
#   bench_on_exit 'COMMAND'            -> run at exit, newest first
#   bench_events_db NAME SIZE_MB       -> database NAME holding a table `events` of about SIZE_MB
#                                         MB of plain dump (mixed text, timestamps, jsonb)
# Also sets PATH for the Swift toolchain, $PGBIN and as_pg.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/opt/swift/usr/bin:$PATH"
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

_bench_exit=()
bench_on_exit() { _bench_exit+=("$1"); }
_bench_cleanup() {
  local i
  for ((i = ${#_bench_exit[@]} - 1; i >= 0; i--)); do eval "${_bench_exit[i]}" >/dev/null 2>&1 || true; done
}
trap _bench_cleanup EXIT

bench_workdir() {
  work=$(mktemp -d "/tmp/backstop-bench-$1-XXXXXX")
  chmod 777 "$work"
  if [ "${KEEP:-0}" = 1 ]; then bench_on_exit "echo 'kept $work' >&2"; else bench_on_exit "rm -rf '$work'"; fi
}

bench_pg_start() {
  local dir=$1 port=$2
  shift 2
  [ -x "$PGBIN/initdb" ] || { echo "PostgreSQL server programs not found: apt-get install -y postgresql" >&2; exit 2; }
  as_pg "$PGBIN/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  {
    printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$port" "$(dirname "$dir")"
    if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi
  } >> "$dir/postgresql.conf"
  bench_on_exit "as_pg '$PGBIN/pg_ctl' -D '$dir' -m immediate stop"
  as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir.log" -w start >/dev/null
}

bench_events_db() {
  local db=$1 size_mb=$2
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db" >/dev/null
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL
CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, kind text, body text, doc jsonb);
INSERT INTO events SELECT g, '2020-01-01'::timestamptz + g * interval '1 second', 'kind' || (g % 17),
  repeat(md5(g::text), 4), jsonb_build_object('g', g, 'h', md5(g::text))
  FROM generate_series(1, ${size_mb} * 2800) g;
SQL
}
