#!/usr/bin/env bash
# Times `backstop list` and `backstop cleanup --dry-run` on a generated catalog of
# N (default 100,000) backups with their .meta files, spread over two years and four
# kinds/targets. Target: each under 2 s. Prints the wall-clock seconds of each (best of 3).
# BIN=path/to/backstop skips the release build. Never fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
BIN=${BIN:-$(./scripts/build-release.sh 2>/dev/null)}
N=${N:-100000}
work=$(mktemp -d /tmp/backstop-catalog-XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$N" <<'EOF'
import datetime, os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root + "/postgres"); os.makedirs(root + "/redis")
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
span = 2 * 365 * 86400
kinds = [("postgres", "app_full_", ".sql.gz", "postgres_full", "app", "full"),
         ("postgres", "globals_", ".sql.gz", "postgres_globals", "globals", "globals"),
         ("postgres", "shop_full_", ".sql.gz", "postgres_full", "shop", "full"),
         ("redis", "redis_", ".rdb.gz", "redis", "redis", "redis")]
for i in range(n):
    folder, prefix, ext, kind, target, typ = kinds[i % 4]
    t = now - datetime.timedelta(seconds=(i // 4) * (span // (n // 4 + 1)) + 60)
    stamp = t.strftime("%Y%m%d_%H%M%S")
    path = f"{root}/{folder}/{prefix}{stamp}{ext}"
    with open(path, "wb") as f: f.write(b"x" * 32)
    iso = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    fin = (t + datetime.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(path + ".meta", "w") as f:
        f.write('{\n  "compression" : "gzip:6",\n  "database" : "%s",\n  "duration_seconds" : 30,\n'
                '  "file" : "%s",\n  "finished_at" : "%s",\n  "kind" : "%s",\n'
                '  "sha256" : "%s",\n  "size" : "32",\n  "size_bytes" : 32,\n  "started_at" : "%s",\n'
                '  "status" : "completed",\n  "target" : "%s",\n  "timestamp" : "%s",\n'
                '  "tool_version" : "backstop bench",\n  "type" : "%s"\n}\n'
                % (target, path, fin, kind, "ab" * 32, iso, target, stamp, typ))
EOF
echo "catalog: $N backups in $work ($(du -sh "$work" | cut -f1))"

best() {
  local best=999
  for _ in 1 2 3; do
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null
    e=$(date +%s.%N)
    best=$(python3 -c "print(min($best, $e - $s))")
  done
  printf "%.2f" "$best"
}
list=$(best env BACKUP_DIR="$work" "$BIN" list)
json=$(best env BACKUP_DIR="$work" "$BIN" list --json)
dry=$(best env BACKUP_DIR="$work" "$BIN" cleanup --dry-run)
echo "backstop list:               ${list} s (target < 2 s)"
echo "backstop list --json:        ${json} s"
echo "backstop cleanup --dry-run:  ${dry} s (target < 2 s)"
