#!/bin/sh
# restore-redis.sh — the old backup service's script, kept so cron lines, runbooks and
# `docker-compose exec backup-service /scripts/restore-redis.sh …` keep working.
# Usage: restore-redis.sh [FILE]   (no FILE: list the snapshots; with FILE: guarded restore)
# Same environment variables, same files under $BACKUP_DIR; see `backstop --help`.
set -eu
BACKSTOP="${BACKSTOP:-backstop}"
exec "$BACKSTOP" restore redis "$@"
