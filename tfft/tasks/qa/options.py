"""Options of ``--task qa``."""

from __future__ import annotations

import dataclasses

from tfft.options import TaskOptions, non_negative, option, positive

READ = ("evaluate", "predict")


@dataclasses.dataclass(frozen=True)
class QAOptions(TaskOptions):
    question_column: str = option("question", "JSON Lines field with the question.", commands=READ)
    context_column: str = option("context", "JSON Lines field with the context.", commands=READ)
    answers_column: str = option("answers", "JSON Lines field with the answers.", commands=("evaluate",))
    doc_stride: int = option(128, "Overlap of context windows, in tokens.", check=non_negative, saved=True)
    max_answer_length: int = option(30, "Longest answer, in tokens.", check=positive, saved=True)
    n_best: int = option(20, "Candidate answers kept per question.", check=positive, saved=True)
    allow_no_answer: bool = option(False, "Questions may have no answer (SQuAD 2.0).", saved=True)


OPTIONS = QAOptions
