#!/usr/bin/env bash
# PostgreSQL full-backup benchmark: how `backstop backup postgres full` compares with the old
# `pg_dump | gzip` pipeline and with the floor (`pg_dump > /dev/null`), on one machine, in one run.
#
# It starts a throw-away PostgreSQL cluster in a temporary folder (loopback, free port), fills a
# database with a few hundred MB of realistic mixed data (text, numbers, timestamps, JSON,
# arrays, enums, some incompressible bytea), then times, on the same database:
#   1. pg_dump > /dev/null               the floor: what the dump alone costs
#   2. pg_dump | gzip > file             what the old scripts did (gzip -6)
#   3. pg_dump | pigz -p 2 > file        reference, when pigz is installed
#   4. backstop backup postgres full     gzip (parallel blocks) + SHA-256 + fsync + rename + .meta
# and prints wall times, ratios and output sizes. Numbers are printed, never judged: this never
# fails on a number (target from issue 3: backstop <= 0.75x the old pipeline, file <= 1.05x gzip -6).
#
# Usage: bench/postgres-dump.sh [SIZE_MB]           (default 300 MB of pg_dump output)
# Environment:
#   BACKSTOP_BINARY   backstop to test (default .build/release/backstop, built if missing)
#   BENCH_LEVELS      also run backstop at these gzip levels, e.g. "1 3 4 5 6 9" (level sweep)
#   BENCH_REPEAT      runs per measurement, the best is kept (default 1)
#   KEEP=1            keep the temporary folder
set -euo pipefail

SIZE_MB=${1:-${BENCH_SIZE_MB:-300}}
REPEAT=${BENCH_REPEAT:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BACKSTOP=${BACKSTOP_BINARY:-$ROOT/.build/release/backstop}
if [[ ! -x $BACKSTOP ]]; then
    echo "building $BACKSTOP (swift build -c release --product backstop)…" >&2
    (cd "$ROOT" && swift build -c release --product backstop >&2)
fi
. "$ROOT/bench/lib.sh"
bench_workdir dump
WORK=$work
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "== cluster: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, data in $WORK" >&2
bench_pg_start "$WORK/data" "$PORT" "fsync = off" "synchronous_commit = off" "shared_buffers = 128MB" "max_wal_size = 4GB"

export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=bench
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE bench"

# About 270 bytes of dump per order row, 215 per event row, 180 per blob row: size the tables from SIZE_MB.
ORDERS=$(( SIZE_MB * 1024 * 1024 * 6 / 10 / 270 ))
EVENTS=$(( SIZE_MB * 1024 * 1024 * 3 / 10 / 215 ))
BLOBS=$(( SIZE_MB * 1024 * 1024 / 10 / 180 ))
echo "== building the database: $ORDERS orders, $EVENTS events, $BLOBS blobs (≈ $SIZE_MB MB of SQL)…" >&2
t0=$(date +%s)
"${PSQL[@]}" <<SQL
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped', 'delivered', 'returned', 'cancelled');
CREATE TABLE words AS SELECT i, w FROM unnest(string_to_array(
  'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu ' ||
  'invoice payment refund shipping address customer product warehouse discount premium standard express review rating support ticket Zürich München café naïve São Paulo 東京 Москва',
  ' ')) WITH ORDINALITY AS t(w, i);
CREATE FUNCTION word(n bigint) RETURNS text LANGUAGE sql IMMUTABLE AS \$\$ SELECT w FROM words WHERE i = 1 + (n % 58) \$\$;
CREATE TABLE orders (
  id bigserial PRIMARY KEY, customer text, email text, created_at timestamptz, status order_status,
  amount numeric(12,2), items jsonb, tags text[], note text);
INSERT INTO orders (customer, email, created_at, status, amount, items, tags, note)
SELECT initcap(word(g * 7)) || ' ' || initcap(word(g * 13 + 5)),
       lower(word(g * 7)) || '.' || lower(word(g * 13 + 5)) || (g % 997) || '@example.com',
       '2020-01-01'::timestamptz + (g * 37 % 157680000) * interval '1 second',
       (enum_range(NULL::order_status))[(1 + g % 6)::int],
       round(((g * 7919) % 100000) / 100.0, 2),
       jsonb_build_object('sku', 'SKU-' || (g % 5000), 'qty', 1 + g % 9, 'price', ((g * 31) % 10000) / 100.0,
                          'gift', g % 11 = 0, 'options', jsonb_build_array(word(g), word(g + 3))),
       ARRAY[word(g), word(g * 3), 'tag' || (g % 40)],
       word(g) || ' ' || word(g * 5) || ' ' || word(g * 11) || ' ' || md5(g::text) || ' ' || word(g * 17) || ' ' || word(g * 19)
FROM generate_series(1::bigint, $ORDERS) g;
CREATE TABLE events (id bigserial PRIMARY KEY, order_id bigint, at timestamptz, kind text, payload json);
INSERT INTO events (order_id, at, kind, payload)
SELECT 1 + g % $ORDERS, '2021-06-01'::timestamptz + g * interval '3 seconds', word(g * 3),
       json_build_object('ip', '10.' || (g % 256) || '.' || (g * 7 % 256) || '.' || (g * 13 % 256),
                         'agent', 'Mozilla/5.0 (' || word(g) || ') ' || word(g + 1), 'ms', g % 1500,
                         'trace', md5((g * 3)::text) || md5((g * 5)::text), 'path', '/' || word(g) || '/' || word(g * 7) || '/' || (g % 1000))
FROM generate_series(1::bigint, $EVENTS) g;
CREATE TABLE blobs (id bigserial PRIMARY KEY, data bytea);
INSERT INTO blobs (data) SELECT decode(md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text) || md5((g + 3)::text) || md5((g + 4)::text) || md5((g + 5)::text), 'hex')
FROM generate_series(1::bigint, $BLOBS) g;
VACUUM ANALYZE;
SQL
echo "   built in $(( $(date +%s) - t0 )) s; database size $("${PSQL[@]}" -Atc "SELECT pg_size_pretty(pg_database_size('bench'))")" >&2

