#!/usr/bin/env bash
# The release build of `backstop`, as the Dockerfile and the benchmarks make it:
# the Swift runtime linked statically (no libswift*.so to ship, ~8 MB less resident memory),
# a non-PIE executable (no 2 MB relative-relocation table to apply at start-up, no dirtied
# data pages), and no exported dynamic symbols (the binary is not a plugin host).
# Prints the path of the binary. BACKSTOP_SCRATCH_PATH (optional) is passed as --scratch-path,
# so parallel worktrees keep their own build folders; unset, SwiftPM's default .build is used.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scratch=()
if [ -n "${BACKSTOP_SCRATCH_PATH:-}" ]; then scratch=(--scratch-path "$BACKSTOP_SCRATCH_PATH"); fi
swift build -c release --product backstop --static-swift-stdlib "${scratch[@]}" \
  -Xswiftc -Xclang-linker -Xswiftc -no-pie -Xlinker --no-export-dynamic "$@" >&2
echo "$(swift build -c release --show-bin-path "${scratch[@]}" "$@")/backstop"
