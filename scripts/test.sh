#!/usr/bin/env bash
# The whole test suite against the real Redis, Postgres and Docker engine. Extra arguments go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh
bash scripts/ensure-docker.sh
bash scripts/ensure-browser.sh
npm run build
# ts-jest only transpiles: type-check every spec and test helper here.
npx tsc -p tsconfig.spec.json
results=$(mktemp /tmp/flashpods-jest-XXXXXX.json)
status=0
NODE_OPTIONS=--max-old-space-size=4096 npx jest --ci --maxWorkers=2 --json --outputFile="$results" "$@" || status=$?
node -e '
  const r = require(process.argv[1]);
  console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
  if (r.numTotalTests === 0) { console.error("no test ran"); process.exit(1); }
' "$results" || status=1
rm -f "$results"
exit $status
