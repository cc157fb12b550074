"""Assemble a report: numbers (stats), figures, plain-sentence findings; written as HTML, Markdown, CSV.

The sections themselves live in :mod:`lossbench.report.sections`; this module puts them in order and writes
the files.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

import pandas as pd

from lossbench.report.document import Document
from lossbench.report.load import Experiment, LazyClient, mlflow_runs
from lossbench.report.metric import check_metric, check_rope
from lossbench.report.sections import (
    about,
    accounting,
    calibration,
    curves,
    datasets,
    findings,
    per_class,
    regularization,
    results,
    significance,
    tuning,
)
from lossbench.report.sections.context import ReportContext
from lossbench.report.stats import ROPE

log = logging.getLogger("lossbench")


class ReportBuilder:
    """The report's sections in document order, over one shared :class:`ReportContext`.

    One method per section (benchmarks/report_build.py times each by its name); in a method, the name of the
    section's module is the module, not the method.
    """

    def __init__(self, exp: Experiment, metric: str, out: Path, rope: float = ROPE, executor=None) -> None:
        self.ctx = ReportContext.create(exp, metric, out, rope=rope, executor=executor)

    @property
    def doc(self) -> Document:
        return self.ctx.doc

    @property
    def summary(self) -> pd.DataFrame:
        return self.ctx.summary

    @property
    def comparisons(self) -> list[dict]:
        return self.ctx.comparisons

    def intro(self) -> None:
        about.intro(self.ctx)
        tuning.intro(self.ctx)  # a tuned sweep: what its numbers are

    def findings(self) -> None:
        findings.findings(self.ctx)

    def tuning(self) -> None:
        tuning.tuning(self.ctx)

    def across_datasets(self) -> None:
        datasets.datasets(self.ctx)

    def glance(self) -> None:
        results.glance(self.ctx)

    def accounting(self) -> None:
        accounting.accounting(self.ctx)

    def main_tables(self) -> None:
        results.main_tables(self.ctx)

    def regularization(self) -> None:
        regularization.regularization(self.ctx)

    def significance(self) -> None:
        significance.significance(self.ctx)

    def calibration(self, client) -> None:
        calibration.calibration(self.ctx, client)

    def per_class(self) -> None:
        per_class.per_class(self.ctx)

    def curves(self, client) -> None:
        curves.curves(self.ctx, client)

    def na_matrix(self) -> None:
        accounting.na_matrix(self.ctx)

    def files(self) -> None:
        about.files(self.ctx)

    def build(self) -> Document:
        try:
            return self._build()
        except BaseException:
            self.ctx.drawing.abandon()
            raise

    def _build(self) -> Document:
        self.intro()
        if self.ctx.runs.empty:
            self.findings()
            self.accounting()
            self.na_matrix()
            self.ctx.drawing.settle(self.doc.blocks)
            return self.doc
        findings_at = len(self.doc.blocks)
        self.tuning()  # right after the findings (inserted before it below); only for a tuned sweep
        self.across_datasets()
        self.glance()
        self.accounting()
        self.main_tables()
        self.regularization()
        self.significance()
        client = LazyClient(self.ctx.exp.uri)
        self.calibration(client)
        self.per_class()
        self.curves(client)
        self.na_matrix()
        self.files()
        rest, self.doc.blocks = self.doc.blocks[findings_at:], self.doc.blocks[:findings_at]
        self.findings()  # first in the document, written once the numbers behind it exist
        self.doc.blocks.extend(rest)
        self.ctx.drawing.settle(self.doc.blocks)  # the figures the helper process draws
        return self.doc


def build_report(
    experiment: str | list[str],
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    metric: str = "balanced_accuracy",
    sweep: str = "latest",
    *,
    key: str = "--out",
    rope: float = ROPE,
    executor=None,
) -> Path:
    """Build the comparison report of an MLflow experiment; returns the path of its ``index.html``.

    ``experiment``: a name, or a list of names and globs (``["a", "bench*"]``) whose runs go into one
    report (:mod:`lossbench.report.combine`; default folder ``reports/<first>-and-<n - 1>-more/``).

    ``sweep``: ``"latest"`` (default), ``"all"`` (every run), or a sweep id. ``out`` defaults to
    ``reports/<experiment>/`` (:func:`lossbench.paths.report_dir`: a relative folder must lie inside
    ``reports/``). The folder gets ``index.html``, ``README.md``, ``summary.csv``, ``comparisons.csv`` and
    ``figures/``, written by :func:`lossbench.paths.write_report`: a folder that is not empty and holds no
    lossbench report is refused, and files lossbench did not write are never replaced or removed. ``key``
    names the setting in error messages (``report.out`` in a sweep). ``rope``: the Bayesian signed-rank
    test's region of practical equivalence, in the metric's units (default 0.01: 1 point). ``executor``
    (``submit(fn, *args)`` returning a future, e.g. a sweep's idle helper process): the figures are drawn
    there as well as here (:mod:`lossbench.report.drawing`).
    """
    from lossbench.paths import check_report_dir, report_dir, shown, write_report

    metric = check_metric(metric)
    rope = check_rope(rope)
    from lossbench.report.combine import default_name, load_experiments, resolve

    # a list: several experiments (names or globs) in one report, lossbench.report.combine
    names = [experiment] if isinstance(experiment, str) else resolve(list(experiment), tracking_uri)
    folder = report_dir(out, default_name(names), key=key)
    check_report_dir(folder, key=key)  # before anything is read
    started = time.perf_counter()
    exp = load_experiments(names, tracking_uri, scope=sweep)
    log.info(
        "report: %d runs of experiment '%s' read in %.1f s",
        len(mlflow_runs(exp.runs)),  # MLflow's runs, not the post-hoc baseline rows made from them
        exp.name,
        time.perf_counter() - started,
    )
    # what is loaded lives through the build: keep the garbage collector from walking it again and again
    # (statsmodels' Holm correction calls gc.collect(), ~1 s a call with 10k runs in memory)
    gc.freeze()
    try:
        drawing = {}
        write_report(
            folder, lambda staging: drawing.update(_write(exp, metric, staging, rope, executor)), key=key
        )
    finally:
        gc.unfreeze()
    helper = drawing.get("by_helper", 0)
    log.info(
        "report: built in %.1f s%s -> %s",
        time.perf_counter() - started,
        f" ({helper} of {helper + drawing.get('here', 0)} figures drawn by the helper process)"
        if helper
        else "",
        shown(folder / "index.html"),
    )
    return folder / "index.html"


def _write(exp: Experiment, metric: str, staging: Path, rope: float = ROPE, executor=None) -> dict:
    """Every file of the report, into the (fresh) folder ``staging``; how many figures were drawn where."""
    from lossbench.report.document import to_html, to_markdown

    builder = ReportBuilder(exp, metric, staging, rope, executor)
    doc = builder.build()
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "index.html").write_text(to_html(doc), encoding="utf-8")
    (staging / "README.md").write_text(to_markdown(doc), encoding="utf-8")
    builder.summary.to_csv(staging / "summary.csv", index=False)
    pd.DataFrame(builder.comparisons).to_csv(staging / "comparisons.csv", index=False)
    if builder.ctx.tuning is not None:  # a tuned sweep: default vs tuned per cell (the Tuning section)
        builder.ctx.tuning_rows.to_csv(staging / "tuning.csv", index=False)
    return {"by_helper": builder.ctx.drawing.drawn_by_helper, "here": builder.ctx.drawing.drawn_here}


__all__ = ["build_report"]
