"""Rebalancing of the (already imbalanced) training split with imbalanced-learn. Never touches val or test."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lossbench.errors import ConfigError

METHODS = ("none", "class_weight", "oversample", "undersample", "smote")
WEIGHTINGS = ("balanced", "effective_number")


def class_weights(counts, *, weights: str, beta: float) -> np.ndarray:
    """Per-class weights, mean 1: balanced n/(C n_k), or effective number (1-beta)/(1-beta^n_k) (Cui'19)."""
    counts = np.asarray(counts, dtype=np.float64)
    raw = 1.0 / counts if weights == "balanced" else (1.0 - beta) / (1.0 - beta**counts)
    return raw * len(counts) / raw.sum()


def resample(X: np.ndarray, y: np.ndarray, cfg: Mapping, *, num_classes: int, seed: int):
    """Return (X_fit, y_fit) after over-/under-sampling or SMOTE; unchanged for none and class_weight."""
    method = cfg["name"]
    if method in ("none", "class_weight"):
        return X, y
    shape = X.shape[1:]
    flat = X.reshape(len(X), -1)
    if method == "oversample":
        from imblearn.over_sampling import RandomOverSampler

        sampler = RandomOverSampler(random_state=seed)
    elif method == "undersample":
        from imblearn.under_sampling import RandomUnderSampler

        sampler = RandomUnderSampler(random_state=seed)
    else:
        from imblearn.over_sampling import SMOTE

        smallest = int(np.bincount(y, minlength=num_classes).min())
        k = int(cfg["k_neighbors"])
        if k >= smallest:
            raise ConfigError(
                "rebalance.k_neighbors",
                k,
                f"SMOTE needs k_neighbors < the smallest training class count, which is {smallest} here",
                f"Use rebalance.k_neighbors={max(smallest - 1, 1)} or a smaller imbalance.ratio.",
            )
        sampler = SMOTE(k_neighbors=k, random_state=seed)
    X_fit, y_fit = sampler.fit_resample(flat, y)
    return np.asarray(X_fit, dtype=X.dtype).reshape(-1, *shape), np.asarray(y_fit, dtype=np.int64)
