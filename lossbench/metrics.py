"""Classification metrics for imbalanced problems, in numpy. Where scikit-learn or imbalanced-learn defines a
metric, the number equals theirs (tests/test_metrics.py holds them equal), minus their per-call input checks.

No tracking here: functions return plain Python floats and the caller decides where they go.

Conventions shared by every function in this module
---------------------------------------------------
* Labels are integers in ``[0, num_classes)``; ``proba`` is ``(n_samples, num_classes)`` with entries in
  [0, 1] and rows summing to 1 within ``PROBA_SUM_ATOL`` (float32 softmax output is fine; rows are
  renormalised in float64 for ``log_loss`` only, so ranking metrics see the caller's ties unchanged).
* **Classes absent from** ``y_true``: every macro average (``balanced_accuracy``, ``macro_f1``,
  ``minority_recall``, ``g_mean``, ``pr_auc``, ``roc_auc``) runs over the classes *present in* ``y_true``
  only, the rule ``sklearn.metrics.balanced_accuracy_score`` already uses. The recall of an absent class is
  undefined and is reported as NaN (``recall_class_<k>``), never as 0. ``log_loss`` and ``brier`` use all
  ``num_classes`` columns.
* A class that is present but never predicted gets precision = recall = F1 = 0 (``zero_division=0``),
  without warnings.
* Probability metrics (``log_loss``, ``brier``, ``ece``, ``adaptive_ece``, ``pr_auc``, ``roc_auc``) exist
  only when ``proba`` is given; without it their keys are absent, never zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "METRICS",
    "PROBA_METRICS",
    "PROBA_SUM_ATOL",
    "MetricInfo",
    "adaptive_calibration_error",
    "classification_metrics",
    "confusion",
    "expected_calibration_error",
    "metric_info",
    "multiclass_brier",
    "per_class_table",
    "reliability_bins",
]

# float32 softmax rows can be off by ~1e-6 per row; anything beyond 1e-3 is not a probability vector.
PROBA_SUM_ATOL = 1e-3


@dataclass(frozen=True)
class MetricInfo:
    """What a metric name means: direction, whether it needs probabilities, and a one-line description."""

    name: str
    higher_is_better: bool
    needs_proba: bool
    description: str


def _info(name: str, higher: bool, proba: bool, description: str) -> tuple[str, MetricInfo]:
    return name, MetricInfo(name, higher, proba, description)


METRICS: dict[str, MetricInfo] = dict(
    [
        _info("accuracy", True, False, "Fraction of samples whose predicted class is the true class."),
        _info(
            "balanced_accuracy",
            True,
            False,
            "Mean per-class recall over the classes present in y_true (sklearn balanced_accuracy_score).",
        ),
        _info(
            "macro_f1",
            True,
            False,
            "Unweighted mean F1 over the classes present in y_true (zero_division=0).",
        ),
        _info(
            "recall_class_<k>",
            True,
            False,
            "Recall of class index k (one metric per class); NaN when class k is absent from y_true.",
        ),
        _info(
            "minority_recall",
            True,
            False,
            "Mean recall over the given minority classes present in y_true; absent when none are given.",
        ),
        _info(
            "g_mean",
            True,
            False,
            "Geometric mean of recall over classes present in y_true (imblearn); 0 if any recall is 0.",
        ),
        _info("mcc", True, False, "Matthews correlation coefficient, multiclass (sklearn), in [-1, 1]."),
        _info(
            "log_loss",
            False,
            True,
            "Mean negative log-likelihood of the true class, probabilities clipped to [eps, 1 - eps].",
        ),
        _info(
            "brier",
            False,
            True,
            "Multiclass Brier score: mean over samples of sum_k (p_k - onehot_k)^2, range [0, 2].",
        ),
        _info(
            "ece",
            False,
            True,
            "Expected calibration error (Guo'17): 15 equal-width bins on max-prob confidence, range [0, 1].",
        ),
        _info(
            "adaptive_ece",
            False,
            True,
            "Adaptive ECE (Mukhoti'20 AdaECE): 15 equal-mass bins on max-prob confidence, range [0, 1].",
        ),
        _info(
            "pr_auc",
            True,
            True,
            "Macro one-vs-rest average precision over the classes present in y_true (both classes if C=2).",
        ),
        _info(
            "roc_auc",
            True,
            True,
            "Macro one-vs-rest ROC AUC over classes present in y_true; NaN if y_true has a single class.",
        ),
    ]
)

PROBA_METRICS: tuple[str, ...] = tuple(name for name, info in METRICS.items() if info.needs_proba)


def metric_info(key: str) -> MetricInfo:
    """Look up the ``MetricInfo`` of a returned key, mapping ``recall_class_3`` to ``recall_class_<k>``.

    A split prefix such as ``test/`` is ignored.
    """
    name = key.rsplit("/", 1)[-1]
    if name.startswith("recall_class_") and name[len("recall_class_") :].isdigit():
        name = "recall_class_<k>"
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"Unknown metric {key!r}. Available metrics: {', '.join(METRICS)}.") from None


# ------------------------------------------------------------------------------------------------------------
# validation


def _check_num_classes(num_classes: Any, func: str) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(
            f"The 'num_classes' parameter of {func} must be an int >= 2. "
            f"Got {num_classes!r} of type {type(num_classes).__name__} instead."
        )
    if num_classes < 2:
        raise ValueError(
            f"The 'num_classes' parameter of {func} must be an int >= 2. Got {num_classes} instead."
        )
    return int(num_classes)


def _check_labels(y: Any, arg: str, num_classes: int, func: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(
            f"The '{arg}' parameter of {func} must be a 1-D array of class indices. "
            f"Got an array of shape {arr.shape} instead."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"The '{arg}' parameter of {func} must not be empty.")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise ValueError(
            f"The '{arg}' parameter of {func} must hold integer class indices. Got dtype {arr.dtype} instead."
        )
    if arr.dtype.kind == "f" and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        raise ValueError(
            f"The '{arg}' parameter of {func} must hold integer class indices. Got non-integer floats."
        )
    arr = arr.astype(np.int64)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"The '{arg}' parameter of {func} must hold class indices in the range [0, {num_classes - 1}] "
            f"(num_classes={num_classes}). Got {bad} instead."
        )
    return arr


def _check_proba(proba: Any, n_samples: int, num_classes: int | None, func: str) -> np.ndarray:
    arr = np.asarray(proba)
    if arr.dtype.kind not in "iuf":
        raise ValueError(
            f"The 'proba' parameter of {func} must be a float array of probabilities. Got dtype {arr.dtype}."
        )
    arr = arr.astype(np.float64)
    want_c = "num_classes" if num_classes is None else str(num_classes)
    if (
        arr.ndim != 2
        or arr.shape[0] != n_samples
        or (num_classes is not None and arr.shape[1] != num_classes)
    ):
        raise ValueError(
            f"The 'proba' parameter of {func} must have shape (n_samples, num_classes) = ({n_samples}, "
            f"{want_c}). Got shape {arr.shape} instead."
        )
    if arr.shape[1] < 2:
        raise ValueError(
            f"The 'proba' parameter of {func} must have at least 2 columns. Got shape {arr.shape} instead."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"The 'proba' parameter of {func} must be finite. Got NaN or inf values.")
    if arr.min() < -PROBA_SUM_ATOL or arr.max() > 1 + PROBA_SUM_ATOL:
        raise ValueError(
            f"The 'proba' parameter of {func} must hold probabilities in [0, 1]. "
            f"Got values in [{arr.min():.4g}, {arr.max():.4g}]; pass softmax(logits), not logits."
        )
    sums = arr.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > PROBA_SUM_ATOL:
        raise ValueError(
            f"The 'proba' parameter of {func} must have rows summing to 1 (within {PROBA_SUM_ATOL}). "
            f"Row {worst} sums to {sums[worst]:.6g}; pass softmax(logits), not logits."
        )
    # no renormalisation here: dividing by a row sum of 1 +- 1 ulp breaks exact ties that ROC/PR AUC count
    return np.clip(arr, 0.0, 1.0)


def _check_n_bins(n_bins: Any, func: str) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"The 'n_bins' parameter of {func} must be an int >= 1. Got {n_bins!r} instead.")
    return int(n_bins)


def _check_proba_pair(y_true: Any, proba: Any, func: str) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(proba)
    if arr.ndim != 2:
        raise ValueError(
            f"The 'proba' parameter of {func} must be 2-D (n_samples, num_classes). Got shape {arr.shape}."
        )
    if arr.shape[1] < 2:
        raise ValueError(
            f"The 'proba' parameter of {func} must have at least 2 columns. Got shape {arr.shape} instead."
        )
    y = _check_labels(y_true, "y_true", arr.shape[1], func)
    return y, _check_proba(arr, y.shape[0], None, func)


def _check_same_length(y_true: np.ndarray, y_pred: np.ndarray, func: str) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"The 'y_pred' parameter of {func} must have the same length as 'y_true' ({y_true.shape[0]}). "
            f"Got {y_pred.shape[0]} instead."
        )


# ------------------------------------------------------------------------------------------------------------
# building blocks


def confusion(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Confusion matrix ``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``.

    Always ``(num_classes, num_classes)`` int64, whatever classes occur.

    >>> confusion([0, 1, 1], [0, 0, 1], 2).tolist()
    [[1, 0], [1, 1]]
    """
    func = "confusion"
    c = _check_num_classes(num_classes, func)
    yt = _check_labels(y_true, "y_true", c, func)
    yp = _check_labels(y_pred, "y_pred", c, func)
    _check_same_length(yt, yp, func)
    return np.bincount(yt * c + yp, minlength=c * c).reshape(c, c).astype(np.int64)


