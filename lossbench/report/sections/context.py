"""What every section needs: the experiment, the metric and its runs, the document being built, CSV rows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench.baselines import CALIBRATION_ONLY, comparable
from lossbench.report import figures as fig
from lossbench.report import stats
from lossbench.report.document import Document, Image
from lossbench.report.drawing import Drawing, Pending
from lossbench.report.load import Experiment, finished
from lossbench.report.metric import difference_range
from lossbench.report.sections.formatting import Units
from lossbench.report.tuning import Tuned, split

BASELINE = "ce"
MIN_SEEDS_FOR_CLAIM = 5  # fewer seeds per setting: per-setting intervals get a caution
MIN_BLOCKS_FOR_TEST = 6  # the two-sided signed-rank test cannot reach p < 0.05 with fewer pairs
MIN_TEST_PER_CLASS = 20  # fewer test rows of a class: its recall moves in steps of 5+ points
NATURAL_IMBALANCE = 1.5  # rho = 1 keeps the data's own class counts; realised n_max/n_min above this: natural


def higher_is_better(metric: str) -> bool:
    from lossbench.metrics import METRICS

    return METRICS["recall_class_<k>" if metric.startswith("recall_class_") else metric].higher_is_better


def where(frame: pd.DataFrame, values: dict) -> pd.DataFrame:
    """The rows of ``frame`` whose columns equal ``values`` (one setting, or one facet of settings)."""
    for key, value in values.items():
        frame = frame[frame[key] == value]
    return frame


def loss_order(summary: pd.DataFrame) -> list[str]:
    """Losses ordered by mean rank over all settings (best first); the baseline wherever it falls."""
    if summary.empty:
        return []
    return list(summary.groupby("loss")["rank"].mean().sort_values(kind="stable").index)


def _test_sizes(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's test split size (``test_rows``) and its smallest class (``test_min_class``), from the
    ``class_counts.test`` param; NaN when the run did not log it."""
    counts = runs["test_counts"] if "test_counts" in runs else pd.Series([None] * len(runs), index=runs.index)
    ok = [isinstance(c, list) and len(c) > 0 for c in counts]
    rows = [float(sum(c)) if good else math.nan for c, good in zip(counts, ok, strict=True)]
    fewest = [float(min(c)) if good else math.nan for c, good in zip(counts, ok, strict=True)]
    return runs.assign(test_rows=rows, test_min_class=fewest)


def _calibration_only(exp: Experiment, losses: list[str]) -> list[str]:
    """The calibration-only baselines that are rows of ``exp`` but not ranked: they get a colour too (the
    calibration section draws them)."""
    present = set(exp.runs["loss"]) if "loss" in exp.runs else set()
    return [x for x in CALIBRATION_ONLY if x in present and x not in losses]


def fmt_floor(p: float) -> str:
    """A smallest attainable p-value as sentences state it: 0.0625, 0.125, 1."""
    return f"{p:.4g}"


