#!/usr/bin/env bash
# Scrape throughput of `backstop serve` on /metrics: plain HTTP (the baseline), basic auth
# (bcrypt cost 10, verdict cached after the first request), and TLS + basic auth with
# keep-alive, each with wrk (1 thread, 4 connections, 5 s) in this one run. Prints requests/s
# and the ratio to the baseline, and the time of one scrape with a new TLS connection (curl).
# BIN=path/to/backstop skips the release build. Never fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
BIN=${BIN:-$(./scripts/build-release.sh 2>/dev/null)}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }
work=$(mktemp -d /tmp/backstop-access-XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/ca.key" -out "$work/ca.crt" \
  -days 1 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/server.key" -out "$work/server.csr" \
  -subj "/CN=127.0.0.1" 2>/dev/null
echo "subjectAltName=IP:127.0.0.1" > "$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
  -out "$work/server.crt" -days 1 -extfile "$work/ext.cnf" 2>/dev/null
hash=$(htpasswd -nbBC 10 bench benchpw | cut -d: -f2-)
printf 'basic_auth_users:\n  bench: "%s"\n' "$hash" > "$work/auth.yml"
printf 'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  bench: "%s"\n' "$hash" > "$work/tls.yml"
auth="Authorization: Basic $(printf 'bench:benchpw' | base64)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start() {
  BACKUP_DIR="$work/backups" METRICS_LISTEN="127.0.0.1:$port" WEB_CONFIG_FILE="$1" PGHOST=127.0.0.1 PGPORT=1 \
    BACKUP_SCHEDULE_FULL= BACKUP_SCHEDULE_INCREMENTAL= BACKUP_SCHEDULE_REDIS= BACKUP_SCHEDULE_CLEANUP= BACKUP_SCHEDULE_DRILL= \
    "$BIN" serve >"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.1; done
  echo "serve did not start: $(cat "$work/serve.log")" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
rate() { wrk -t1 -c4 -d5s "$@" | awk '/Requests\/sec/ {print $2}'; }

start ""
plain=$(rate "http://127.0.0.1:$port/metrics")
stop
start "$work/auth.yml"
basic=$(rate -H "$auth" "http://127.0.0.1:$port/metrics")
stop
start "$work/tls.yml"
tls=$(rate -H "$auth" "https://127.0.0.1:$port/metrics")
curl -s -o /dev/null --cacert "$work/ca.crt" -H "$auth" "https://127.0.0.1:$port/metrics"
one=$(for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' --cacert "$work/ca.crt" -H "$auth" "https://127.0.0.1:$port/metrics"; done | sort -n | sed -n 3p)
stop

awk -v p="$plain" -v b="$basic" -v t="$tls" -v o="$one" 'BEGIN {
  printf "plain HTTP           %10.0f req/s  1.00\n", p
  printf "basic auth (bcrypt)  %10.0f req/s  %.2f\n", b, b / p
  printf "TLS + basic auth     %10.0f req/s  %.2f (keep-alive)\n", t, t / p
  printf "one scrape, new TLS connection: %.1f ms (median of 5)\n", o * 1000
}'
