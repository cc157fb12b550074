"""``run(cfg) -> RunResult``: one experiment end to end, with no tracking. The CLI owns MLflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields

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
class Split:
    """A dataset split, with the training split imbalanced and rebalanced: what a model is fitted on and
    evaluated with. It depends only on the config's :data:`SPLIT_KEYS`."""

    dataset: object
    X_fit: np.ndarray  # the training split after imbalance and rebalancing: what the model is fitted on
    y_fit: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_counts: dict[str, list[int]]


@dataclass
class Prepared(Split):
    """A validated config with its data split, imbalanced and rebalanced: all checked, nothing trained."""

    cfg: dict
    realisation: str


SPLIT_KEYS = ("data", "split", "seed", "imbalance", "rebalance")
_SPLITS: dict[str, Split] = {}
# the splits a process keeps, least recently used out first, by the bytes of their arrays: a grid varies the
# seed fastest, so a count of a few splits would make nearly every job of a (ratio x seed) sweep a miss
_SPLIT_BYTES = 512 * 2**20


def _nbytes(split: Split) -> int:
    return sum(a.nbytes for a in vars(split).values() if isinstance(a, np.ndarray))


def split_key(c: dict) -> str:
    import json

    return json.dumps({k: c.get(k) for k in SPLIT_KEYS}, sort_keys=True, default=str)


def prepare(cfg) -> Prepared:
    """Validate, load, split, imbalance and rebalance. Raises ConfigError before any training.

    The split is computed once per process for each distinct :data:`SPLIT_KEYS` part of the config (the
    jobs of a sweep that differ only by model, loss or training settings share it); nothing downstream
    writes into its arrays."""
    from lossbench.baselines import enabled as baselines_enabled
    from lossbench.compat import check_config
    from lossbench.config import to_container

    c = to_container(cfg)
    validate(c)
    baselines_enabled(c)  # report.baselines: checked before any training
    realisation = check_config(c)
    key = split_key(c)
    split = _SPLITS.pop(key, None)
    if split is None:
        split = _make_split(c)
        kept = sum(_nbytes(s) for s in _SPLITS.values())
        while _SPLITS and kept + _nbytes(split) > _SPLIT_BYTES:
            kept -= _nbytes(_SPLITS.pop(next(iter(_SPLITS))))
    _SPLITS[key] = split  # the most recently used last
    return Prepared(**{f.name: getattr(split, f.name) for f in fields(Split)}, cfg=c, realisation=realisation)


def _make_split(c: dict) -> Split:
    from lossbench.data import load_dataset
    from lossbench.imbalance import apply_imbalance, balance_indices, stratified_split
    from lossbench.rebalance import resample

    seed, imb = int(c["seed"]), c["imbalance"]
    dataset = load_dataset(c["data"])
    C, y = dataset.num_classes, dataset.y
    split = stratified_split(y, test=c["split"]["test"], val=c["split"]["val"], seed=seed)
    keep = apply_imbalance(
        y[split.train],
        ratio=float(imb["ratio"]),
        profile=imb["profile"],
        num_classes=C,
        seed=seed,
        minority_fraction=float(imb.get("minority_fraction", 0.5)),
    )
    train_idx = split.train[keep]
    test_idx = split.test
    if imb.get("test", "balanced") == "balanced":
        test_idx = test_idx[balance_indices(y[test_idx], num_classes=C, seed=seed)]
    X = _prepare(dataset, train_idx)
    X_fit, y_fit = resample(X[train_idx], y[train_idx], c["rebalance"], num_classes=C, seed=seed)
    counts = {
        "train_available": np.bincount(y[split.train], minlength=C).tolist(),
        "train": np.bincount(y[train_idx], minlength=C).tolist(),
        "fit": np.bincount(y_fit, minlength=C).tolist(),
        "val": np.bincount(y[split.val], minlength=C).tolist(),
        "test": np.bincount(y[test_idx], minlength=C).tolist(),
    }
    return Split(dataset, X_fit, y_fit, X[split.val], y[split.val], X[test_idx], y[test_idx], counts)


def _effective_loss(c: dict, backend: str, counts: list[int]) -> tuple[dict, np.ndarray | None]:
    """The loss the model trains, and per-class sample weights for sklearn, after rebalance=class_weight."""
    rebalance = c["rebalance"]
    if rebalance["name"] != "class_weight":
        return c["loss"], None
    from lossbench.rebalance import class_weights

    weights = class_weights(counts, weights=rebalance["weights"], beta=float(rebalance["beta"]))
    if backend == "torch":  # exact: CE with these class weights (the compatibility table allows only ce here)
        return {"name": "weighted_ce", "weights": weights.tolist()}, None
    return c["loss"], weights


