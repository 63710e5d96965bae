#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the default test suite, one pytest-xdist worker per CPU
# (`-n 0` runs in one process; TFFT_TEST_WORKERS=N sets the number). Extra arguments go to
# pytest: `scripts/test.sh -m long` runs the long tests on the tiny models, `scripts/test.sh -m slow`
# the slow ones on the real checkpoint and data (add `-n 0 -s` to see their figures as they come).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2 HF_HUB_OFFLINE=1
# --dist loadscope keeps each test module in one worker, so module fixtures are built once.
exec .venv/bin/python -m pytest -n "${TFFT_TEST_WORKERS:-auto}" --dist loadscope "$@"