now() { date +%s.%N; }
best=""
measure() { # name, command…; keeps the best of REPEAT runs in $best
    local name=$1; shift
    best=""
    for ((r = 0; r < REPEAT; r++)); do
        sync
        local s e t
        s=$(now); "$@"; e=$(now)
        t=$(echo "$e - $s" | bc -l)
        if [[ -z $best ]] || (( $(echo "$t < $best" | bc -l) )); then best=$t; fi
    done
    printf '   %-34s %8.2f s\n' "$name" "$best" >&2
}

echo "== timing (best of $REPEAT; 2 cores shared with the server)" >&2
measure "pg_dump > /dev/null" bash -c "'$PGBIN/pg_dump' bench > /dev/null"
T_FLOOR=$best
measure "pg_dump | gzip" bash -c "set -o pipefail; '$PGBIN/pg_dump' bench | gzip > '$WORK/gzip.sql.gz'"
T_GZIP=$best
S_GZIP=$(stat -c %s "$WORK/gzip.sql.gz")
T_PIGZ="" S_PIGZ=""
if command -v pigz >/dev/null; then
    measure "pg_dump | pigz -p 2" bash -c "set -o pipefail; '$PGBIN/pg_dump' bench | pigz -p 2 > '$WORK/pigz.sql.gz'"
    T_PIGZ=$best
    S_PIGZ=$(stat -c %s "$WORK/pigz.sql.gz")
fi
run_backstop() { # level
    rm -rf "$WORK/backups"
    BACKUP_DIR="$WORK/backups" BACKUP_POSTGRES_DATABASES=bench BACKUP_POSTGRES_BIN="$PGBIN" BACKUP_COMPRESSION_LEVEL=$1 \
        "$BACKSTOP" backup postgres full > "$WORK/backstop.out"
}
measure "backstop backup postgres full" run_backstop "${BACKUP_COMPRESSION_LEVEL:-6}"
T_BACKSTOP=$best
FILE=$(ls "$WORK"/backups/postgres/bench_full_*.sql.gz)
S_BACKSTOP=$(stat -c %s "$FILE")
S_RAW=$(gzip -dc "$FILE" | wc -c)
gzip -t "$FILE"

ratio() { echo "scale=3; $1 / $2" | bc -l | sed 's/^\./0./'; }
echo
echo "pg_dump output (uncompressed):  $S_RAW bytes"
echo "floor   pg_dump > /dev/null:    ${T_FLOOR} s"
echo "old     pg_dump | gzip:         ${T_GZIP} s   $S_GZIP bytes"
[[ -n $T_PIGZ ]] && echo "ref     pg_dump | pigz -p 2:    ${T_PIGZ} s   $S_PIGZ bytes"
echo "backstop backup postgres full:  ${T_BACKSTOP} s   $S_BACKSTOP bytes (level ${BACKUP_COMPRESSION_LEVEL:-6}, SHA-256 included)"
echo
echo "time  backstop / (pg_dump | gzip):  $(ratio "$T_BACKSTOP" "$T_GZIP")   (target <= 0.75)"
echo "time  backstop / floor:             $(ratio "$T_BACKSTOP" "$T_FLOOR")"
echo "time  (pg_dump | gzip) / floor:     $(ratio "$T_GZIP" "$T_FLOOR")"
echo "size  backstop / gzip -6:           $(ratio "$S_BACKSTOP" "$S_GZIP")   (target <= 1.05)"

if [[ -n ${BENCH_LEVELS:-} ]]; then
    echo
    echo "level sweep (backstop, same database):"
    printf '  %-6s %10s %14s %12s %12s\n' level seconds bytes "vs gzip t" "vs gzip size"
    for level in $BENCH_LEVELS; do
        measure "backstop level $level" run_backstop "$level"
        f=$(ls "$WORK"/backups/postgres/bench_full_*.sql.gz)
        s=$(stat -c %s "$f")
        printf '  %-6s %10.2f %14d %12s %12s\n' "$level" "$best" "$s" "$(ratio "$best" "$T_GZIP")" "$(ratio "$s" "$S_GZIP")"
    done
fi
