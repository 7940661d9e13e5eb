#!/usr/bin/env bash
# Brings the example stack (deploy/docker-compose.yml) up with podman-compose on a machine that
# reaches no container registry, only Debian's mirror:
#   1. Backstop's image, localhost/backstop:local, by scripts/build-image.sh;
#   2. the stand-ins for the registry images, built from deploy/local/<service>/Containerfile
#      (Debian packages on the same local bookworm base; the layer cache makes reruns quick);
#   3. `podman-compose -f deploy/docker-compose.yml -f deploy/local/compose.local.yml up -d`,
#      PostgreSQL first: podman-compose ignores `condition: service_healthy` with podman older
#      than 4.6 (Debian's is 4.3.1), so this script waits until PostgreSQL accepts connections
#      before the services that need it start;
#   4. waits until Backstop answers /healthz on the host.
# Grafana is not started (Debian has no package for it; compose.local.yml puts it in a profile).
# scripts/compose-down-local.sh takes the stack down again, volumes included.
#
#   POSTGRES_PASSWORD=... REDIS_PASSWORD=... scripts/compose-up-local.sh
#   BACKSTOP_BIN=.build/release/backstop scripts/compose-up-local.sh   # skip the release build
#
# podman-compose hands every service variable to `podman create` as `-e NAME=value`, so the
# passwords are in that short-lived process's argv (and, as with any engine, in the container's
# configuration): on a shared host keep the stack to throwaway passwords.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "compose-up-local: $*" >&2; }
# runc and limits this sandbox allows (see the file).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/podman/containers.conf}
BASE=${BASE_IMAGE:-localhost/debian:bookworm-slim}
WORK=${BACKSTOP_IMAGE_WORK:-/var/tmp/backstop-image}
compose=(podman-compose -f deploy/docker-compose.yml -f deploy/local/compose.local.yml)

for tool in podman podman-compose curl; do
  command -v "$tool" >/dev/null || { say "$tool is missing (scripts/install-deps.sh installs it)"; exit 1; }
done
# The service names (postgres, backstop, sentinel-1, ...) resolve through the network's DNS:
# with podman's CNI backend that is the dnsname plugin, which Debian packages separately.
if [ "$(podman info --format '{{.Host.NetworkBackend}}')" = cni ]; then
  found=""
  for p in /usr/lib/cni/dnsname /usr/libexec/cni/dnsname /opt/cni/bin/dnsname; do
    if [ -x "$p" ]; then found=$p; break; fi
  done
  [ -n "$found" ] || { say "the CNI dnsname plugin is missing: the containers could not find each other by name (apt-get install golang-github-containernetworking-plugin-dnsname)"; exit 1; }
fi
if [ -z "${POSTGRES_PASSWORD:-}" ] || [ -z "${REDIS_PASSWORD:-}" ]; then
  say "POSTGRES_PASSWORD or REDIS_PASSWORD is not set: the compose file's change-me defaults are used"
fi
mkdir -p "$WORK"

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t=$(now)
IMAGE=localhost/backstop:local scripts/build-image.sh >/dev/null
say "localhost/backstop:local built in $(took "$t") s"

# Tag and folder of each stand-in (the tags compose.local.yml names).
for standin in postgres:15 redis:7 pgbouncer:local prometheus:local; do
  dir=${standin%%:*}
  t=$(now)
  podman build --network host --build-arg "BASE_IMAGE=$BASE" -t "localhost/standin-$standin" \
    "deploy/local/$dir" >"$WORK/standin-$dir.log" 2>&1 \
    || { say "building localhost/standin-$standin failed; see $WORK/standin-$dir.log"; tail -20 "$WORK/standin-$dir.log" >&2; exit 1; }
  say "localhost/standin-$standin built in $(took "$t") s"
done

t=$(now)
"${compose[@]}" up -d postgres >&2
# Over TCP: while the entrypoint initialises the cluster, PostgreSQL listens on its socket only
# and is restarted afterwards, so a socket check would pass too early.
deadline=$((SECONDS + 120))
until "${compose[@]}" exec -T postgres pg_isready -q -h 127.0.0.1 -U postgres -d psscript >/dev/null 2>&1; do
  if [ $SECONDS -ge $deadline ]; then
    say "PostgreSQL did not accept connections within 120 s; its log:"
    "${compose[@]}" logs --tail 30 postgres >&2 || true
    exit 1
  fi
  sleep 1
done
say "postgres ready in $(took "$t") s"
"${compose[@]}" up -d >&2
deadline=$((SECONDS + 60))
until curl -fs --max-time 2 -o /dev/null http://127.0.0.1:9847/healthz; do
  if [ $SECONDS -ge $deadline ]; then
    say "Backstop did not answer http://127.0.0.1:9847/healthz within 60 s; its log:"
    "${compose[@]}" logs --tail 30 backup-service >&2 || true
    exit 1
  fi
  sleep 1
done
say "stack up in $(took "$t") s: Backstop http://localhost:9847/metrics, Prometheus http://localhost:9090, pgbouncer localhost:6432"
