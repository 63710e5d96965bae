#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the default test suite. Extra arguments go to pytest,
# e.g. `scripts/test.sh -m slow` for the slow tests on the real checkpoint and data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2 HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
