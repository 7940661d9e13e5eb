#!/usr/bin/env bash
# Prints README's reliability table from the rows the tests recorded in their last run
# (Tests/BackstopTestSupport/ReliabilityReport.swift). Usage: scripts/reliability-table.sh [rows.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-${BACKSTOP_RELIABILITY_REPORT:-.build/reliability/rows.jsonl}}
if [ ! -s "$rows" ]; then
  echo "reliability-table: no rows in $rows (run the tests first: ./scripts/test.sh)" >&2
  exit 1
fi
python3 - "$rows" <<'PY'
import json, sys
order, rows = [], {}
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.strip()
    if not line:
        continue
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r["fault"] not in rows:
        order.append(r["fault"])
    rows[r["fault"]] = r
cell = lambda s: s.replace("|", "\\|").replace("\n", " ")
print("| fault | what Backstop did | what was lost | test |")
print("| --- | --- | --- | --- |")
for f in order:
    r = rows[f]
    print(f"| {cell(r['fault'])} | {cell(r['did'])} | {cell(r['lost'])} | `{cell(r['source'])}` |")
PY
