"""Options of ``--task summarize`` and ``--task translate``."""

from __future__ import annotations

import dataclasses

from tfft.options import TaskOptions, fraction, non_negative, option, positive

READ = ("evaluate", "predict")
GENERATION_KEYS = ("max_new_tokens", "num_beams", "length_penalty", "min_new_tokens", "repetition_penalty")


@dataclasses.dataclass(frozen=True)
class Seq2SeqOptions(TaskOptions):
    source_column: str = option("source", "Column with the source text.", commands=READ)
    target_column: str = option("target", "Column with the target text.", commands=("evaluate",))
    source_file: str | None = option(None, "Source side of parallel plain-text files.", commands=READ)
    target_file: str | None = option(
        None, "Target side of parallel plain-text files.", commands=("evaluate",)
    )
    source_prefix: str | None = option(
        None, 'Prefix of every source, e.g. "summarize: " for T5.', commands=READ, saved=True
    )
    max_target_length: int = option(128, "Longest target, in tokens.", check=positive, saved=True)
    num_beams: int = option(1, "Beam size (1 = greedy).", check=positive, saved=True)
    max_new_tokens: int = option(64, "Most tokens generated.", check=positive, saved=True)
    length_penalty: float = option(
        1.0,
        "Beam search length penalty (the score is divided by length**penalty; above 0 favours longer).",
        saved=True,
    )
    min_new_tokens: int = option(
        0, "Fewest tokens generated before the end token (0: no minimum).", check=non_negative, saved=True
    )
    repetition_penalty: float = option(
        1.0,
        "Above 1: tokens already generated become less likely (CTRL's penalty; 1: off).",
        check=positive,
        saved=True,
    )
    label_smoothing: float = option(
        0.0,
        "Share of each target token's probability spread over the vocabulary in the training loss.",
        check=fraction,
        saved=True,
    )
    copy_attention: bool = option(
        False,
        "BERT2BERT: a pointer-generator head that may copy source tokens into the output (one "
        "vocabulary on both sides).",
        saved=True,
    )
    decoder_model: str | None = option(
        None,
        "With an encoder --hf-model: the encoder checkpoint that warm-starts the decoder (its "
        "vocabulary is the target's).  [default: --hf-model]",
        show_default=False,
        saved=True,
    )


OPTIONS = Seq2SeqOptions


def generation_settings(settings: dict) -> dict:
    """The generation settings (:data:`GENERATION_KEYS`) of a model's saved ``settings``."""
    return Seq2SeqOptions.pick(settings, GENERATION_KEYS)
