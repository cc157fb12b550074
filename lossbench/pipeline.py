"""``run(cfg) -> RunResult``: one experiment end to end, with no tracking. The CLI owns MLflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from lossbench.validate import validate

log = logging.getLogger("lossbench")


@dataclass
class RunResult:
    """Everything a run produced: numbers for tracking and the test predictions for artifacts."""

    metrics: dict[str, float]  # "test/accuracy", "val/balanced_accuracy", ...
    curves: dict[str, list[float]]  # per-epoch, torch models only
    class_counts: dict[str, list[int]]  # "train_available", "train", "val", "test"
    class_names: list[str]
    realisation: str  # how (model, loss) is realised: native / weights / expansion / post-hoc
    info: dict[str, object] = field(default_factory=dict)  # device, epochs_run, best_epoch, fit_seconds, ...
    y_test: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    proba_test: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _prepare(dataset, train_idx: np.ndarray) -> np.ndarray:
    """Scale features with statistics of the training split only (images: a fixed pixel range)."""
    X = dataset.X
    if dataset.kind == "image":
        return (X / dataset.pixel_max).astype(np.float32)
    mean = X[train_idx].mean(axis=0)
    std = X[train_idx].std(axis=0)
    std[std == 0] = 1.0
    return ((X - mean) / std).astype(np.float32)


def evaluate(model, X: np.ndarray, y: np.ndarray, num_classes: int, minority: list[int], prefix: str):
    from lossbench.metrics import classification_metrics

    y_pred = model.predict(X)
    proba = model.predict_proba(X)
    values = classification_metrics(y, y_pred, proba, num_classes=num_classes, minority_classes=minority)
    return {f"{prefix}/{k}": v for k, v in values.items()}, y_pred, proba


@dataclass
class Prepared:
    """A validated config with its data split and imbalanced: everything checked, nothing trained yet."""

    cfg: dict
    realisation: str
    dataset: object
    X: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    class_counts: dict[str, list[int]]


def prepare(cfg) -> Prepared:
    """Validate, load, split and imbalance the training split. Raises ConfigError before any training."""
    from lossbench.compat import check_config
    from lossbench.config import to_container
    from lossbench.data import load_dataset
    from lossbench.imbalance import apply_imbalance, stratified_split

    c = to_container(cfg)
    validate(c)
    realisation = check_config(c)
    seed = int(c["seed"])
    dataset = load_dataset(c["data"])
    C, y = dataset.num_classes, dataset.y
    split = stratified_split(y, test=c["split"]["test"], val=c["split"]["val"], seed=seed)
    keep = apply_imbalance(
        y[split.train],
        ratio=float(c["imbalance"]["ratio"]),
        profile=c["imbalance"]["profile"],
        num_classes=C,
        seed=seed,
    )
    train_idx = split.train[keep]
    counts = {
        "train_available": np.bincount(y[split.train], minlength=C).tolist(),
        "train": np.bincount(y[train_idx], minlength=C).tolist(),
        "val": np.bincount(y[split.val], minlength=C).tolist(),
        "test": np.bincount(y[split.test], minlength=C).tolist(),
    }
    return Prepared(
        c, realisation, dataset, _prepare(dataset, train_idx), train_idx, split.val, split.test, counts
    )


def execute(p: Prepared) -> RunResult:
    """Fit the model on the prepared training split and evaluate it on the val and test splits."""
    from lossbench.imbalance import minority_classes
    from lossbench.models import Context, build_model

    c, X, y, C = p.cfg, p.X, p.dataset.y, p.dataset.num_classes
    counts = p.class_counts["train"]
    log.info(
        "data=%s model=%s loss=%s  train counts per class %s",
        p.dataset.name,
        c["model"]["name"],
        c["loss"]["name"],
        counts,
    )
    ctx = Context(
        num_classes=C,
        feature_shape=p.dataset.feature_shape,
        class_counts=tuple(counts),
        seed=int(c["seed"]),
        loss=c["loss"],
        regularization=c["regularization"],
        train=c["train"],
    )
    model = build_model(c["model"], ctx)
    fit = model.fit(X[p.train_idx], y[p.train_idx], X[p.val_idx], y[p.val_idx])

    minority = minority_classes(C, c["imbalance"]["profile"])
    val_metrics, _, _ = evaluate(model, X[p.val_idx], y[p.val_idx], C, minority, "val")
    test_metrics, y_pred, proba = evaluate(model, X[p.test_idx], y[p.test_idx], C, minority, "test")
    return RunResult(
        metrics={**val_metrics, **test_metrics},
        curves=fit.curves,
        class_counts=p.class_counts,
        class_names=p.dataset.class_names,
        realisation=p.realisation,
        info={
            "device": fit.device,
            "epochs_run": fit.epochs_run,
            "best_epoch": fit.best_epoch,
            "fit_seconds": fit.seconds,
            "n_train": len(p.train_idx),
            "has_proba": proba is not None,
        },
        y_test=y[p.test_idx],
        y_pred=y_pred,
        proba_test=proba,
    )


def run(cfg) -> RunResult:
    """One experiment end to end (no tracking): ``execute(prepare(cfg))``."""
    return execute(prepare(cfg))
