#!/usr/bin/env bash
# Benchmarks /metrics: wrk for 10 s at 20 connections against `backstop serve` (release
# build) and, in the same run on the same machine, against prometheus-postgres-exporter and
# prometheus-redis-exporter scraping the same throwaway servers. Prints requests/s, p99
# latency and resident memory side by side, with backstop's ratios to each exporter.
# Resident memory is read from /proc/PID/status once start-up has settled (SETTLE seconds,
# default 15: backstop's first health round and its start-up memory release are done) and again
# after each process's load run; each figure is VmRSS = RssAnon (heap, stacks, written data)
# + RssFile (mapped code and read-only data). BACKSTOP_BIN skips the release build.
#
# Then, in the same run, two comparisons, ROUNDS (default 5) wrk runs each, alternating the
# order every round (the machine is shared), medians reported, same -t2 -c20 throughout:
# - before/after: `backstop serve` of BASELINE (a git revision, default 2540f14, the tree
#   before issue #13's work; built by scripts/build-baseline.sh, BASELINE_BIN skips that
#   build, BASELINE=none skips the comparison) beside this checkout's;
# - registries: bench/metrics-bench (release) serving the families and label sets of this
#   run's live `/metrics` through Backstop's libmicrohttpd server from the hand-written
#   registry and from swift-prometheus (REGISTRIES=0 skips it; METRICS_BENCH_BIN skips the build).
# Never fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
./scripts/install-deps.sh
for p in prometheus-postgres-exporter prometheus-redis-exporter; do
  command -v "$p" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
BIN=${BACKSTOP_BIN:-$(./scripts/build-release.sh 2>/dev/null)}
BASELINE=${BASELINE:-2540f14}
if [ "$BASELINE" != none ]; then BASELINE_BIN=${BASELINE_BIN:-$(./scripts/build-baseline.sh "$BASELINE" 2>/dev/null)}; fi
REGISTRIES=${REGISTRIES:-1}
if [ "$REGISTRIES" = 1 ] && [ -z "${METRICS_BENCH_BIN:-}" ]; then
  swift build -c release --package-path bench/metrics-bench --static-swift-stdlib >&2
  METRICS_BENCH_BIN="$(swift build -c release --package-path bench/metrics-bench --show-bin-path)/metrics-bench"
fi
ROUNDS=${ROUNDS:-5}

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

# --- Same run, alternating rounds: before/after and the two registries ----------------------
# p99 as wrk prints it (us, ms, s) in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A URL PID RUNS_RPS RUNS_P99 IDLE
rounds() { # names...: ROUNDS wrk runs of each, the order reversed every other round
  local order=("$@") r name out
  for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2 == 0)); then order=(); for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done; else order=("$@"); fi
    for name in "${order[@]}"; do
      out=$(wrk -t2 -c20 -d"$DURATION" --latency "${URL[$name]}")
      RUNS_RPS[$name]+=" $(echo "$out" | awk '/Requests\/sec/ {print $2}')"
      RUNS_P99[$name]+=" $(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")"
      sleep 2
    done
  done
}
report() { # title names...
  local title=$1; shift
  printf "\n%s (wrk -t2 -c20 -d%s, %s rounds alternating, medians)\n" "$title" "$DURATION" "$ROUNDS"
  printf "%-22s %12s %10s %22s   %s\n" "" "requests/s" "p99 ms" "idle RSS MiB" "runs: requests/s | p99 ms"
  local name
  for name in "$@"; do
    # shellcheck disable=SC2086
    printf "%-22s %12s %10s %22s   %s |%s\n" "$name" "$(median ${RUNS_RPS[$name]})" "$(median ${RUNS_P99[$name]})" "${IDLE[$name]}" "${RUNS_RPS[$name]# }" "${RUNS_P99[$name]}"
  done
}

if [ "$BASELINE" != none ]; then
  BACKUP_DIR="$work/backups-baseline" PGHOST=127.0.0.1 PGPORT=45432 PGUSER=postgres REDIS_HOST=127.0.0.1 REDIS_PORT=46379 \
    METRICS_LISTEN=127.0.0.1:49848 HEALTH_CHECK_INTERVAL=5s "$BASELINE_BIN" serve >"$work/baseline.log" 2>&1 &
  pids+=($!); PID[before]=$!
  sleep "$SETTLE"
  URL[before]=http://127.0.0.1:49848/metrics; URL[after]=http://127.0.0.1:49847/metrics; PID[after]=${pids[0]}
  IDLE[before]=$(rss "${PID[before]}"); IDLE[after]=$idle_backstop  # read before its first load run
  rounds before after
  report "backstop serve before ($BASELINE) and after (this checkout)" before after
  # shellcheck disable=SC2086
  awk -v b="$(median ${RUNS_RPS[before]})" -v a="$(median ${RUNS_RPS[after]})" -v pb="$(median ${RUNS_P99[before]})" -v pa="$(median ${RUNS_P99[after]})" \
    -v mb="$(mib "${IDLE[before]}")" -v ma="$(mib "${IDLE[after]}")" 'BEGIN {
    printf "after/before: throughput %.2fx, p99 %.2fx, idle RSS %.2fx\n", a/b, pa/pb, ma/mb }'
fi

if [ "$REGISTRIES" = 1 ]; then
  curl -sf http://127.0.0.1:49847/metrics >"$work/exposition.txt"
  "$METRICS_BENCH_BIN" --registry backstop --exposition "$work/exposition.txt" --listen 127.0.0.1:49850 >"$work/bench-backstop.log" 2>&1 &
  pids+=($!); PID[hand-written]=$!
  "$METRICS_BENCH_BIN" --registry prometheus --exposition "$work/exposition.txt" --listen 127.0.0.1:49851 >"$work/bench-prometheus.log" 2>&1 &
  pids+=($!); PID[swift-prometheus]=$!
  sleep 3
  cat "$work/bench-backstop.log" "$work/bench-prometheus.log"
  URL[hand-written]=http://127.0.0.1:49850/metrics; URL[swift-prometheus]=http://127.0.0.1:49851/metrics
  for name in hand-written swift-prometheus; do
    echo "$name: $(curl -sf "${URL[$name]}" | grep -c '^# TYPE') families, $(curl -sf "${URL[$name]}" | grep -vc '^#') samples, $(curl -sf "${URL[$name]}" | wc -c) bytes per scrape"
  done
  echo "live serve: $(grep -c '^# TYPE' "$work/exposition.txt") families, $(grep -vc '^#' "$work/exposition.txt") samples, $(wc -c <"$work/exposition.txt") bytes"
  IDLE[hand-written]=$(rss "${PID[hand-written]}"); IDLE[swift-prometheus]=$(rss "${PID[swift-prometheus]}")
  rounds hand-written swift-prometheus
  report "registries behind the same libmicrohttpd server" hand-written swift-prometheus
  # shellcheck disable=SC2086
  awk -v h="$(median ${RUNS_RPS[hand-written]})" -v p="$(median ${RUNS_RPS[swift-prometheus]})" -v hp="$(median ${RUNS_P99[hand-written]})" \
    -v pp="$(median ${RUNS_P99[swift-prometheus]})" -v hm="$(mib "${IDLE[hand-written]}")" -v pm="$(mib "${IDLE[swift-prometheus]}")" 'BEGIN {
    printf "swift-prometheus/hand-written: throughput %.2fx, p99 %.2fx, idle RSS %.2fx\n", p/h, pp/hp, pm/hm
    printf "swift-prometheus %s the target (>= 10000 requests/s and p99 < 5 ms)\n", (p >= 10000 && pp < 5) ? "holds" : "does not hold" }'
fi
