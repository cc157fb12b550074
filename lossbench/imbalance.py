"""Splits and class-imbalance profiles. Imbalance only ever touches the training split."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lossbench.errors import ConfigError

PROFILES = ("exponential",)


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
    rest, test_idx = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
    val_share = val / (1.0 - test)
    train_idx, val_idx = train_test_split(rest, test_size=val_share, stratify=y[rest], random_state=seed + 1)
    return Split(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx))


def target_counts(available: np.ndarray, *, ratio: float, profile: str) -> np.ndarray:
    """Per-class training counts for an imbalance profile.

    exponential: n_i = floor(n_max * ratio^(-i/(C-1))), class index i, with n_max the smallest available
    class count (so every class follows the profile exactly and n_max/n_min = ratio up to flooring).
    ratio = 1 keeps the available counts unchanged.
    """
    available = np.asarray(available, dtype=np.int64)
    if ratio == 1:
        return available.copy()
    if profile != "exponential":
        raise ConfigError("imbalance.profile", profile, f"must be one of {', '.join(PROFILES)}")
    num_classes = len(available)
    n_max = int(available.min())
    exponents = np.arange(num_classes) / max(num_classes - 1, 1)
    counts = np.array([math.floor(n_max * ratio ** (-e) + 1e-9) for e in exponents], dtype=np.int64)
    if counts.min() < 1:
        raise ConfigError(
            "imbalance.ratio",
            ratio,
            f"it would leave class {int(np.argmin(counts))} with no training samples; the largest ratio this "
            f"training split allows is {n_max} (its smallest class has {n_max} samples)",
        )
    return counts


def apply_imbalance(
    y_train: np.ndarray, *, ratio: float, profile: str, num_classes: int, seed: int
) -> np.ndarray:
    """Positions (into ``y_train``) to keep so the class counts follow the profile; seeded, sorted."""
    available = np.bincount(y_train, minlength=num_classes)
    counts = target_counts(available, ratio=ratio, profile=profile)
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y_train == k))[:n] for k, n in enumerate(counts)]
    return np.sort(np.concatenate(keep))


def minority_classes(num_classes: int, profile: str) -> list[int]:
    """The classes a profile makes rare (exponential: the tail half); the same at every ratio."""
    return list(range(num_classes - num_classes // 2, num_classes)) if num_classes > 1 else []
