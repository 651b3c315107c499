#!/usr/bin/env bash
# `npm run chaos`: the damage scenarios (kill -9 and SIGTERM of each service, fast log mode's gap, Redis and Postgres
# restarts, backpressure on 500 MB, three runners, liveness) and the long chaos run at N (300 jobs,
# 5 minutes of kills) against real local stacks, then one table of results.
# `npm test` runs the same files with short settings.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh
bash scripts/ensure-docker.sh
npm run build >/dev/null
report=$(mktemp /tmp/flashpods-chaos-XXXXXX.jsonl)
status=0
CHAOS_REPORT="$report" CHAOS_JOBS="${CHAOS_JOBS:-300}" CHAOS_SECONDS="${CHAOS_SECONDS:-300}" BACKPRESSURE_MB="${BACKPRESSURE_MB:-500}" REDIS_OUTAGE_SECONDS="${REDIS_OUTAGE_SECONDS:-30}" \
  npx jest --ci --runInBand --forceExit test/e2e/reliability test/e2e/restarts test/e2e/liveness test/e2e/fast-mode test/e2e/chaos "$@" || status=$?
node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
  const cols = ["scenario", "expected", "found", "duplicates", "result"];
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] === null ? "n/a" : r[c]).length)));
  const line = (vals) => "| " + vals.map((v, i) => String(v).padEnd(width[i])).join(" | ") + " |";
  console.log("\n" + line(cols));
  console.log("|" + width.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const r of rows) console.log(line(cols.map((c) => (r[c] === null ? "n/a" : r[c]))));
  const failed = rows.filter((r) => r.result !== "pass").length;
  console.log(`\nchaos: ${rows.length - failed} passed, ${failed} failed`);
  if (failed || rows.length === 0) process.exit(1);
' "$report" || status=1
rm -f "$report"
exit $status
