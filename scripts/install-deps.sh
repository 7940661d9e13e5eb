#!/usr/bin/env bash
# Installs what building, running and testing Backstop needs on Debian (bookworm), skipping
# what is already there. Safe to run again. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=(
  pkg-config libpq-dev libhiredis-dev libcurl4-openssl-dev zlib1g-dev libmicrohttpd-dev libcrypt-dev
  postgresql postgresql-contrib postgresql-client
  redis-server redis-sentinel redis-tools
  prometheus prometheus-alertmanager
  wrk curl ca-certificates gzip python3-pip
  openssl apache2-utils age
  podman runc debootstrap binutils
  golang-github-containernetworking-plugin-dnsname
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# openssl makes the test certificates; apache2-utils gives htpasswd, the bcrypt hashes of the
# web config tests (an implementation independent of the libcrypt Backstop verifies with).

# Debian starts the packaged servers on their default ports; Backstop's scripts and tests
# run their own throwaway servers, so the packaged ones are left alone (not stopped).

# Python tools the tests use: moto_server (S3-compatible server), croniter (reference cron),
# the AWS CLI (checks what reached the S3 server from the outside), podman-compose (brings
# deploy/docker-compose.yml up: scripts/compose-up-local.sh, ComposeStackTests; pinned to the
# version tested with Debian's podman 4.3.1; the dnsname plugin above lets its containers
# find each other by service name on podman's CNI network).
py_missing=()
python3 -c "import moto, flask_cors" 2>/dev/null || py_missing+=("moto[server]")
python3 -c "import croniter" 2>/dev/null || py_missing+=("croniter")
command -v aws >/dev/null 2>&1 || py_missing+=("awscli")
PODMAN_COMPOSE_VERSION=1.6.0
[ "$(python3 -m pip show podman-compose 2>/dev/null | sed -n 's/^Version: //p')" = "$PODMAN_COMPOSE_VERSION" ] \
  || py_missing+=("podman-compose==$PODMAN_COMPOSE_VERSION")
if [ ${#py_missing[@]} -gt 0 ]; then
  echo "install-deps: pip installing ${py_missing[*]}"
  python3 -m pip install -q "${py_missing[@]}" 2>/dev/null || python3 -m pip install -q --break-system-packages "${py_missing[@]}"
fi

if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    echo "install-deps: swift is at /opt/swift/usr/bin; add it to PATH"
  else
    echo "install-deps: no Swift toolchain found (Swift 6.0 or newer is needed)" >&2
    exit 1
  fi
fi