def _per_class_prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision (0 when never predicted), recall and F1 (NaN when the class has no support)."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, np.nan)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    f1 = np.where(support > 0, f1, np.nan)
    return precision, recall, f1


def multiclass_brier(y_true: Any, proba: Any, num_classes: int) -> float:
    r"""Multiclass Brier score (Brier 1950), the original un-halved form.

    .. math:: \mathrm{BS} = \frac{1}{n} \sum_i \sum_k (p_{ik} - [y_i = k])^2 \in [0, 2]

    0 for a perfect one-hot prediction, 2 for a confident wrong one. For C = 2 it is twice
    ``sklearn.metrics.brier_score_loss(y, proba[:, 1])``.

    >>> multiclass_brier([0, 1], [[1.0, 0.0], [1.0, 0.0]], 2)
    1.0
    """
    func = "multiclass_brier"
    c = _check_num_classes(num_classes, func)
    y = _check_labels(y_true, "y_true", c, func)
    p = _check_proba(proba, y.shape[0], c, func)
    onehot = np.eye(c)[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def _calibration_gap(confidence: np.ndarray, correct: np.ndarray, bins: list[np.ndarray]) -> float:
    n = confidence.shape[0]
    total = 0.0
    for idx in bins:
        if idx.size:
            total += idx.size / n * abs(correct[idx].mean() - confidence[idx].mean())
    return float(total)


def expected_calibration_error(y_true: Any, proba: Any, n_bins: int = 15) -> float:
    r"""Expected calibration error of the top-label confidence (Guo et al. 2017).

    Confidence is :math:`\max_k p_k`, the prediction is :math:`\arg\max_k p_k` (first index on ties).
    Bin :math:`B_m` holds the samples with confidence in :math:`((m-1)/M, m/M]`, :math:`m = 1..M`
    (equal width; confidence 0 cannot occur since it is at least 1/C):

    .. math:: \mathrm{ECE} = \sum_m \frac{|B_m|}{n} \, |\mathrm{acc}(B_m) - \mathrm{conf}(B_m)|

    Empty bins contribute 0. The number of classes is ``proba.shape[1]``.

    >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.9, 0.1]], n_bins=10)  # conf 0.9, acc 0.5
    0.4
    """
    confidence, correct, bins = _equal_width_bins(y_true, proba, n_bins, "expected_calibration_error")
    return _calibration_gap(confidence, correct, bins)


def _equal_width_bins(y_true: Any, proba: Any, n_bins: int, func: str):
    m = _check_n_bins(n_bins, func)
    y, p = _check_proba_pair(y_true, proba, func)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # searchsorted(side="left") on the inner edges puts a confidence equal to an edge in the lower bin: the
    # (lower, upper] bins of Guo's reference code, same linspace edges (no conf * M rounding drift)
    inner_edges = np.linspace(0.0, 1.0, m + 1)[1:-1]
    bin_of = np.searchsorted(inner_edges, confidence, side="left")
    return confidence, correct, [np.flatnonzero(bin_of == b) for b in range(m)]


def reliability_bins(y_true: Any, proba: Any, n_bins: int = 15) -> dict[str, list[float]]:
    """The reliability diagram behind :func:`expected_calibration_error`: per equal-width confidence bin,
    the sample count, the summed confidence and the number correct (sums, so bins pool across runs).

    >>> reliability_bins([0, 1], [[0.9, 0.1], [0.9, 0.1]], n_bins=2)
    {'edges': [0.0, 0.5, 1.0], 'count': [0, 2], 'confidence_sum': [0.0, 1.8], 'correct': [0, 1]}
    """
    confidence, correct, bins = _equal_width_bins(y_true, proba, n_bins, "reliability_bins")
    return {
        "edges": np.linspace(0.0, 1.0, len(bins) + 1).round(6).tolist(),
        "count": [int(b.size) for b in bins],
        "confidence_sum": [round(float(confidence[b].sum()), 6) for b in bins],
        "correct": [int(correct[b].sum()) for b in bins],
    }


def adaptive_calibration_error(y_true: Any, proba: Any, n_bins: int = 15) -> float:
    r"""Adaptive (equal-mass) ECE on the top-label confidence (AdaECE, Mukhoti et al. 2020).

    Same formula as :func:`expected_calibration_error`, but the bins hold equal numbers of samples.

    Binning rule: sort samples by confidence (stable sort, so ties keep input order), then cut the sorted list
    into ``min(n_bins, n)`` contiguous chunks with ``numpy.array_split`` - sizes differ by at most one, the
    first ``n % n_bins`` chunks getting the extra sample. Tied confidences may straddle a chunk boundary.

    >>> y, p = [0, 1, 1, 1], [[0.6, 0.4], [0.6, 0.4], [0.1, 0.9], [0.1, 0.9]]
    >>> round(adaptive_calibration_error(y, p, n_bins=2), 6)  # bins {.6,.6}: |.5-.6|, {.9,.9}: |1-.9|
    0.1
    >>> expected_calibration_error(y, p, n_bins=2)  # one bin (0.5, 1]: acc .75 = conf .75
    0.0
    """
    func = "adaptive_calibration_error"
    m = _check_n_bins(n_bins, func)
    y, p = _check_proba_pair(y_true, proba, func)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    order = np.argsort(confidence, kind="stable")
    bins = np.array_split(order, min(m, order.shape[0]))
    return _calibration_gap(confidence, correct, bins)


def _binary_ap_auc(positive: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(average precision, ROC AUC) of one one-vs-rest problem, as scikit-learn defines them, without its
    per-call input validation (~1 ms a call, 2 x C calls per evaluation).

    AP = sum over distinct thresholds, highest first, of (R_i - R_{i-1}) * P_i (``average_precision_score``);
    ROC AUC = the trapezoidal area under the ROC curve through the same thresholds (``roc_auc_score``; tied
    scores make one diagonal step). Needs at least one positive; AUC is NaN without a negative."""
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], positive[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # the last sample of each distinct threshold
    tp = np.cumsum(t)[ends]
    fp = ends + 1 - tp
    n_pos = tp[-1]
    ap = float(np.sum(np.diff(tp, prepend=0) / n_pos * (tp / (ends + 1))))
    n_neg = fp[-1]
    if n_neg == 0:
        return ap, math.nan
    tpr, fpr = np.r_[0, tp] / n_pos, np.r_[0, fp] / n_neg
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return ap, auc


def _mcc(cm: np.ndarray) -> float:
    """Matthews correlation, multiclass (Gorodkin's R_K), from the confusion matrix, with
    ``sklearn.metrics.matthews_corrcoef``'s arithmetic; 0 when either marginal is constant. The sums are of
    integer counts, exact in float64, so the classes sklearn leaves out (absent from both) change nothing."""
    t_sum = cm.sum(axis=1, dtype=np.float64)
    p_sum = cm.sum(axis=0, dtype=np.float64)
    n_correct = np.trace(cm, dtype=np.float64)
    n = p_sum.sum()
    cov_ytyp = n_correct * n - np.dot(t_sum, p_sum)
    cov_ypyp_ytyt = (n**2 - np.dot(p_sum, p_sum)) * (n**2 - np.dot(t_sum, t_sum))
    return 0.0 if cov_ypyp_ytyt == 0 else float(cov_ytyp / np.sqrt(cov_ypyp_ytyt))


def _g_mean(recall_present: np.ndarray) -> float:
    """Geometric mean of the present classes' recalls, ``exp(mean(log r))`` as scipy's gmean computes it
    (imblearn's ``geometric_mean_score(average='multiclass', labels=present, correction=0)``): 0 when any
    recall is 0."""
    with np.errstate(divide="ignore"):
        return float(np.exp(np.mean(np.log(recall_present))))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean -log p_y with p clipped to [eps, 1 - eps] of its dtype (``sklearn.metrics.log_loss``'s rule:
    exact 0 / 1 probabilities give a finite loss)."""
    eps = np.finfo(p.dtype).eps
    return float(np.mean(-np.log(np.clip(p[np.arange(len(y)), y], eps, 1 - eps))))


def _ovr_scores(y: np.ndarray, p: np.ndarray, present: np.ndarray) -> tuple[float, float]:
    """Macro one-vs-rest (average precision, ROC AUC) over the classes in ``present`` (scikit-learn's
    definitions; tests/test_metrics.py checks them against ``average_precision_score``/``roc_auc_score``)."""
    scores = {int(k): _binary_ap_auc(y == k, p[:, k]) for k in present}
    ap = float(np.mean([scores[k][0] for k in scores]))
    if present.size < 2:
        auc = math.nan  # a single true class has no negatives: ROC AUC is undefined
    elif p.shape[1] == 2:
        auc = scores[1][1]  # binary: the AUC of class 1's score, as roc_auc_score(y, p[:, 1])
    else:
        # the macro average of the per-class OvR AUCs; sklearn's multi_class="ovr" would return NaN (with a
        # warning) when a class is absent, so average the defined ones
        auc = float(np.mean([scores[k][1] for k in scores]))
    return ap, auc


# ------------------------------------------------------------------------------------------------------------
# public aggregate


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    *,
    num_classes: int,
    minority_classes: Sequence[int] = (),
) -> dict[str, float]:
    """All scalar metrics of one evaluation, as a flat ``{name: float}`` dict without a split prefix.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n_samples,)
        Class indices in ``[0, num_classes)``. ``y_pred`` need not equal ``argmax(proba)`` (post-hoc
        adjustment); the calibration metrics use ``argmax(proba)``, the label metrics use ``y_pred``.
    proba : array-like of float, shape (n_samples, num_classes), optional
        Predicted probabilities. Without it, the probability metrics are left out (not set to 0).
    num_classes : int
        Number of classes C >= 2 (C = 2 is the binary case).
    minority_classes : sequence of int
        Class indices averaged into ``minority_recall``; the key is left out when empty.

    Returns
    -------
    dict
        Keys ``accuracy, balanced_accuracy, macro_f1, recall_class_0 .. recall_class_{C-1}, [minority_recall],
        g_mean, mcc`` and, with ``proba``, ``log_loss, brier, ece, adaptive_ece, pr_auc, roc_auc``. See
        ``METRICS`` for directions and the module docstring for the rules on absent classes (NaN, not 0).

    Examples
    --------
    >>> m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], num_classes=2)
    >>> m["accuracy"], m["balanced_accuracy"], m["recall_class_0"]
    (0.75, 0.75, 0.5)
    """
    func = "classification_metrics"
    c = _check_num_classes(num_classes, func)
    yt = _check_labels(y_true, "y_true", c, func)
    yp = _check_labels(y_pred, "y_pred", c, func)
    _check_same_length(yt, yp, func)
    minority = _check_minority(minority_classes, c, func)
    p = None if proba is None else _check_proba(proba, yt.shape[0], c, func)

    cm = confusion(yt, yp, c)
    present = np.flatnonzero(cm.sum(axis=1) > 0)
    _, recall, f1 = _per_class_prf(cm)

    out: dict[str, float] = {
        "accuracy": float(np.trace(cm) / yt.shape[0]),
        "balanced_accuracy": float(np.mean(recall[present])),
        "macro_f1": float(np.mean(f1[present])),
    }
    for k in range(c):
        out[f"recall_class_{k}"] = float(recall[k])
    if minority:
        present_minority = [k for k in minority if k in set(present.tolist())]
        out["minority_recall"] = float(np.mean(recall[present_minority])) if present_minority else math.nan
    # g_mean, mcc and log_loss are computed here with the arithmetic of imblearn's / sklearn's functions (a
    # test holds them equal): those check their inputs again on every call, ~5 ms each, six calls per run.
    # g_mean over the present classes only: a predicted-but-absent class would otherwise count as recall 0.
    out["g_mean"] = _g_mean(recall[present])
    out["mcc"] = _mcc(cm)

    if p is not None:
        # rows renormalised in float64 (float32 softmax rows can be off 1 by more than sklearn accepts)
        out["log_loss"] = _log_loss(yt, p / p.sum(axis=1, keepdims=True))
        out["brier"] = multiclass_brier(yt, p, c)
        out["ece"] = expected_calibration_error(yt, p)
        out["adaptive_ece"] = adaptive_calibration_error(yt, p)
        out["pr_auc"], out["roc_auc"] = _ovr_scores(yt, p, present)
    return out


def _check_minority(minority_classes: Any, num_classes: int, func: str) -> list[int]:
    try:
        items = list(minority_classes)
    except TypeError as e:
        raise TypeError(
            f"The 'minority_classes' parameter of {func} must be a sequence of class indices. "
            f"Got {minority_classes!r} instead."
        ) from e
    out: list[int] = []
    for k in items:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < num_classes:
            raise ValueError(
                f"The 'minority_classes' parameter of {func} must hold class indices in the range "
                f"[0, {num_classes - 1}]. Got {k!r} instead."
            )
        if int(k) not in out:
            out.append(int(k))
    return out


def per_class_table(
    y_true: Any,
    y_pred: Any,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    train_counts: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per class: ``class, name, train_count, support, precision, recall, f1``.

    ``name`` defaults to ``str(class)``; ``train_count`` is a nullable Int64 column, all ``<NA>`` when
    ``train_counts`` is not given. ``precision`` is 0 for a class never predicted; ``recall`` and ``f1`` are
    NaN for a class with no support in ``y_true`` (undefined, not 0).
    """
    func = "per_class_table"
    c = _check_num_classes(num_classes, func)
    cm = confusion(y_true, y_pred, c)
    if class_names is None:
        names = [str(k) for k in range(c)]
    else:
        names = [str(n) for n in class_names]
        if len(names) != c:
            raise ValueError(
                f"The 'class_names' parameter of {func} must have num_classes={c} entries. "
                f"Got {len(names)} instead."
            )
    if train_counts is None:
        counts = pd.array([pd.NA] * c, dtype="Int64")
    else:
        tc = np.asarray(train_counts)
        if tc.shape != (c,) or tc.dtype.kind not in "iu" or (tc < 0).any():
            raise ValueError(
                f"The 'train_counts' parameter of {func} must be {c} non-negative integers (one per class). "
                f"Got {list(np.ravel(tc))!r} instead."
            )
        counts = pd.array(tc.astype(np.int64), dtype="Int64")
    precision, recall, f1 = _per_class_prf(cm)
    return pd.DataFrame(
        {
            "class": np.arange(c, dtype=np.int64),
            "name": names,
            "train_count": counts,
            "support": cm.sum(axis=1).astype(np.int64),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    )
