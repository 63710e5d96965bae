"""Bias reports (no TensorFlow): on data (:mod:`~tfft.reports.data`, ``tfft inspect`` and
``data_report.json``) and on predictions per slice (:mod:`~tfft.reports.slices`,
:mod:`~tfft.reports.predictions`, ``tfft evaluate --slice-column/--slice-by``)."""
