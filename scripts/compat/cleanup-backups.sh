#!/bin/sh
# cleanup-backups.sh — the old backup service's script, kept so cron lines, runbooks and
# `docker-compose exec backup-service /scripts/cleanup-backups.sh …` keep working.
# Usage: cleanup-backups.sh   (retention, inventory report, old logs)
# Same environment variables, same files under $BACKUP_DIR; see `backstop --help`.
set -eu
BACKSTOP="${BACKSTOP:-backstop}"
exec "$BACKSTOP" cleanup "$@"
