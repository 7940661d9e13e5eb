#!/bin/sh
# health-check.sh — the old backup service's script, kept so cron lines, runbooks and
# `docker-compose exec backup-service /scripts/health-check.sh …` keep working.
# Usage: health-check.sh   (exit 0 when all is well; alerts go to $BACKUP_DIR/alerts.json)
# Same environment variables, same files under $BACKUP_DIR; see `backstop --help`.
set -eu
BACKSTOP="${BACKSTOP:-backstop}"
exec "$BACKSTOP" health "$@"
