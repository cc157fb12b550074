"""Datasets: each loader returns a :class:`Dataset` with integer labels 0..C-1.

Images keep their shape (N, channels, H, W) so convolutional models can use it; tabular data is (N, features).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray  # float32, (N, F) or (N, C, H, W)
    y: np.ndarray  # int64 in 0..C-1
    class_names: list[str]
    kind: str = "tabular"  # "tabular" (standardised on the training split) | "image" (scaled by pixel_max)
    pixel_max: float = 1.0
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])


def _sklearn(loader_name: str, kind: str = "tabular") -> Callable[[Mapping], Dataset]:
    def load(cfg: Mapping) -> Dataset:
        from sklearn import datasets

        bunch = getattr(datasets, loader_name)()
        X = np.asarray(bunch.data, dtype=np.float32)
        pixel_max = 1.0
        if kind == "image":
            side = round(np.sqrt(X.shape[1]))
            X = X.reshape(len(X), 1, side, side)
            pixel_max = 16.0  # digits pixels are counts 0..16
        names = [str(n) for n in getattr(bunch, "target_names", np.unique(bunch.target))]
        return Dataset(cfg["name"], X, np.asarray(bunch.target, dtype=np.int64), names, kind, pixel_max)

    return load


def _synthetic(cfg: Mapping) -> Dataset:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=cfg["n_samples"],
        n_features=cfg["n_features"],
        n_informative=cfg["n_informative"],
        n_redundant=0,
        n_classes=cfg["n_classes"],
        n_clusters_per_class=1,
        class_sep=cfg["class_sep"],
        random_state=cfg["data_seed"],
    )
    names = [f"class_{k}" for k in range(cfg["n_classes"])]
    return Dataset("synthetic", X.astype(np.float32), y.astype(np.int64), names)


LOADERS: dict[str, Callable[[Mapping], Dataset]] = {
    "digits": _sklearn("load_digits", kind="image"),
    "breast_cancer": _sklearn("load_breast_cancer"),
    "wine": _sklearn("load_wine"),
    "synthetic": _synthetic,
}

# Datasets whose samples are (channels, H, W) images, known without loading (for torch_cnn).
IMAGE_DATASETS = frozenset({"digits"})

# Class counts known without loading, so configs can be validated before any data is read.
NUM_CLASSES: dict[str, Callable[[Mapping], int]] = {
    "digits": lambda cfg: 10,
    "breast_cancer": lambda cfg: 2,
    "wine": lambda cfg: 3,
    "synthetic": lambda cfg: int(cfg["n_classes"]),
}


def load_dataset(cfg: Mapping) -> Dataset:
    """Load the dataset described by the ``data`` config node."""
    return LOADERS[cfg["name"]](cfg)
