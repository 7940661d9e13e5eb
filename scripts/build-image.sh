#!/usr/bin/env bash
# Builds the Backstop container image with podman on a machine that cannot pull registry
# images (only Debian's package mirrors are reachable):
#   1. debian:bookworm-slim is made locally: `debootstrap --variant=minbase bookworm` into a
#      rootfs, imported with `podman import` (kept: later runs reuse it);
#   2. the binary is the host's release build (scripts/build-release.sh: the Dockerfile's own
#      recipe, on the same bookworm with the toolchain at /opt/swift), standing in for the
#      Dockerfile's build stage;
#   3. the Dockerfile's runtime stage, unchanged but for the PGDG key download (a URL, not
#      reachable here; used only when Debian lacks postgresql-client-${PG_MAJOR}), is built
#      on top with `podman build --network host` (apt-get reaches Debian's mirror).
# Where registries are reachable, `podman build -t backstop .` builds the Dockerfile as is.
#
#   scripts/build-image.sh                 # -> localhost/backstop:local, prints its id
#   IMAGE=backstop:test PG_MAJOR=15 scripts/build-image.sh
#   BACKSTOP_BIN=.build/release/backstop scripts/build-image.sh   # skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/backstop:local}
BASE=${BASE_IMAGE:-localhost/debian:bookworm-slim}
WORK=${BACKSTOP_IMAGE_WORK:-/var/tmp/backstop-image}
PG_MAJOR=${PG_MAJOR:-15}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
say() { echo "build-image: $*" >&2; }
# runc and limits this sandbox allows (see the file); podman's own defaults fail here.
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/podman/containers.conf}

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { say "$tool is missing (apt-get install podman debootstrap; scripts/install-deps.sh does)"; exit 1; }
done
mkdir -p "$WORK"
# One build at a time per work folder (the image tests and scripts/compose-up-local.sh may run
# side by side): they share the rootfs and the build context below.
exec 9>"$WORK/.lock"
flock 9

if ! podman image exists "$BASE"; then
  rootfs="$WORK/rootfs"
  if [ ! -f "$rootfs/.complete" ]; then
    rm -rf "$rootfs"
    say "debootstrap bookworm into $rootfs (a few minutes)"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || { say "debootstrap failed; see $WORK/debootstrap.log"; tail -5 "$WORK/debootstrap.log" >&2; exit 1; }
    # As the registry's slim image: no package lists, docs or caches.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    touch "$rootfs/.complete"
  fi
  say "importing $rootfs as $BASE"
  tar --exclude=./.complete -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$BASE" >/dev/null
fi

bin=${BACKSTOP_BIN:-$(./scripts/build-release.sh)}
context="$WORK/context"
rm -rf "$context" && mkdir -p "$context/scripts"
strip --strip-debug -o "$context/backstop" "$bin"  # as the Dockerfile's build stage does
cp -r scripts/compat "$context/scripts/compat"
# The build stage replaced by the host binary; the runtime stage from the Dockerfile itself.
{
  echo "ARG RUNTIME_IMAGE=$BASE"
  echo "FROM scratch AS build"
  echo "COPY backstop /out/backstop"
  sed -n '/^FROM \${RUNTIME_IMAGE}/,$p' Dockerfile | grep -v '^ADD .*https://'
} >"$context/Containerfile"
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
say "podman build $IMAGE"
podman build --format docker --network host --build-arg "PG_MAJOR=$PG_MAJOR" --build-arg "RUNTIME_IMAGE=$BASE" \
  -t "$IMAGE" -f "$context/Containerfile" "$context" >"$WORK/build.log" 2>&1 \
  || { say "podman build failed; see $WORK/build.log"; tail -20 "$WORK/build.log" >&2; exit 1; }
id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
# The image this one replaced, now untagged (kept if a container still uses it).
if [ -n "$previous" ] && [ "$previous" != "$id" ]; then podman rmi "$previous" >/dev/null 2>&1 || true; fi
echo "$id"
