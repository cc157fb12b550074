"""How the report writes numbers: metric values and differences in the metric's units, p-values, axes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lossbench.report.metric import difference_range, metric_range
from lossbench.report.stats import clip_interval

# metrics in [0, 1] (or [-1, 1]) read best as points (x100); the others keep their own units
POINT_METRICS = {
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "minority_recall",
    "g_mean",
    "mcc",
    "ece",
    "adaptive_ece",
    "pr_auc",
    "roc_auc",
}


@dataclass
class Units:
    metric: str
    higher: bool

    @property
    def points(self) -> bool:
        return self.metric in POINT_METRICS

    @property
    def label(self) -> str:
        return self.metric.replace("_", " ")

    def value(self, x: float) -> str:
        return "–" if not np.isfinite(x) else f"{x:.3f}"

    @property
    def range(self) -> tuple[float, float] | None:
        """The metric's range (:func:`lossbench.report.metric.metric_range`); None when unbounded."""
        return metric_range(self.metric)

    def estimate(self, mean: float, half: float) -> str:
        """A mean with its 95% interval: ``0.912 ± 0.031``, or ``0.958 (0.782–1.000)`` when the symmetric
        interval reaches past the metric's range and is shown cut to it."""
        if not np.isfinite(mean):
            return "–"
        if not np.isfinite(half):
            return f"{self.value(mean)} ± –"
        low, high, clipped = clip_interval(mean - half, mean + half, self.range)
        if clipped:
            return f"{self.value(mean)} ({self.value(low)}–{self.value(high)})"
        return f"{self.value(mean)} ± {self.value(half)}"

    def diff(self, x: float) -> str:
        if not np.isfinite(x):
            return "–"
        return f"{100 * x:+.1f} points" if self.points else f"{x:+.4f}"

    def interval(self, low: float, high: float) -> str:
        """The 95% interval of a difference of two values, cut to the range differences can take."""
        if not (np.isfinite(low) and np.isfinite(high)):
            return "no interval (one pair)"
        low, high, _ = clip_interval(low, high, difference_range(self.metric))
        if self.points:
            return f"95% CI {100 * low:+.1f} to {100 * high:+.1f}"
        return f"95% CI {low:+.4f} to {high:+.4f}"

    def better(self, diff: float) -> bool:
        return diff > 0 if self.higher else diff < 0


def fmt_ratios(values) -> str:
    return ", ".join(f"{v:g}" for v in sorted(values))


def fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float) -> str:
    """``p = 0.012`` or ``p < 0.001``, for sentences."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def fmt_axis(value) -> str:
    """An axis value as tables show it: floats compact (10.0 -> 10), anything else as its string."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def safe_name(name: str) -> str:
    """``name`` usable in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def display_uri(uri: str) -> str:
    """A SQLite store inside the working folder is shown relative to it (``sqlite:///mlflow.db``): the report
    travels (committed, attached to MLflow); the absolute path of the machine that built it means nothing."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        try:
            return f"sqlite:///{path.resolve().relative_to(Path.cwd().resolve())}"
        except ValueError:
            return uri
    return uri
