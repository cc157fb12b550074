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
