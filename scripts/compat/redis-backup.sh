#!/bin/sh
# redis-backup.sh — the old backup service's script, kept so cron lines, runbooks and
# `docker-compose exec backup-service /scripts/redis-backup.sh …` keep working.
# Usage: redis-backup.sh
# Same environment variables, same files under $BACKUP_DIR; see `backstop --help`.
set -eu
BACKSTOP="${BACKSTOP:-backstop}"
exec "$BACKSTOP" backup redis "$@"
