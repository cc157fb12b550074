"""The report's metric names, checked without loading pandas or MLflow (the CLIs check before any work)."""

from __future__ import annotations

import re


def check_metric(metric: str, key: str = "--metric") -> str:
    """The metric name (without split prefix) if lossbench logs it, else a ConfigError naming the options."""
    from lossbench.errors import ConfigError
    from lossbench.metrics import METRICS

    name = str(metric).removeprefix("test/")
    allowed = [m for m in METRICS if "<" not in m]
    if name in allowed or re.fullmatch(r"recall_class_\d+", name):
        return name
    raise ConfigError(
        key, metric, "not a metric lossbench logs", f"Allowed: {', '.join(allowed)}, recall_class_<k>."
    )


# the range each logged metric can take (lossbench/metrics.py states them); None: unbounded (log loss)
RANGES: dict[str, tuple[float, float] | None] = {
    "accuracy": (0.0, 1.0),
    "balanced_accuracy": (0.0, 1.0),
    "macro_f1": (0.0, 1.0),
    "minority_recall": (0.0, 1.0),
    "g_mean": (0.0, 1.0),
    "mcc": (-1.0, 1.0),
    "log_loss": None,
    "brier": (0.0, 2.0),
    "ece": (0.0, 1.0),
    "adaptive_ece": (0.0, 1.0),
    "pr_auc": (0.0, 1.0),
    "roc_auc": (0.0, 1.0),
}


def metric_range(metric: str) -> tuple[float, float] | None:
    """The interval a metric's values lie in, or None when it is unbounded (per-class recalls: [0, 1])."""
    name = str(metric).removeprefix("test/").removeprefix("val/")
    if re.fullmatch(r"recall_class_\d+", name):
        return (0.0, 1.0)
    return RANGES.get(name)


def difference_range(metric: str) -> tuple[float, float] | None:
    """The interval a difference of two values of the metric lies in: [lo - hi, hi - lo]."""
    bounds = metric_range(metric)
    if bounds is None:
        return None
    span = bounds[1] - bounds[0]
    return (-span, span)


def check_rope(rope, key: str = "--rope") -> float:
    """The Bayesian signed-rank test's region of practical equivalence, checked: a number in [0, 1), in the
    metric's units (0.01 = 1 point of a [0, 1] metric); else a ConfigError naming ``key``."""
    import numbers

    from lossbench.errors import ConfigError

    if isinstance(rope, bool) or not isinstance(rope, numbers.Real) or not 0 <= rope < 1:
        raise ConfigError(key, rope, "must be a number in [0, 1), in the metric's units (0.01 = 1 point)")
    return float(rope)
