#!/bin/sh
# Run once by the postgres image when it creates the cluster (/docker-entrypoint-initdb.d):
# lets Backstop's base backups and WAL streaming (pg_basebackup, pg_receivewal) connect with
# a password over the compose network; the image's own rule covers normal connections only.
set -eu
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
