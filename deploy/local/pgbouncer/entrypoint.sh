#!/bin/bash
# Writes pgbouncer.ini and userlist.txt from the environment (the subset of edoburu/pgbouncer's
# variables deploy/docker-compose.yml uses), then runs the command. Every database name is
# forwarded to DB_HOST:DB_PORT; the password goes to the auth file (0600), never to argv.
set -euo pipefail
: "${DB_HOST:?DB_HOST is not set}"
conf=/etc/pgbouncer
umask 077
{
  echo "[databases]"
  echo "* = host=${DB_HOST} port=${DB_PORT:-5432}"
  echo
  echo "[pgbouncer]"
  echo "listen_addr = ${LISTEN_ADDR:-0.0.0.0}"
  echo "listen_port = ${LISTEN_PORT:-6432}"
  echo "unix_socket_dir ="
  echo "auth_type = ${AUTH_TYPE:-md5}"
  echo "auth_file = $conf/userlist.txt"
  echo "pool_mode = ${POOL_MODE:-session}"
  echo "max_client_conn = ${MAX_CLIENT_CONN:-100}"
  echo "default_pool_size = ${DEFAULT_POOL_SIZE:-20}"
  echo "ignore_startup_parameters = extra_float_digits"
  echo "admin_users = ${DB_USER:-postgres}"
} >"$conf/pgbouncer.ini"
if [ -n "${DB_USER:-}" ]; then
  # Plain text: pgbouncer derives SCRAM (or md5) for both the client and the server side.
  pass=${DB_PASSWORD:-}
  printf '"%s" "%s"\n' "$DB_USER" "${pass//\"/\"\"}" >"$conf/userlist.txt"
fi
exec "$@"
