#!/usr/bin/env bash
# Times `backstop list`, `list --json` and `cleanup --dry-run` on a generated catalog of
# N (default 100,000) backups with their .meta files, spread over two years and four
# kinds/targets, for two binaries in one run: the baseline (BASELINE, a git revision, default
# 2540f14, the tree before issue #13's work; exported with `git archive` and built apart by
# scripts/build-baseline.sh, so no worktree or branch is touched; BASE is the older name of
# the same setting) and this checkout. Goal: each under 1 s. Prints the best of 3 wall-clock
# seconds of each, and the ratio baseline/new. The new binary's first `list` (which writes the
# catalog index) is timed apart as "cold". OLD_BIN=... / BIN=... skip a build. Never fails on
# a number.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
BASE=${BASELINE:-${BASE:-2540f14}}
OLD_BIN=${OLD_BIN:-$(./scripts/build-baseline.sh "$BASE" 2>/dev/null)}
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
# The 200,000 files just written are still being written back: timed now, each run would
# share the disk with that writeback.
sync

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
once() {
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null
  e=$(date +%s.%N)
  python3 -c "print('%.2f' % ($e - $s))"
}
ratio() { python3 -c "print('%.1fx' % ($1 / max($2, 0.001)))"; }

# The baseline first: it knows no index, so it reads every .meta each time.
old_list=$(best env BACKUP_DIR="$work" "$OLD_BIN" list)
old_json=$(best env BACKUP_DIR="$work" "$OLD_BIN" list --json)
old_dry=$(best env BACKUP_DIR="$work" "$OLD_BIN" cleanup --dry-run)
cold=$(once env BACKUP_DIR="$work" "$BIN" list)
new_list=$(best env BACKUP_DIR="$work" "$BIN" list)
new_json=$(best env BACKUP_DIR="$work" "$BIN" list --json)
new_dry=$(best env BACKUP_DIR="$work" "$BIN" cleanup --dry-run)
# The outputs must be the same, but for the fields added since the baseline (`encryption` and
# `recipients`, null on these unencrypted backups), which are compared without.
added='"encryption" : null,|"recipients" : null,'
if ! cmp -s <(BACKUP_DIR="$work" "$OLD_BIN" list --json) \
            <(BACKUP_DIR="$work" "$BIN" list --json | grep -Ev "^ *($added)\$"); then
  echo "WARNING: list --json differs between $BASE and this checkout (beyond the added encryption fields)"
fi
printf "%-28s %10s %10s %8s\n" "command ($N backups)" "$BASE" "this" "ratio"
printf "%-28s %9s s %9s s %8s\n" "backstop list" "$old_list" "$new_list" "$(ratio "$old_list" "$new_list")"
printf "%-28s %9s s %9s s %8s\n" "backstop list --json" "$old_json" "$new_json" "$(ratio "$old_json" "$new_json")"
printf "%-28s %9s s %9s s %8s\n" "backstop cleanup --dry-run" "$old_dry" "$new_dry" "$(ratio "$old_dry" "$new_dry")"
echo "first list of this checkout (writes the index): ${cold} s; index: $(du -ch "$work"/*/.catalog-index 2>/dev/null | tail -1 | cut -f1)"
echo "goal: each under 1 s"
