"""Comparison reports: which loss wins where, by how much, and how sure we are.

    python -m lossbench.report --experiment imbalance          # reports/imbalance/index.html, README.md

From a notebook::

    from lossbench.report import load_runs, build_report
    df = load_runs("imbalance")                 # one row per MLflow run, metrics and swept axes as columns
    exp = load_experiment("imbalance")
    curves = load_curves(exp, exp.runs["run_id"])   # per-epoch histories: run_id, curve, step, value
    build_report("imbalance", out="reports/imbalance")

Importing this package is cheap; pandas, scipy, seaborn and mlflow load when a function is called.
"""

from __future__ import annotations

from lossbench.report.metric import check_metric

__all__ = ["build_report", "check_metric", "load_curves", "load_experiment", "load_runs"]


def __getattr__(name: str):
    if name == "build_report":
        from lossbench.report.build import build_report

        return build_report
    if name in ("load_runs", "load_experiment", "load_curves"):
        from lossbench.report import load

        return getattr(load, name)
    raise AttributeError(f"module 'lossbench.report' has no attribute {name!r}")
