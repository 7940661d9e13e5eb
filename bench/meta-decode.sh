#!/usr/bin/env bash
# Is the catalog's hand-written JSON worth keeping? Times, in one process on the same data,
# MetaFastDecoder (behind BackupMeta.decode) against Foundation's JSONDecoder on N (default
# 100,000) `.meta` files as Backstop writes them, from memory and from disk (open + read +
# decode per file, as a catalog scan reads them), and CatalogJSON (behind `list --json`)
# against JSONEncoder for N entries, after checking both decoders give equal values for every
# file and both encoders the same bytes. Prints the best CPU time of ROUNDS (default 5) runs,
# order alternating, and the ratios. Never fails on a number; fails if the paths disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
N=${N:-100000}
ROUNDS=${ROUNDS:-5}
swift build -c release --package-path bench/meta-decode >&2
"$(swift build -c release --package-path bench/meta-decode --show-bin-path)/meta-decode" "$N" "$ROUNDS"
