"""Bias report on predictions: a task's metrics per slice of the data, with bootstrap intervals.

A *slicing* gives every row a key (a value of a data column, a length bucket, the gold
label); the rows with one key are a *slice*. :func:`slice_report` scores each slice with
the task's own metric function, the gap of each metric to the overall figure, the worst
slice by the headline metric, and a percentile bootstrap interval of the headline metric
for the whole data and for each slice. It takes per-row gold values, per-row predictions
and a metric function, so it needs no model (and imports no TensorFlow).

Bootstrap rule (:class:`Bootstrap`): for a slice of ``n`` rows, ``resamples`` times draw
``n`` rows with replacement (``numpy.random.default_rng(seed).integers(0, n, n)``, one
generator per slice, so a slice's interval does not depend on the other slices), score
them, and take the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of
the scores (``numpy.percentile``, linear interpolation). Resamples whose headline metric
is undefined (None, e.g. a correlation of a constant) are left out.

>>> import numpy as np
>>> gold = np.array([1, 1, 0, 0])
>>> predicted = np.array([1, 0, 0, 0])
>>> def accuracy(g, p):
...     return {"accuracy": float(np.mean(g == p))}
>>> report = slice_report(gold, predicted, {"group": ["a", "a", "b", "b"]}, accuracy, "accuracy",
...                       bootstrap=Bootstrap(resamples=0))
>>> [(s["key"], s["count"], s["metrics"]["accuracy"], s["gap"]["accuracy"]) for s in
...  report["slicings"]["group"]["slices"]]
[('a', 2, 0.5, -0.25), ('b', 2, 1.0, 0.25)]
>>> report["slicings"]["group"]["worst"]["key"]
'a'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfft.errors import ConfigError

Metric = Callable[[Any, Any], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """How slice intervals are drawn (see the module docstring); ``resamples=0`` skips them."""

    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resamples < 0:
            raise ConfigError(f"`resamples` must be >= 0. Received: resamples={self.resamples!r}")
        if not 0 < self.confidence < 1:
            raise ConfigError(
                f"`confidence` must be between 0 and 1. Received: confidence={self.confidence!r}"
            )


def take(values: Any, indices: np.ndarray) -> Any:
    """The rows ``indices`` of an array, a list, or a dict of them (per-row predictions)."""
    if isinstance(values, Mapping):
        return {name: take(value, indices) for name, value in values.items()}
    if isinstance(values, np.ndarray):
        return values[indices]
    return [values[int(index)] for index in indices]


def bootstrap_interval(
    gold: Any, predicted: Any, metric: Metric, headline: str, bootstrap: Bootstrap
) -> list[float] | None:
    """The percentile interval of ``metric(...)[headline]`` over resamples of all rows given.

    Returns:
        ``[low, high]``, or None with no resamples or no resample where the metric is defined.
    """
    count = len(gold)
    if bootstrap.resamples == 0 or count == 0:
        return None
    rng = np.random.default_rng(bootstrap.seed)
    scores = []
    for _ in range(bootstrap.resamples):
        indices = rng.integers(0, count, count)
        value = metric(take(gold, indices), take(predicted, indices))[headline]
        if value is not None:
            scores.append(float(value))
    if not scores:
        return None
    tail = (1 - bootstrap.confidence) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    return [float(low), float(high)]


def _scalars(metrics: Mapping[str, Any], names: Sequence[str]) -> dict[str, float | None]:
    return {name: None if metrics.get(name) is None else float(metrics[name]) for name in names}


def _gap(value: float | None, overall: float | None) -> float | None:
    return None if value is None or overall is None else value - overall


def _worst(slices: list[dict], headline: str, higher_is_better: bool) -> dict | None:
    """The slice with the lowest (or highest, when lower is better) headline metric."""
    scored = [entry for entry in slices if entry["metrics"][headline] is not None]
    if not scored:
        return None
    sign = 1 if higher_is_better else -1
    worst = min(scored, key=lambda entry: sign * entry["metrics"][headline])
    return {
        "key": worst["key"],
        "count": worst["count"],
        headline: worst["metrics"][headline],
        "gap": worst["gap"][headline],
    }


def slice_report(
    gold: Any,
    predicted: Any,
    slicings: Mapping[str, Sequence[str]],
    metric: Metric,
    headline: str,
    names: Sequence[str] | None = None,
    *,
    bootstrap: Bootstrap = Bootstrap(),
    higher_is_better: bool = True,
) -> dict:
    """Per-slice metrics, gaps to the overall figures, the worst slice and bootstrap intervals.

    Args:
        gold: Per-row gold values (an array or list; the metric's first argument).
        predicted: Per-row predictions (an array, a list, or a dict of arrays: the metric's
            second argument).
        slicings: ``{name: key of each row}``; the slices of a slicing are listed in
            sorted key order.
        metric: ``metric(gold rows, predicted rows) -> {metric name: value}`` (the task's own).
        headline: The metric that ranks slices and gets intervals.
        names: The metrics to report per slice (default: only ``headline``).
        bootstrap: How intervals are drawn.
        higher_is_better: Whether a higher ``headline`` is better (picks the worst slice).

    Returns:
        ``{"headline", "higher_is_better", "bootstrap", "overall": {"count", "metrics",
        "interval"}, "slicings": {name: {"slices": [{"key", "count", "metrics", "gap",
        "interval"}], "worst": {"key", "count", headline, "gap"} or None}}}``; a gap is the
        slice's value minus the overall one (None where either is undefined).

    Raises:
        ConfigError: A slicing does not give one key per row.
    """
    names = list(names or [headline])
    if headline not in names:
        names.insert(0, headline)
    count = len(gold)
    overall_metrics = _scalars(metric(gold, predicted), names)
    report = {
        "headline": headline,
        "higher_is_better": higher_is_better,
        "bootstrap": {**dataclasses.asdict(bootstrap), "method": "percentile"},
        "overall": {
            "count": count,
            "metrics": overall_metrics,
            "interval": bootstrap_interval(gold, predicted, metric, headline, bootstrap),
        },
        "slicings": {},
    }
    for name, keys in slicings.items():
        if len(keys) != count:
            raise ConfigError(f"slicing `{name}` has {len(keys)} keys for {count} rows.")
        slices = []
        for key in sorted(set(keys)):
            rows = np.flatnonzero(np.asarray([k == key for k in keys], dtype=bool))
            part_gold, part_predicted = take(gold, rows), take(predicted, rows)
            values = _scalars(metric(part_gold, part_predicted), names)
            slices.append(
                {
                    "key": key,
                    "count": len(rows),
                    "metrics": values,
                    "gap": {k: _gap(values[k], overall_metrics[k]) for k in names},
                    "interval": bootstrap_interval(part_gold, part_predicted, metric, headline, bootstrap),
                }
            )
        report["slicings"][name] = {"slices": slices, "worst": _worst(slices, headline, higher_is_better)}
    return report


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _interval(interval: list[float] | None) -> str:
    return "n/a" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def format_slices(report: Mapping[str, Any]) -> list[str]:
    """The report as a readable table per slicing (for ``tfft evaluate`` without ``--json``)."""
    headline = report["headline"]
    names = list(report["overall"]["metrics"])
    boot = report["bootstrap"]
    ci = f"{boot['confidence']:.0%} CI"
    lines = [
        f"slices    {headline} intervals: {boot['confidence']:.0%} percentile bootstrap, "
        f"{boot['resamples']} resamples, seed {boot['seed']}"
    ]
    width = max(
        [len("overall")] + [len(s["key"]) for part in report["slicings"].values() for s in part["slices"]]
    )
    width = min(width, 40)
    header = f"  {'slice':<{width}}  {'count':>6}  " + "  ".join(f"{n:>10}" for n in names)
    header += f"  {'gap':>8}  {ci}"
    overall = report["overall"]
    for name, part in report["slicings"].items():
        lines += ["", f"by {name}", header]
        rows = [("overall", overall["count"], overall["metrics"], None, overall["interval"])]
        rows += [
            (entry["key"], entry["count"], entry["metrics"], entry["gap"][headline], entry["interval"])
            for entry in part["slices"]
        ]
        for key, count, metrics, gap, interval in rows:
            shown = key if len(key) <= width else key[: width - 1] + "…"
            values = "  ".join(f"{_number(metrics[n]):>10}" for n in names)
            gap_text = "" if key == "overall" and gap is None else _number(gap, signed=True)
            lines.append(f"  {shown:<{width}}  {count:>6}  {values}  {gap_text:>8}  {_interval(interval)}")
        worst = part["worst"]
        if worst is not None:
            lines.append(
                f"  worst: {worst['key']} ({headline} {_number(worst[headline])}, "
                f"gap {_number(worst['gap'], signed=True)}, {worst['count']} rows)"
            )
    return lines
