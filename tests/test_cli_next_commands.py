"""The "next" commands a fit prints: each reads the evaluation data the way the fit did.

Every hint is parsed by the real ``tfft evaluate`` / ``tfft predict`` option parser, and the
reading configuration it gives must equal the fit's (for the options those commands take).
"""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from tfft.config import load_config
from tfft_cli.main import evaluate, predict
from tfft_cli.options import overrides
from tfft_cli.results import next_commands

EXPORT = "saved_models/run/1"


def fit_config(task: str, **settings):
    return load_config(None, {"model.task": task, "data.train": "train", **settings})


def parsed(command, hint: str, task: str):
    """The configuration the hint's options give ``command`` (as ``_reading_config`` builds it)."""
    words = shlex.split(hint)
    assert words[:2] == ["tfft", command.name]
    context = command.make_context(command.name, words[2:])
    return load_config(None, {**overrides(dict(context.params)), "model.task": task})


def reading(config, command: str) -> dict:
    """The values of the options ``command`` takes from the data section and the task's options."""
    return {
        f"{type(section).__name__}.{field.name}": getattr(section, field.name)
        for section in (config.data, config.task)
        for field in dataclasses.fields(section)
        if command in field.metadata.get("commands", ()) and not field.metadata.get("saved")
    }


CASES = {
    "classify-columns": ("classify", {"data.text_column": "sentence", "data.label_column": "gold"}),
    "classify-defaults": ("classify", {}),
    "pairs-headerless": (
        "regress",
        {
            "data.text_column": "a",
            "data.text_pair_column": "b",
            "data.label_column": "score",
            "data.columns": "a,b,score",
        },
    ),
    "ner-fields": ("ner", {"task.tokens_field": "words", "task.tags_field": "labels"}),
    "qa-fields": ("qa", {"task.question_column": "q", "task.context_column": "passage"}),
    "summarize-file-pairs": ("summarize", {}),
    "translate-columns": ("translate", {"task.source_column": "en", "task.target_column": "de"}),
    "causal-lm-documents": ("causal-lm", {"task.blank_line_documents": True}),
    "multilabel-format": ("multilabel", {"data.format": "jsonl", "data.label_column": "labels"}),
}


@pytest.mark.parametrize("case", CASES)
def test_the_evaluate_hint_reads_the_data_as_the_fit_did(case):
    task, settings = CASES[case]
    config = fit_config(task, **{"data.eval": "dev file.tsv", **settings})
    predict_hint, evaluate_hint = next_commands(config, EXPORT, "run")
    assert shlex.split(evaluate_hint)[2:5] == ["saved_models/run", "--data", "dev file.tsv"]
    assert reading(parsed(evaluate, evaluate_hint, task), "evaluate") == reading(config, "evaluate")
    parsed(predict, predict_hint, task)  # the predict hint parses too
    if task in ("summarize", "translate", "ner", "qa") and case != "translate-columns":
        assert "--text-column" not in evaluate_hint  # the old hint's mistake


def test_only_changed_options_are_spelled_out():
    config = fit_config("classify", **{"data.eval": "dev.tsv", "data.text_column": "sentence"})
    assert next_commands(config, EXPORT, "run")[1] == (
        "tfft evaluate saved_models/run --data dev.tsv --text-column sentence"
    )
    plain = fit_config("classify", **{"data.eval": "dev.tsv"})
    assert next_commands(plain, EXPORT, "run")[1] == "tfft evaluate saved_models/run --data dev.tsv"


def test_qa_predict_hint_gives_a_question_and_its_context():
    (hint,) = next_commands(fit_config("qa"), EXPORT, "run")
    words = shlex.split(hint)
    assert words[words.index("--text") + 1] == "a question"
    assert "--text-pair" in words


def test_a_run_without_export_is_told_to_export():
    assert next_commands(fit_config("classify"), None, "runs/a b") == [
        "tfft export 'runs/a b' --export-dir saved_models/NAME"
    ]
