#!/usr/bin/env bash
# The release build of `backstop` at another git revision, for the benchmarks' before/after
# runs: the revision is exported with `git archive` (no worktree, branch or checkout is
# touched) into /tmp/backstop-baseline-<commit>/src and built there with its own scratch path,
# so a second run with the same revision is an up-to-date build. Prints the binary's path.
# Usage: scripts/build-baseline.sh <rev>
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$(git rev-parse --short=12 "${1:?usage: build-baseline.sh <rev>}^{commit}")
root=/tmp/backstop-baseline-$rev
if [ ! -f "$root/src/Package.swift" ]; then
  rm -rf "$root/src" && mkdir -p "$root/src"
  git archive "$rev" | tar -x -C "$root/src"
fi
BACKSTOP_SCRATCH_PATH="$root/build" "$root/src/scripts/build-release.sh"
