"""What every section needs: the experiment, the metric and its runs, the document being built, CSV rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lossbench.report import figures as fig
from lossbench.report import stats
from lossbench.report.document import Document, Image
from lossbench.report.load import Experiment, finished
from lossbench.report.metric import difference_range
from lossbench.report.sections.formatting import Units

BASELINE = "ce"
MIN_SEEDS_FOR_CLAIM = 5  # fewer seeds per setting: per-setting intervals get a caution
MIN_BLOCKS_FOR_TEST = 6  # the two-sided signed-rank test cannot reach p < 0.05 with fewer pairs


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

    @classmethod
    def create(cls, exp: Experiment, metric: str, out: Path) -> ReportContext:
        units = Units(metric, higher_is_better(metric))
        column = f"test/{metric}"
        runs = finished(exp.runs, column)
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
            colours=fig.palette(losses) if losses else {},
            doc=Document(f"lossbench report — experiment “{exp.name}”"),
            figures_dir=out / "figures",
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

    def figure(self, path: Path | None, alt: str, caption: str) -> None:
        """The figure at ``path`` into the document; none when the figure had nothing to draw."""
        if path is not None:
            self.doc.add(Image(f"figures/{path.name}", alt, caption))

    def against_baseline(self, wide: pd.DataFrame, scope: str) -> list[stats.Comparison]:
        """Every loss against the baseline over these blocks, recorded for comparisons.csv."""
        comps = stats.against_baseline(wide, BASELINE)
        bounds = difference_range(self.units.metric)
        for c in comps:
            low, high, _ = stats.clip_interval(*c.ci, bounds)
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
                )
            )
        return comps