def build(p: Prepared):
    """The model for a prepared config: its context (class counts, seed, loss, regularization), seeded."""
    from lossbench.models import MODELS, Context, build_model

    c = p.cfg
    counts = p.class_counts["fit"]  # the prior the model sees (logit adjustment, LDAM margins, weights)
    loss, sample_class_weights = _effective_loss(c, MODELS[c["model"]["name"]].backend, counts)
    ctx = Context(
        num_classes=p.dataset.num_classes,
        feature_shape=p.dataset.feature_shape,
        class_counts=tuple(counts),
        seed=int(c["seed"]),
        loss=loss,
        regularization=c["regularization"],
        train=c["train"],
        sample_class_weights=sample_class_weights,
    )
    return build_model(c["model"], ctx)


def result(p: Prepared, model, fit, **info) -> RunResult:
    """Evaluate a fitted model on the val and test splits and assemble its RunResult (``info`` adds keys)."""
    from lossbench.baselines import posthoc_metrics

    c, C = p.cfg, p.dataset.num_classes
    minority = _minority(p)
    val_metrics, _, proba_val = evaluate(model, p.X_val, p.y_val, C, minority, "val")
    test_metrics, y_pred, proba = evaluate(model, p.X_test, p.y_test, C, minority, "test")
    # CE runs: post-hoc logit adjustment and temperature scaling of the same fitted model (report.baselines)
    baseline_metrics = posthoc_metrics(
        c, p.class_counts["fit"], p.y_val, proba_val, p.y_test, y_pred, proba, C, minority
    )
    train_counts = np.array(p.class_counts["train"])
    return RunResult(
        metrics={**val_metrics, **test_metrics, **baseline_metrics},
        curves=fit.curves,
        class_counts=p.class_counts,
        class_names=p.dataset.class_names,
        realisation=p.realisation,
        info={
            "device": fit.device,
            "epochs_run": fit.epochs_run,
            "best_epoch": fit.best_epoch,
            "fit_seconds": fit.seconds,
            "n_train": int(train_counts.sum()),
            "n_fit": len(p.y_fit),
            "imbalance_ratio": float(train_counts.max() / train_counts.min()),
            "has_proba": proba is not None,
            **info,
        },
        y_test=p.y_test,
        y_pred=y_pred,
        proba_test=proba,
    )


def counts_text(names: list[str], counts: list[int]) -> str:
    """``class_0: 35, class_1: 42, class_2: 29``; past 12 classes the first 6 and last 3, with the number."""
    pairs = [f"{name}: {n}" for name, n in zip(names, counts, strict=True)]
    if len(pairs) > 12:
        return f"{', '.join(pairs[:6])}, ..., {', '.join(pairs[-3:])} ({len(pairs)} classes)"
    return ", ".join(pairs)


def execute(p: Prepared) -> RunResult:
    """Fit the model on the prepared training split and evaluate it on the val and test splits."""
    c, counts, names = p.cfg, p.class_counts["fit"], p.dataset.class_names
    log.info(
        "data=%s model=%s loss=%s  training counts per class %s%s",
        p.dataset.name,
        c["model"]["name"],
        c["loss"]["name"],
        counts_text(names, p.class_counts["train"]),
        ""
        if counts == p.class_counts["train"]
        else f"; fitted on {counts_text(names, counts)} after rebalance={c['rebalance']['name']}",
    )
    model = build(p)
    fit = model.fit(p.X_fit, p.y_fit, p.X_val, p.y_val)
    return result(p, model, fit)


def run(cfg) -> RunResult:
    """One experiment end to end (no tracking): ``execute(prepare(cfg))``."""
    return execute(prepare(cfg))


def validation_metrics(p: Prepared, model) -> dict[str, float]:
    """A fitted model's metrics on the validation split alone (``val/...``): what tuning scores a trial by."""
    metrics, _, _ = evaluate(model, p.X_val, p.y_val, p.dataset.num_classes, _minority(p), "val")
    return metrics


def _minority(p: Prepared) -> list[int]:
    """The minority classes the metrics report on (the imbalance profile's)."""
    from lossbench.imbalance import minority_classes

    imb = p.cfg["imbalance"]
    return minority_classes(p.dataset.num_classes, imb["profile"], float(imb.get("minority_fraction", 0.5)))
