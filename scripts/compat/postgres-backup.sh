#!/bin/sh
# postgres-backup.sh — the old backup service's script, kept so cron lines, runbooks and
# `docker-compose exec backup-service /scripts/postgres-backup.sh …` keep working.
# Usage: postgres-backup.sh [full|incremental]   (default full)
# Same environment variables, same files under $BACKUP_DIR; see `backstop --help`.
set -eu
BACKSTOP="${BACKSTOP:-backstop}"
mode="${1:-full}"
case "$mode" in
  full|incremental) shift $(( $# > 0 ? 1 : 0 )); exec "$BACKSTOP" backup postgres "$mode" "$@" ;;
  *) echo "postgres-backup.sh: unknown backup type \"$mode\" (accepted: full, incremental)" >&2; exit 2 ;;
esac
