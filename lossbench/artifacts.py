"""The files a run leaves beside its numbers: its config, the per-class test table, the reliability bins and
the confusion-matrix figure. Written into a plain folder; :mod:`lossbench.tracking` hands the folder to
MLflow."""

from __future__ import annotations

import json
from pathlib import Path

from lossbench.config import to_yaml

RELIABILITY_ARTIFACT = "reliability_test.json"
CONFIG_ARTIFACT = "config.yaml"
TRACEBACK_ARTIFACT = "traceback.txt"


def config_text(cfg: dict) -> str:
    """The run's config without its ``hydra`` key, as ``OmegaConf.to_yaml`` writes it."""
    return to_yaml({k: v for k, v in cfg.items() if k != "hydra"})


def write_config(folder: Path, cfg: dict) -> None:
    (folder / CONFIG_ARTIFACT).write_text(config_text(cfg))


def write_predictions(folder: Path, result) -> None:
    """The test predictions' files: per_class_test.csv, reliability_test.json (models with probabilities;
    pooled across seeds into the report's reliability diagrams) and confusion_matrix_test.png."""
    if result.y_test is None:
        return
    from lossbench.metrics import confusion, per_class_table, reliability_bins
    from lossbench.plots import confusion_matrix_figure

    C = result.num_classes
    table = per_class_table(
        result.y_test,
        result.y_pred,
        num_classes=C,
        class_names=result.class_names,
        train_counts=result.class_counts["train"],
    )
    table.to_csv(folder / "per_class_test.csv", index=False)
    if result.proba_test is not None:
        bins = reliability_bins(result.y_test, result.proba_test)
        (folder / RELIABILITY_ARTIFACT).write_text(json.dumps(bins))
    confusion_matrix_figure(
        confusion(result.y_test, result.y_pred, C),
        result.class_names,
        folder / "confusion_matrix_test.png",
        title="Test confusion matrix (row-normalised recall)",
    )
