#!/usr/bin/env bash
# Benchmarks Redis backups: fills a throwaway redis-server with SIZE_MB (default 300) MB of
# data, then in one run times, on the same data and machine:
#   old        the old scripts' way: redis-cli BGSAVE, wait until INFO persistence says
#              rdb_bgsave_in_progress:0 and LASTSAVE has moved, then gzip -c dump.rdb > FILE
#   bgsave     backstop backup redis with BACKUP_REDIS_METHOD=bgsave (REDIS_DATA_DIR)
#   replication backstop backup redis with BACKUP_REDIS_METHOD=replication (the default)
# printing wall seconds, CPU seconds (user+sys of the whole client process tree: /usr/bin/time
# counts every waited-for child, so redis-cli, gzip and sleep are in "old") and output sizes
# side by side, with backstop's ratios to the old way. The same gzip level (6, gzip's default)
# is used everywhere. The server's own fork (which serialises the RDB) is the same work in
# all three and is not in any client's CPU time. Never fails on a number.
#
# repl-diskless-sync-delay: the server runs with Redis 7's defaults (repl-diskless-sync yes,
# repl-diskless-sync-delay 5). Backstop's replication client does not send
# `REPLCONF capa eof` (SnapshotOptions.allowDiskless is false), so the server cannot stream
# diskless to it: it forks a disk BGSAVE at once and sends the file with a $<length> prefix.
# The delay applies only to diskless transfers, so it is never part of the cost here; the
# "replication" wall time below includes everything from connect to the renamed file.
. "$(dirname "$0")/lib.sh"
SIZE_MB=${SIZE_MB:-300}
PORT=${PORT:-46390}
BIN=${BACKSTOP_BIN:-$(./scripts/build-release.sh 2>/dev/null)}
bench_workdir redis
bench_on_exit 'redis-cli -p "$PORT" shutdown nosave'
mkdir -p "$work/data" "$work/old"
redis-server --port "$PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
  --dir "$work/data" --dbfilename dump.rdb --logfile "$work/redis.log" \
  --repl-diskless-sync yes --repl-diskless-sync-delay 5 >/dev/null
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Data: strings of hex digests (compress roughly like real cache payloads) and hashes,
# written by Lua in batches so no single script blocks for long.
keys=$((SIZE_MB * 1024 * 1024 / 200))
batch=100000
echo "filling Redis with ~${SIZE_MB} MB (${keys} keys)..."
for ((start = 1; start <= keys; start += batch)); do
  redis-cli -p "$PORT" EVAL "
    local s = tonumber(ARGV[1]); local e = math.min(s + tonumber(ARGV[2]) - 1, tonumber(ARGV[3]))
    for i = s, e do
      if i % 10 == 0 then
        redis.call('HSET', 'h:' .. i, 'a', redis.sha1hex(i .. 'a'), 'b', i, 'c', redis.sha1hex(i .. 'c'))
      else
        redis.call('SET', 'k:' .. i, redis.sha1hex(i .. 'x') .. redis.sha1hex(i .. 'y') .. redis.sha1hex(i .. 'z') .. ':' .. i)
      end
    end
    return e" 0 "$start" "$batch" "$keys" >/dev/null
done
echo "used_memory: $(redis-cli -p "$PORT" info memory | grep '^used_memory_human' | cut -d: -f2 | tr -d '\r')"

measure() { # name command... -> "wall cpu" into $work/NAME.time
  local name=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1 || echo "($name exited non-zero: see below)"
}

old_way() {
  local before
  before=$(redis-cli -p "$PORT" LASTSAVE)
  redis-cli -p "$PORT" BGSAVE >/dev/null
  while :; do
    info=$(redis-cli -p "$PORT" info persistence)
    if grep -q '^rdb_bgsave_in_progress:0' <<<"$info" && [ "$(redis-cli -p "$PORT" LASTSAVE)" != "$before" ]; then break; fi
    sleep 1
  done
  gzip -6 -c "$work/data/dump.rdb" > "$work/old/redis_old.rdb.gz"
}
export -f old_way
export PORT work

sync; echo "timing..."
measure old bash -c old_way
common=(env BACKUP_COMPRESSION_LEVEL=6 REDIS_HOST=127.0.0.1 REDIS_PORT="$PORT")
measure bgsave "${common[@]}" BACKUP_DIR="$work/b-bgsave" BACKUP_REDIS_METHOD=bgsave REDIS_DATA_DIR="$work/data" "$BIN" backup redis
measure replication "${common[@]}" BACKUP_DIR="$work/b-repl" BACKUP_REDIS_METHOD=replication "$BIN" backup redis

size_of() { stat -c %s "$@" 2>/dev/null | head -1 || echo 0; }
rdb=$(size_of "$work/data/dump.rdb")
declare -A wall cpu size
for m in old bgsave replication; do
  read -r w u s < "$work/$m.time" || { w=0; u=0; s=0; }
  wall[$m]=$w; cpu[$m]=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
done
size[old]=$(size_of "$work/old/redis_old.rdb.gz")
size[bgsave]=$(size_of "$work"/b-bgsave/redis/redis_*.rdb.gz)
size[replication]=$(size_of "$work"/b-repl/redis/redis_*.rdb.gz)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "n/a" }'; }
echo
echo "RDB: $((rdb / 1048576)) MiB uncompressed, $(nproc) cores, gzip level 6"
printf "%-12s %10s %10s %14s   %s\n" method "wall s" "CPU s" "output bytes" "vs old (wall / CPU / size)"
for m in old bgsave replication; do
  vs=""
  [ "$m" != old ] && vs="$(ratio "${wall[$m]}" "${wall[old]}") / $(ratio "${cpu[$m]}" "${cpu[old]}") / $(ratio "${size[$m]}" "${size[old]}")"
  printf "%-12s %10s %10s %14s   %s\n" "$m" "${wall[$m]}" "${cpu[$m]}" "${size[$m]}" "$vs"
done
for m in bgsave replication; do
  grep -q 'success' "$work/$m.log" || { echo "--- $m log:"; cat "$work/$m.log"; }
done
