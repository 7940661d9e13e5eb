#!/usr/bin/env bash
# The soak of Tests/ReliabilityTests/SoakTests.swift for SOAK_MINUTES (default 20): the built
# `backstop serve` (debug, as the tests build it) against real PostgreSQL and Redis, with the
# full, Redis and cleanup jobs every minute, 50 scrapes a second, a webhook receiver failing
# every other delivery and Redis frozen 15 s a minute. Prints the start and end figures
# (resident memory, descriptors, threads), the scrapes, the job runs and the alert deliveries
# as the test measured them; fails when the test's bounds do (resources not flat, an alert
# lost, a job overlapping its previous run). Not a performance comparison: there is no
# baseline, only start against end of the same process.
#
#   SOAK_MINUTES=20 bench/soak.sh        BUILD=0 skips `swift build --build-tests`
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
export SOAK_MINUTES=${SOAK_MINUTES:-20}
if [ "${BUILD:-1}" != 0 ]; then
  swift build --build-tests 2>&1 | tail -3
fi
log=$(mktemp /tmp/backstop-soak-XXXXXX.log)
status=0
swift test --skip-build --filter 'ReliabilityTests.SoakTests' >"$log" 2>&1 || status=$?
grep -E '^soak:' "$log" || true
grep -E '(✘|error:|Expectation failed)' "$log" | head -20 || true
echo "soak: ${SOAK_MINUTES} min, test exit status $status (full output: $log)"
exit "$status"
