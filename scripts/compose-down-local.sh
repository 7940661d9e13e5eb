#!/usr/bin/env bash
# Takes down what scripts/compose-up-local.sh brought up: `podman-compose ... down -v` stops
# and removes the containers, the network and the named volumes (the database, the backups,
# the Redis data, Prometheus's TSDB). podman-compose removes containers without their anonymous
# volumes (the images' own VOLUME /data of the replica and the Sentinels, which the compose file
# mounts nothing on), where `docker compose down -v` removes them too; this script removes them
# after the containers are gone.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/podman/containers.conf}
project=backstop-example   # the compose file's `name:`
compose=(podman-compose -f deploy/docker-compose.yml -f deploy/local/compose.local.yml)

anonymous=()
for c in $(podman ps -a -q --filter "label=io.podman.compose.project=$project"); do
  for v in $(podman inspect --format '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' "$c"); do
    # Named volumes carry the project's label and go with `down -v`; the others are anonymous.
    label=$(podman volume inspect --format '{{index .Labels "io.podman.compose.project"}}' "$v" 2>/dev/null || true)
    [ "$label" = "$project" ] || anonymous+=("$v")
  done
done
"${compose[@]}" down -v >&2
if [ ${#anonymous[@]} -gt 0 ]; then podman volume rm "${anonymous[@]}" >/dev/null; fi
