"""Scores of generated text against references: sacreBLEU (translate) and ROUGE (summarize).

``bleu_metrics`` is corpus sacreBLEU with its default settings (0-100, signature kept);
``rouge_metrics`` averages ROUGE-1/2/L F1 over the examples (rouge-score, with stemming;
0-1). Both also give the number of examples and the mean generated length in words.

>>> round(bleu_metrics(["der Film war gut"], ["der Film war gut"])["bleu"], 2)
100.0
>>> round(rouge_metrics(["the cat sat"], ["the cat sat on the mat"])["rouge1"], 4)
0.6667
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ROUGE_KINDS = ("rouge1", "rouge2", "rougeL")


def mean_words(generated: Sequence[str]) -> float:
    """The mean length of the generated texts, in whitespace-separated words (0 for none)."""
    return float(np.mean([len(g.split()) for g in generated])) if generated else 0.0


def bleu_metrics(generated: Sequence[str], references: Sequence[str]) -> dict:
    """``examples``, ``bleu`` (0-100), ``bleu_signature`` and ``generated_length``."""
    # Imported here, not at the top: only scoring needs sacrebleu (a declared dependency).
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    score = bleu.corpus_score(list(generated), [list(references)])
    return {
        "examples": len(references),
        "bleu": float(score.score),
        "bleu_signature": str(bleu.get_signature()),
        "generated_length": mean_words(generated),
    }


def rouge_metrics(generated: Sequence[str], references: Sequence[str]) -> dict:
    """``examples``, mean ``rouge1``/``rouge2``/``rougeL`` F1 (0-1) and ``generated_length``."""
    # Imported here, not at the top: rouge_score pulls in nltk (about 1 s), and only
    # scoring needs it.
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_KINDS), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_KINDS, 0.0)
    for output, reference in zip(generated, references):
        scores = scorer.score(reference, output)
        for kind in ROUGE_KINDS:
            totals[kind] += scores[kind].fmeasure
    count = max(len(references), 1)
    return {
        "examples": len(references),
        **{kind: totals[kind] / count for kind in ROUGE_KINDS},
        "generated_length": mean_words(generated),
    }
