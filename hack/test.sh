#!/usr/bin/env bash
# The test command: set the machine up (packages, npm ci), build, type-check, run every suite.
# Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup.sh
npm run --silent check
npm run --silent build
exec node test/run.mjs "$@"
