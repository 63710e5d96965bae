"""DP-SGD steps over several length buckets: traces, pfor while-loop fallbacks and step times.

A Poisson DP-SGD batch has a fixed number of rows (its capacity) and the length of its
bucket, so a run sees one batch shape per bucket. This script builds one classifier
(``--hf-model``: a tiny random BERT written on the spot by default, or a real checkpoint
folder such as the MiniLM, with ``--lora-rank``), compiles it with the DP step
(:func:`tfft.privacy.install_privacy`, the Keras ``train_function`` as ``model.fit`` runs
it) and fits it ``--rounds`` times on one epoch of batches of ``--capacity`` rows
(``--batch-size`` of them real, the rest filler of weight 0), one for each length in
``--lengths``; the dataset's batches have an unknown length, as tfft's do. With
``--baseline OLD_PRIVACY_PY`` a copy of the model takes the DP step of that other version of
:mod:`tfft.privacy`, the two alternating round by round (the machine's load hits both). It
prints, per contender:

- ``traces``: how many times Keras' train function was traced (each trace re-runs the
  pfor conversion of the per-example pass);
- ``pfor_conversions``: how many ``tf.vectorized_map`` calls were traced in all;
- ``fallbacks``: the ops pfor could not vectorize and ran in a ``while_loop`` instead
  (tensorflow's "Using a while_loop for converting ..." log lines, any level);
- per length: the first step (with any trace or XLA compilation) and the best later step.

::

    .venv/bin/python benchmarks/privacy_buckets.py                              # tiny BERT
    .venv/bin/python benchmarks/privacy_buckets.py --xla
    git show HEAD~1:tfft/privacy.py > /tmp/privacy_old.py
    .venv/bin/python benchmarks/privacy_buckets.py --baseline /tmp/privacy_old.py --rounds 6
    .venv/bin/python benchmarks/privacy_buckets.py --hf-model PATH --lora-rank 8 --batch-size 32 \
        --capacity 80 --lengths 16 32 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class FallbackLog(logging.Handler):
    """Collects the op types of pfor's while-loop fallbacks from the ``tensorflow`` logger."""

    PREFIX = "Using a while_loop for converting "

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.ops: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith(self.PREFIX):
            self.ops.append(message[len(self.PREFIX) :].split(" ")[0])


class StepClock:
    """Keras callback: the wall time of every training batch."""

    def __new__(cls):
        from tfft.keras import keras

        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []

            def on_train_batch_begin(self, batch, logs=None):
                self.started = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.seconds.append(time.perf_counter() - self.started)

        return Clock()


def load_baseline(path: str):
    """A privacy module from another version of tfft (a copy of ``tfft/privacy.py``), imported
    under its own name so that both versions' DP steps run in one process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("privacy_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hf-model", default=None, help="checkpoint folder (default: a tiny random BERT)")
    parser.add_argument("--lora-rank", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8, help="real rows per batch")
    parser.add_argument("--capacity", type=int, default=16, help="rows per batch (the rest are filler)")
    parser.add_argument("--chunk-rows", type=int, default=8)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--xla", action="store_true")
    parser.add_argument(
        "--baseline",
        default=None,
        help="another version's privacy.py (e.g. from `git show REV:tfft/privacy.py`): its DP step "
        "runs on a copy of the model, alternating with this version's, one round each",
    )
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    import tfft
    from tfft import privacy
    from tfft.keras import keras

    modules = {"current": privacy}
    if args.baseline:
        modules = {"baseline": load_baseline(args.baseline), **modules}
    running = [""]  # the contender being traced or run
    conversions = {name: 0 for name in modules}  # vectorized_map calls traced (pfor conversions)
    vectorized_map = tf.vectorized_map

    def counted(*a, **k):
        conversions[running[0]] += 1
        return vectorized_map(*a, **k)

    tf.vectorized_map = counted
    fallbacks = {name: FallbackLog() for name in modules}
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.setLevel(logging.DEBUG)

    folder = args.hf_model
    if folder is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from helpers import write_tiny_bert

        folder = str(write_tiny_bert(Path(tempfile.mkdtemp()) / "bert"))
    options = {} if args.lora_rank is None else {"lora": {"rank": args.lora_rank}}
    models = {}
    for name, module in modules.items():
        keras.utils.set_random_seed(0)  # the same weights for every contender
        model = tfft.build_model(hf_model=folder, label_names=["neg", "pos"], **options)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.01),
            loss=tfft.loss_for(model),
            jit_compile=args.xla,
        )
        plan = module.PrivacyPlan(
            clip=1.0,
            noise_multiplier=1.0,
            batch_size=args.batch_size,
            train_rows=1000,
            delta=1e-5,
            planned_steps=100,
            chunk_rows=args.chunk_rows,
        )
        module.install_privacy(model, plan)
        models[name] = model
    vocab = min(int(v.shape[0]) for v in model.variables if "word_embeddings" in v.name)
    rng = np.random.default_rng(0)

    def batch(length):
        ids = rng.integers(5, vocab, size=[args.capacity, length]).astype(np.int32)
        features = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        labels = rng.integers(0, 2, size=[args.capacity]).astype(np.int32)
        weights = (np.arange(args.capacity) < args.batch_size).astype(np.float32)
        return features, labels, weights

    batches = [batch(length) for length in args.lengths]  # one round: every length once
    spec = tf.TensorSpec([args.capacity, None], tf.int32)
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=(
            {"input_ids": spec, "attention_mask": spec, "token_type_ids": spec},
            tf.TensorSpec([args.capacity], tf.int32),
            tf.TensorSpec([args.capacity], tf.float32),
        ),
    )
    first = {name: {} for name in modules}
    steps = {name: {n: [] for n in args.lengths} for name in modules}
    for round_ in range(args.rounds):
        for name, model in models.items():  # alternating: the machine's load hits both alike
            running[0] = name
            tf_logger.addHandler(fallbacks[name])
            clock = StepClock()
            model.fit(dataset, epochs=1, verbose=0, callbacks=[clock])
            tf_logger.removeHandler(fallbacks[name])
            for length, seconds in zip(args.lengths, clock.seconds, strict=True):
                if round_ == 0:
                    first[name][length] = round(seconds, 3)
                else:
                    steps[name][length].append(seconds)
    tf.vectorized_map = vectorized_map
    result = {
        "model": folder,
        "lora_rank": args.lora_rank,
        "xla": args.xla,
        "capacity": args.capacity,
        "batch_size": args.batch_size,
        "contenders": {
            name: {
                "traces": int(models[name].train_function.experimental_get_tracing_count()),
                "pfor_conversions": conversions[name],
                "fallbacks": sorted(set(fallbacks[name].ops)),
                "fallback_count": len(fallbacks[name].ops),
                "first_step_seconds": first[name],
                "best_step_seconds": {n: round(min(s), 4) for n, s in steps[name].items() if s},
            }
            for name in modules
        },
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
