#!/usr/bin/env bash
# The release build of `backstop`, as the Dockerfile and the benchmarks make it:
# the Swift runtime linked statically (no libswift*.so to ship, ~8 MB less resident memory),
# a non-PIE executable (no 2 MB relative-relocation table to apply at start-up, no dirtied
# data pages), and no exported dynamic symbols (the binary is not a plugin host).
# Prints the path of the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
swift build -c release --product backstop --static-swift-stdlib \
  -Xswiftc -Xclang-linker -Xswiftc -no-pie -Xlinker --no-export-dynamic "$@" >&2
echo "$(swift build -c release --show-bin-path "$@")/backstop"
