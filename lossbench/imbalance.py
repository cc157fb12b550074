"""Splits and class-imbalance profiles. Imbalance only ever touches the training split."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lossbench.errors import ConfigError

PROFILES = ("exponential", "step", "binary")


@dataclass(frozen=True)
class Split:
    """Row indices into the dataset for each split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def stratified_split(y: np.ndarray, *, test: float, val: float, seed: int) -> Split:
    """Seeded stratified train/val/test split of the whole dataset (fractions of the whole)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        rest, test_idx = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
        val_share = val / (1.0 - test)
        train_idx, val_idx = train_test_split(
            rest, test_size=val_share, stratify=y[rest], random_state=seed + 1
        )
    except ValueError as e:  # too few rows for a stratified split with this many classes
        raise ConfigError(
            "split.test",
            test,
            f"the data ({len(y)} rows, {len(np.unique(y))} classes) is too small for a "
            f"stratified train/val/test split with these fractions: {e}",
        ) from e
    return Split(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx))


def _n_minority(num_classes: int, fraction: float) -> int:
    return min(max(round(fraction * num_classes), 1), num_classes - 1)


def target_counts(
    available: np.ndarray, *, ratio: float, profile: str, minority_fraction: float = 0.5
) -> np.ndarray:
    """Per-class training counts for an imbalance profile, with n_max the smallest available class count
    (so every class can follow the profile exactly and n_max/n_min = ratio up to flooring).

    - exponential (Cui'19): n_i = floor(n_max * ratio^(-i/(C-1))) for class index i;
    - step (Buda'18): the last round(minority_fraction * C) classes get floor(n_max / ratio), others n_max;
    - binary: two classes, class 1 is the minority with a share ``minority_fraction`` of the training split
      (ratio is then (1 - f) / f and the ``ratio`` argument is ignored).

    ratio = 1 (exponential, step) keeps the available counts unchanged.
    """
    available = np.asarray(available, dtype=np.int64)
    num_classes = len(available)
    n_max = int(available.min())
    if profile == "binary":
        if num_classes != 2:
            raise ConfigError(
                "imbalance.profile", profile, f"binary needs 2 classes; this data has {num_classes}"
            )
        f = minority_fraction
        minority = math.floor(n_max * f / (1 - f) + 1e-9)
        if minority < 1:
            raise ConfigError(
                "imbalance.minority_fraction", f, "it would leave class 1 with no training samples"
            )
        return np.array([n_max, minority], dtype=np.int64)
    if ratio == 1:
        return available.copy()
    if profile == "exponential":
        exponents = np.arange(num_classes) / max(num_classes - 1, 1)
        counts = np.array([math.floor(n_max * ratio ** (-e) + 1e-9) for e in exponents], dtype=np.int64)
    elif profile == "step":
        counts = np.full(num_classes, n_max, dtype=np.int64)
        counts[num_classes - _n_minority(num_classes, minority_fraction) :] = math.floor(n_max / ratio + 1e-9)
    else:
        raise ConfigError("imbalance.profile", profile, f"must be one of {', '.join(PROFILES)}")
    if counts.min() < 1:
        raise ConfigError(
            "imbalance.ratio",
            ratio,
            f"it would leave class {int(np.argmin(counts))} with no training samples; the largest ratio this "
            f"training split allows is {n_max} (its smallest class has {n_max} samples)",
        )
    return counts


def balance_indices(y: np.ndarray, *, num_classes: int, seed: int) -> np.ndarray:
    """Positions (into ``y``) giving every class the smallest class count; seeded, sorted."""
    n = int(np.bincount(y, minlength=num_classes).min())
    rng = np.random.default_rng([seed, 1])  # its own stream: independent of the imbalance subsampling
    keep = [rng.permutation(np.flatnonzero(y == k))[:n] for k in range(num_classes)]
    return np.sort(np.concatenate(keep))


def apply_imbalance(
    y_train: np.ndarray,
    *,
    ratio: float,
    profile: str,
    num_classes: int,
    seed: int,
    minority_fraction: float = 0.5,
) -> np.ndarray:
    """Positions (into ``y_train``) to keep so the class counts follow the profile; seeded, sorted."""
    available = np.bincount(y_train, minlength=num_classes)
    counts = target_counts(available, ratio=ratio, profile=profile, minority_fraction=minority_fraction)
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y_train == k))[:n] for k, n in enumerate(counts)]
    return np.sort(np.concatenate(keep))


def minority_classes(num_classes: int, profile: str, minority_fraction: float = 0.5) -> list[int]:
    """The classes a profile makes rare, the same at every ratio so they can be compared across ratios:
    exponential: the tail half of the class indices; step: its minority classes; binary: class 1."""
    if num_classes < 2:
        return []
    if profile == "step":
        return list(range(num_classes - _n_minority(num_classes, minority_fraction), num_classes))
    if profile == "binary":
        return [1]
    return list(range(num_classes - num_classes // 2, num_classes))
