#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds with zero warnings allowed in
# Backstop's own code, runs unit and integration tests (real PostgreSQL, Redis, Sentinel,
# Alertmanager, S3-compatible and HTTP servers on loopback) and the Prometheus rule tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

./scripts/install-deps.sh

log=$(mktemp)
swift build --build-tests 2>&1 | tee "$log"
if grep -E "^(/.*/)?(Sources|Tests)/.*: warning:" "$log" | grep -v "/.build" ; then
  echo "test: the build has warnings in Backstop's own code (see above); zero are allowed" >&2
  exit 1
fi
rm -f "$log"

if [ -d alerts ] && ls alerts/*.test.yml >/dev/null 2>&1; then
  promtool check rules alerts/*.rules.yml
  promtool test rules alerts/*.test.yml
fi

# The release binary for the image test (ContainerImageTests), built here: `swift test` holds
# .build's lock while it runs.
export BACKSTOP_IMAGE_BIN=${BACKSTOP_IMAGE_BIN:-$(./scripts/build-release.sh)}

# Serial: many integration tests block a thread while they wait on a real server, and in
# parallel they starve the timing-sensitive ones (scheduler, delivery timeouts) of Swift's
# small cooperative pool on a 2-core machine.
# The reliability table (README's "Reliability") is recorded by the tests of this run.
export BACKSTOP_RELIABILITY_REPORT=${BACKSTOP_RELIABILITY_REPORT:-$PWD/.build/reliability/rows.jsonl}
mkdir -p "$(dirname "$BACKSTOP_RELIABILITY_REPORT")"
: > "$BACKSTOP_RELIABILITY_REPORT"
swift test --skip-build --no-parallel
./scripts/reliability-table.sh "$BACKSTOP_RELIABILITY_REPORT" || true
