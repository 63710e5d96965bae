"""Options of ``--task causal-lm`` (no TensorFlow).

Plain text is read from ``--text-column`` of a table (the data section's option) or from a
``.txt`` file; ``--prompt-column`` with ``--response-column`` switch to prompt/response
pairs. The generation options are saved with the model (its settings, ``task.json``, the
export), so ``tfft predict`` generates as the model was configured.
"""

from __future__ import annotations

import dataclasses

from tfft.options import TaskOptions, non_negative, option, positive

READ = ("evaluate", "predict")


def _probability(name: str, value: float) -> None:
    """``0 < value <= 1``."""
    from tfft.errors import ConfigError

    if not 0 < value <= 1:
        raise ConfigError(f"`{name}` must be in (0, 1]. Received: {name}={value!r}")


@dataclasses.dataclass(frozen=True)
class CausalLMOptions(TaskOptions):
    block_size: int | None = option(
        None,
        "Plain text: length of the packed training blocks, in tokens.  [default: --max-length]",
        check=positive,
        show_default=False,
        saved=True,
    )
    blank_line_documents: bool = option(
        False,
        "Plain .txt files: documents are separated by blank lines (default: one document per line).",
        flag="--blank-line-documents/--line-documents",
        commands=("evaluate",),
    )
    prompt_column: str | None = option(
        None, "Column with the prompt (prompt/response data; the loss covers the response).", commands=READ
    )
    response_column: str | None = option(
        None, "Column with the response (prompt/response data).", commands=("evaluate",)
    )
    template: str | None = option(
        None,
        'How a prompt is written before its response, with "{prompt}" in it, e.g. "{prompt}\\n" '
        'or "Q: {prompt}\\nA:" (\\n and \\t are read as newline and tab).  [default: "{prompt}"]',
        show_default=False,
        saved=True,
    )
    max_new_tokens: int = option(
        32,
        "Most tokens generated (tfft predict: keep the first N tokens of the export's generation, "
        "N at most the export's own).",
        check=positive,
        saved=True,
        commands=("predict",),
    )
    do_sample: bool = option(
        False,
        "Sample the next token (default: greedy or beam search).",
        flag="--do-sample/--greedy",
        saved=True,
    )
    temperature: float = option(1.0, "Sampling temperature.", check=positive, saved=True)
    top_k: int = option(
        0, "Sample among the k likeliest tokens only (0 = all).", check=non_negative, saved=True
    )
    top_p: float = option(
        1.0, "Nucleus sampling: the smallest set of tokens of this mass.", check=_probability, saved=True
    )
    num_beams: int = option(1, "Beam size (1 = greedy).", check=positive, saved=True)
    stop: str | None = option(
        None,
        'Stop strings separated by "|" (the generated text is cut at the first one), e.g. "\\n|###" '
        "(tfft predict: replace the export's).",
        show_default=False,
        saved=True,
        commands=("predict",),
    )
    sample_seed: int = option(
        0, "Sampling seed (the same seed gives the same samples).", check=non_negative, saved=True
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        from tfft.errors import ConfigError

        if self.response_column is not None and self.prompt_column is None:
            raise ConfigError(
                "--response-column needs --prompt-column. "
                f"Received: prompt_column={self.prompt_column!r}, response_column={self.response_column!r}"
            )
        if self.template is not None and "{prompt}" not in self.template:
            raise ConfigError(f'`template` must contain "{{prompt}}". Received: template={self.template!r}')
        if self.do_sample and self.num_beams > 1:
            raise ConfigError(
                "Give --do-sample or --num-beams > 1, not both. "
                f"Received: do_sample={self.do_sample!r}, num_beams={self.num_beams!r}"
            )


OPTIONS = CausalLMOptions
