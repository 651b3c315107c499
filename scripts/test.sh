#!/usr/bin/env bash
# The whole test suite against the real Redis, Postgres and Docker engine. Extra arguments go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh
bash scripts/ensure-docker.sh
bash scripts/ensure-browser.sh
bash scripts/ensure-promtool.sh
npm run build
# ts-jest only transpiles: type-check every spec and test helper here.
npx tsc -p tsconfig.spec.json
fast=$(mktemp /tmp/flashpods-jest-XXXXXX.json)
e2e=$(mktemp /tmp/flashpods-jest-XXXXXX.json)
status=0
export NODE_OPTIONS=--max-old-space-size=4096
# Unit and integration specs two at a time; the end-to-end specs one at a time: they start whole
# stacks, kill services and time recoveries, and two of them on a 2-core machine would make every
# deadline a coin toss.
npx jest --ci --maxWorkers=2 --selectProjects unit integration --passWithNoTests --json --outputFile="$fast" "$@" || status=$?
npx jest --ci --runInBand --forceExit --selectProjects e2e --passWithNoTests --json --outputFile="$e2e" "$@" || status=$?
node -e '
  const runs = process.argv.slice(1).map((f) => require(f));
  const sum = (k) => runs.reduce((n, r) => n + r[k], 0);
  console.log(`jest: ${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed, ${sum("numPendingTests")} skipped`);
  if (sum("numTotalTests") === 0) { console.error("no test ran"); process.exit(1); }
' "$fast" "$e2e" || status=1
rm -f "$fast" "$e2e"
exit $status
