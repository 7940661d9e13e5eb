#!/bin/sh
# restore-postgres.sh — the old backup service's script, kept so cron lines, runbooks and
# `docker-compose exec backup-service /scripts/restore-postgres.sh …` keep working.
# Usage: restore-postgres.sh [FILE]   (no FILE: list the backups; with FILE: guarded restore, asks for the database name on a terminal, --yes otherwise)
# Same environment variables, same files under $BACKUP_DIR; see `backstop --help`.
set -eu
BACKSTOP="${BACKSTOP:-backstop}"
exec "$BACKSTOP" restore postgres "$@"
