# syntax=docker/dockerfile:1
# Backstop: build with the Swift toolchain image, run on slim Debian with only what the binary
# links plus the PostgreSQL client programs (for the server's major version) and redis-tools.
#
#   docker build -t backstop .                        # PostgreSQL 15 client programs
#   docker build --build-arg PG_MAJOR=16 -t backstop .  # match your server's major version
#   scripts/build-image.sh                            # without registry access (podman, debootstrap)
#
# The runtime package list is checked by Tests/DeploymentTests against ldd of the debug build
# (the release binary links the same C libraries; its Swift runtime is static).

ARG SWIFT_VERSION=6.3
# The base images, as arguments for machines that make them locally (scripts/build-image.sh
# imports a debootstrapped bookworm as debian:bookworm-slim where registries are out of reach).
ARG BUILD_IMAGE=swift:${SWIFT_VERSION}-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpq-dev libhiredis-dev libcurl4-openssl-dev zlib1g-dev libmicrohttpd-dev libcrypt-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not fetch them again.
COPY Package.* ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
# scripts/build-release.sh: swift build -c release --static-swift-stdlib --product backstop,
# non-PIE and without exported symbols (less resident memory); it prints the binary's path.
COPY scripts/build-release.sh ./scripts/
# Debug info stripped (about 70 of its 99 MB); the symbol table stays for backtraces.
RUN bin="$(./scripts/build-release.sh)" && mkdir -p /out && strip --strip-debug -o /out/backstop "$bin"

FROM ${RUNTIME_IMAGE}
ARG PG_MAJOR=15
# PGDG's signing key; used only when Debian itself has no postgresql-client-${PG_MAJOR}
# (bookworm ships 15).
ADD --chmod=0644 https://www.postgresql.org/media/keys/ACCC4CF8.asc /usr/share/keyrings/pgdg.asc
# The five libraries Backstop links (libpq, hiredis, libcurl, zlib, libmicrohttpd), the
# PostgreSQL client programs it runs (pg_dump, pg_dumpall, pg_basebackup, pg_receivewal, psql),
# redis-tools, CA certificates for S3 and webhooks over TLS, and tzdata for TZ-based schedules.
RUN set -eux; \
    apt-get update; \
    if ! apt-cache show "postgresql-client-${PG_MAJOR}" >/dev/null 2>&1; then \
      echo "deb [signed-by=/usr/share/keyrings/pgdg.asc] http://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
      apt-get update; \
    fi; \
    apt-get install -y --no-install-recommends \
      libpq5 libhiredis0.14 libcurl4 zlib1g libmicrohttpd12 libcrypt1 \
      "postgresql-client-${PG_MAJOR}" redis-tools ca-certificates tzdata; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 backstop; \
    useradd --system --uid 10001 --gid backstop --home-dir /backups --no-create-home --shell /usr/sbin/nologin backstop; \
    install -d -o backstop -g backstop -m 0750 /backups
COPY --from=build /out/backstop /usr/local/bin/backstop
# The old service's script names, so `docker-compose exec backup-service /scripts/postgres-backup.sh full`
# and existing cron lines keep working (each runs the matching backstop subcommand).
COPY --chmod=0755 scripts/compat/ /scripts/

ENV BACKUP_DIR=/backups \
    METRICS_LISTEN=0.0.0.0:9847
USER backstop
WORKDIR /backups
VOLUME /backups
EXPOSE 9847
# bash's /dev/tcp: no curl needed. /healthz answers 200 while the process is alive. The port
# comes from METRICS_LISTEN; keep it on 0.0.0.0 (or loopback) so 127.0.0.1 reaches it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${METRICS_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
CMD ["backstop", "serve"]