@dataclass
class ReportContext:
    """One report build: its inputs, the document the sections append to, and what goes to the CSV files.

    ``runs`` are the finished runs that logged ``column`` (``test/<metric>``); ``summary`` has one row per
    setting and loss (summary.csv); ``comparisons`` collects every test against the baseline
    (comparisons.csv).
    """

    exp: Experiment
    units: Units
    column: str
    runs: pd.DataFrame
    axes: list[str]
    facets: list[str]  # one table / panel per value of these
    summary: pd.DataFrame
    losses: list[str]
    colours: dict
    doc: Document
    figures_dir: Path
    comparisons: list[dict] = field(default_factory=list)
    rope: float = stats.ROPE  # the Bayesian test's region of practical equivalence, in metric units
    memo: dict = field(default_factory=dict)  # computed once for several sections (unfinished ratios)
    # a tuned sweep: every section compares the tuned runs (``exp`` holds those), the Tuning section also
    # the defaults; None for an untuned one
    tuning: Tuned | None = None
    tuning_rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # tuning.csv
    # where the figures are drawn: here, or also in a helper process (lossbench.report.drawing)
    drawing: Drawing = field(default_factory=Drawing)

    @classmethod
    def create(
        cls, exp: Experiment, metric: str, out: Path, rope: float = stats.ROPE, executor=None
    ) -> ReportContext:
        units = Units(metric, higher_is_better(metric))
        column = f"test/{metric}"
        tuning = split(exp)  # lossbench.report.tuning: findings restated on the tuned runs
        exp = tuning.experiment(exp) if tuning is not None else exp
        # ce_temperature (CE's own predictions) is ranked only on a calibration metric (lossbench.baselines)
        runs = _test_sizes(comparable(finished(exp.runs, column), metric))
        axes = stats.setting_axes(runs) if not runs.empty else ["model", "ratio"]
        summary = stats.summarize(runs, column, units.higher, axes, units.range)
        losses = loss_order(summary)
        return cls(
            exp=exp,
            units=units,
            column=column,
            runs=runs,
            axes=axes,
            facets=[a for a in axes if a != "ratio"],
            summary=summary,
            losses=losses,
            colours=fig.palette(losses + _calibration_only(exp, losses)) if losses else {},
            doc=Document(f"lossbench report — experiment “{exp.name}”"),
            figures_dir=out / "figures",
            rope=rope,
            tuning=tuning,
            drawing=Drawing(executor),
        )

    @property
    def seeds(self) -> int:
        return int(self.summary["n_seeds"].min()) if not self.summary.empty else 0

    @property
    def ratios(self) -> list[float]:
        return sorted(self.runs["ratio"].dropna().unique()) if not self.runs.empty else []

    def main_losses(self) -> list[str]:
        """The baseline, the winners at the largest ratio, and the calibration-minded losses when present."""
        top = self.summary[self.summary["ratio"] == max(self.ratios)]
        winners = list(top.groupby("loss")["rank"].mean().sort_values(kind="stable").index[:2])
        wanted = [BASELINE, *winners, "label_smoothing", "focal"]
        return [x for x in dict.fromkeys(wanted) if x in self.losses][:5]

    def draw(self, call, *args, **kwargs) -> Path | Pending | None:
        """A figure function of :mod:`lossbench.report.figures` called, here or by the helper process
        (:mod:`lossbench.report.drawing`); pass what it returns to :meth:`figure`."""
        return self.drawing.draw(call, *args, **kwargs)

    def figure(self, path: Path | Pending | None, alt: str, caption: str) -> None:
        """The figure at ``path`` into the document; none when the figure had nothing to draw (a figure the
        helper draws is removed at the build's end if it drew nothing)."""
        if isinstance(path, Pending):
            block = Image(f"figures/{path.path.name}", alt, caption)
            self.doc.add(block)
            self.drawing.later(block, path)
        elif path is not None:
            self.doc.add(Image(f"figures/{path.name}", alt, caption))

    # ------------------------------------------------------------------ what the settings are, said plainly

    def natural_ratio(self) -> tuple[float, float] | None:
        """The realised n_max/n_min of the training splits at rho = 1 (lowest, highest over the runs) when
        it is above NATURAL_IMBALANCE: rho = 1 keeps the table's own class counts, which are not balanced.
        None when rho = 1 was not run, did not log ``train/imbalance_ratio``, or is balanced."""
        if self.runs.empty or "train/imbalance_ratio" not in self.runs:
            return None
        realised = self.runs.loc[self.runs["ratio"] == 1.0, "train/imbalance_ratio"].astype(float).dropna()
        if realised.empty or realised.max() <= NATURAL_IMBALANCE:
            return None
        return float(realised.min()), float(realised.max())

    def natural_text(self) -> str | None:
        """``natural (9.2 : 1)`` (or ``natural (8.5–9.2 : 1)`` when seeds or datasets differ)."""
        natural = self.natural_ratio()
        if natural is None:
            return None
        low, high = (f"{v:.1f}" for v in natural)
        return f"natural ({low} : 1)" if low == high else f"natural ({low}–{high} : 1)"

    def ratio_label(self, ratio: float) -> str:
        """``ρ = 10``; ``ρ = 1: natural (9.2 : 1)`` where rho = 1 leaves the data's own imbalance."""
        natural = self.natural_text() if ratio == 1.0 else None
        return f"ρ = {ratio:g}" + (f": {natural}" if natural else "")

    def test_size(self, runs: pd.DataFrame) -> tuple[float, float]:
        """(fewest test rows, fewest test rows of one class) over ``runs``; NaN when not logged."""
        if runs.empty or "test_rows" not in runs or runs["test_rows"].isna().all():
            return math.nan, math.nan
        return float(runs["test_rows"].min()), float(runs["test_min_class"].min())

    def interval_note(self, low: float, high: float, runs: pd.DataFrame) -> str | None:
        """Why an interval must not be read as a measure of certainty, or None: the test split has fewer
        than MIN_TEST_PER_CLASS rows of some class, or the interval has zero width."""
        rows, per_class = self.test_size(runs)
        if np.isfinite(per_class) and per_class < MIN_TEST_PER_CLASS:
            return f"interval not meaningful: {rows:.0f} test rows"
        if np.isfinite(low) and np.isfinite(high) and high - low <= 1e-12:
            return "interval not meaningful: zero width (every paired difference equal)"
        return None

    def interval(self, low: float, high: float, runs: pd.DataFrame) -> str:
        """``95% CI +1.0 to +3.0``, or why there is no interval worth printing (:meth:`interval_note`)."""
        return self.interval_note(low, high, runs) or self.units.interval(low, high)

    def verdict(self, c: stats.Comparison) -> str:
        """The Wilcoxon-Holm verdict of a comparison: better / worse (significant), not significant, or too
        few pairs when no outcome of these pairs could reach p < 0.05."""
        if not np.isfinite(c.p_holm):
            return "no test"
        if c.significant:
            return "significant: better" if self.units.better(c.mean_diff) else "significant: worse"
        if c.n_nonzero == 0:
            return f"no test: all {c.n} paired differences are 0"
        if not c.attainable:
            return f"too few pairs (smallest attainable p = {fmt_floor(c.min_p)})"
        return "not significant"

    def bayes_probs(self, c: stats.Comparison) -> tuple[float, float, float]:
        """(P(better), P(practically equivalent), P(worse)) of the loss against the baseline."""
        if self.units.higher:
            return c.p_above, c.p_rope, c.p_below
        return c.p_below, c.p_rope, c.p_above

    def rope_text(self) -> str:
        if self.units.points:
            pts = 100 * self.rope
            return f"±{pts:g} point{'s' if pts != 1 else ''}"
        return f"±{self.rope:g}"

    def bayes_text(self, c: stats.Comparison) -> str:
        better, same, worse = self.bayes_probs(c)
        if not np.isfinite(better):
            return "no Bayesian test (fewer than 2 pairs)"
        return (
            f"Bayesian signed-rank (ROPE {self.rope_text()}): P(better) {better:.2f}, "
            f"P(equivalent) {same:.2f}, P(worse) {worse:.2f}"
        )

    def against_baseline(
        self, wide: pd.DataFrame, scope: str, runs: pd.DataFrame | None = None
    ) -> list[stats.Comparison]:
        """Every loss against the baseline over these blocks (``runs``: the runs they come from, for the test
        split's size), recorded for comparisons.csv."""
        comps = stats.against_baseline(wide, BASELINE, rope=self.rope)
        bounds = difference_range(self.units.metric)
        rows, per_class = self.test_size(runs if runs is not None else self.runs.iloc[0:0])
        for c in comps:
            low, high, _ = stats.clip_interval(*c.ci, bounds)
            better, same, worse = self.bayes_probs(c)
            self.comparisons.append(
                dict(
                    scope=scope,
                    loss=c.loss,
                    baseline=c.baseline,
                    n_pairs=c.n,
                    mean_diff=c.mean_diff,
                    ci_low=low,
                    ci_high=high,
                    p_wilcoxon=c.p_raw,
                    p_holm=c.p_holm,
                    min_attainable_p=c.min_p,
                    verdict=self.verdict(c),
                    bayes_p_better=better,
                    bayes_p_equivalent=same,
                    bayes_p_worse=worse,
                    rope=c.rope,
                    bayes_draws=c.bayes_draws,
                    test_rows_min=rows,
                    test_rows_per_class_min=per_class,
                    interval_note=self.interval_note(*c.ci, runs) if runs is not None else None,
                )
            )
        return comps
