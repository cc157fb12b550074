"""Per-class weights of the losses realised as class weights, in NumPy (no torch).

The torch losses (``weighted_ce``, ``class_balanced``, LDAM's deferred re-weighting) turn these arrays into
their weight buffers, and scikit-learn models fit with them as per-sample weights: one formula for both, and a
scikit-learn run never imports torch for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def balanced_class_weights(class_counts: Sequence[float]) -> np.ndarray:
    """``w_k = n / (C * n_k)`` (scikit-learn's ``class_weight='balanced'``), float32 [C]."""
    counts = np.asarray(class_counts, dtype=np.float64)
    return (counts.sum() / (len(counts) * counts)).astype(np.float32)


def class_balanced_weights(class_counts: Sequence[float], beta: float) -> np.ndarray:
    """``alpha_k ∝ (1 - beta) / (1 - beta^{n_k})`` with ``sum alpha = C``, float32 [C]; counts must be > 0."""
    counts = np.asarray(class_counts, dtype=np.float64)
    # 1 - beta^n in float64: with beta = 0.9999 and small n_k the difference is ~1e-4, fine in double.
    alpha = (1.0 - beta) / (1.0 - np.power(np.float64(beta), counts))
    return (alpha * len(counts) / alpha.sum()).astype(np.float32)


def weighted_ce_weights(class_counts: Sequence[float] | None, weights: str | Sequence[float]) -> np.ndarray:
    """``weighted_ce``'s weights: ``balanced`` from the counts, else the given per-class list, float32 [C]."""
    if isinstance(weights, str):  # "balanced": the only string the parameter allows
        return balanced_class_weights(class_counts)
    return np.asarray(weights, dtype=np.float32)


# loss name -> its weights from (class_counts, **checked params)
CLASS_WEIGHTS = {"weighted_ce": weighted_ce_weights, "class_balanced": class_balanced_weights}
