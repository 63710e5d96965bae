"""The README's real-data figures, and the slow tests that guard them.

Each claim is a figure as the README writes it and the README words around it. The slow
tests (tests/test_real_*.py) assert their measurement within ``tolerance`` of the figure
(about 2 points: 0.02 for fractions, 2.0 for percentages and BLEU), on both sides: a figure
that got better is as stale as one that got worse. tests/test_readme_claims.py (default
suite, no TensorFlow) checks that the README still says every figure here, so the README
cannot change a figure without its test, nor the test without the README.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
FRACTION = 0.02  # two points of an accuracy, F1 or correlation written as a fraction
PERCENT = 2.0  # two points of a percentage (SQuAD EM and F1) or of sacreBLEU


@dataclasses.dataclass(frozen=True)
class Claim:
    figure: str  # as the README writes it, e.g. "0.870"
    readme: str  # README words that contain the figure (white space collapsed)
    tolerance: float

    @property
    def value(self) -> float:
        return float(self.figure)

    def check(self, name: str, measured: float) -> None:
        """Fail unless ``measured`` is within the tolerance of the README's figure."""
        assert abs(measured - self.value) <= self.tolerance, (
            f"{name}: measured {measured:.4f}, the README says {self.figure} ({self.readme!r}); "
            f"allowed +-{self.tolerance}. Fix the regression, or update the README and "
            "tests/readme_claims.py together."
        )


SST2_ROW = "accuracy 0.870, macro F1 0.869"
STSB_ROW = "Pearson 0.882, Spearman 0.863, MSE 0.49"
NER_ROW = (
    "entity F1 0.906 (P 0.897, R 0.916; LOC 0.94, MISC 0.84, ORG 0.84, PER 0.95): "
    "means of `--seed` 42, 43, 44"
)
EXPORTS = "F1 0.9034 for NER at seed 42, Pearson 0.8817 for STS-B, EM/F1 38.7/55.6 for QA"
QA_ROW = "EM 38.7, F1 55.1 (measured 2026-12-01"
MULTILABEL_ROW = "micro F1 0.902, macro F1 0.867, exact match 0.793"
HUB_ROW = "| `--hub-url` (its TF Hub conversion, XLA off) | 0.869 | 0.868 |"
BEAM = "Beam search (`--num-beams 4`) on the same checkpoint: 35.9"
GIGAWORD = "ROUGE-1/2/L **0.395 / 0.166 / 0.373** through the export"
# "Learning rate: `--learning-rate auto`", the table of the slow suite's recipes run with auto.
SST2_AUTO = "2.18e-4: accuracy 0.882, macro F1 0.881"
STSB_AUTO = "1.37e-4: Pearson 0.884, Spearman 0.867"
NER_AUTO = "8.55e-5: entity F1 0.904 (P 0.897, R 0.911)"
QA_AUTO = "5.36e-5: EM 27.1, F1 42.6"
MULTILABEL_AUTO = "2.18e-4: micro F1 0.921, macro F1 0.898, exact match 0.837"
MULTI30K_AUTO = "2.27e-3: BLEU 4.5"

CLAIMS: dict[str, Claim] = {
    # Tasks table, classify row, and "Figures": the `--hf-model` and `--hub-url` rows.
    "sst2.hf.accuracy": Claim("0.870", SST2_ROW, FRACTION),
    "sst2.hf.macro_f1": Claim("0.869", SST2_ROW, FRACTION),
    "sst2.hub.accuracy": Claim("0.869", HUB_ROW, FRACTION),
    "sst2.hub.macro_f1": Claim("0.868", HUB_ROW, FRACTION),
    # Tasks table, regress row, and the export sentence below the table.
    "stsb.pearson": Claim("0.882", STSB_ROW, FRACTION),
    "stsb.spearman": Claim("0.863", STSB_ROW, FRACTION),
    "stsb.export.pearson": Claim("0.8817", EXPORTS, FRACTION),
    # Tasks table, ner row (overall and per entity type), and the export sentence.
    "ner.f1": Claim("0.906", NER_ROW, FRACTION),
    "ner.precision": Claim("0.897", NER_ROW, FRACTION),
    "ner.recall": Claim("0.916", NER_ROW, FRACTION),
    "ner.LOC.f1": Claim("0.94", NER_ROW, FRACTION),
    "ner.MISC.f1": Claim("0.84", NER_ROW, FRACTION),
    "ner.ORG.f1": Claim("0.84", NER_ROW, FRACTION),
    "ner.PER.f1": Claim("0.95", NER_ROW, FRACTION),
    "ner.export.f1": Claim("0.9034", EXPORTS, FRACTION),
    # Tasks table, qa row, and the export sentence.
    "qa.exact_match": Claim("38.7", QA_ROW, PERCENT),
    "qa.f1": Claim("55.1", QA_ROW, PERCENT),
    "qa.export.exact_match": Claim("38.7", EXPORTS, PERCENT),
    "qa.export.f1": Claim("55.6", EXPORTS, PERCENT),
    # Tasks table, multilabel row.
    "multilabel.micro_f1": Claim("0.902", MULTILABEL_ROW, FRACTION),
    "multilabel.macro_f1": Claim("0.867", MULTILABEL_ROW, FRACTION),
    "multilabel.exact_match": Claim("0.793", MULTILABEL_ROW, FRACTION),
    # Tasks table, translate row, and "Summarization and translation", "Real data".
    "multi30k.bleu": Claim("35.1", "sacreBLEU 35.1 (untrained 0.0)", PERCENT),
    "multi30k.export.bleu": Claim("35.05", "gives the same 35.05 through `tfft evaluate`", PERCENT),
    "multi30k.beam4.bleu": Claim("35.9", BEAM, PERCENT),
    # "Summarization and translation", Real data, summarization (and the summarize row).
    "gigaword.export.rouge1": Claim("0.395", GIGAWORD, FRACTION),
    "gigaword.export.rouge2": Claim("0.166", GIGAWORD, FRACTION),
    "gigaword.export.rougeL": Claim("0.373", GIGAWORD, FRACTION),
    # "Learning rate: `--learning-rate auto`": the same recipes with --learning-rate auto.
    "sst2.auto.accuracy": Claim("0.882", SST2_AUTO, FRACTION),
    "stsb.auto.pearson": Claim("0.884", STSB_AUTO, FRACTION),
    "stsb.auto.spearman": Claim("0.867", STSB_AUTO, FRACTION),
    "ner.auto.f1": Claim("0.904", NER_AUTO, FRACTION),
    "qa.auto.exact_match": Claim("27.1", QA_AUTO, PERCENT),
    "qa.auto.f1": Claim("42.6", QA_AUTO, PERCENT),
    "multilabel.auto.micro_f1": Claim("0.921", MULTILABEL_AUTO, FRACTION),
    "multilabel.auto.macro_f1": Claim("0.898", MULTILABEL_AUTO, FRACTION),
    "multi30k.auto.bleu": Claim("4.5", MULTI30K_AUTO, PERCENT),
}


def readme_text() -> str:
    """README.md with every run of white space collapsed to one space."""
    return re.sub(r"\s+", " ", README.read_text(encoding="utf-8"))


def check(name: str, measured: float) -> None:
    """Assert ``measured`` is within the tolerance of the README figure called ``name``."""
    CLAIMS[name].check(name, float(measured))
