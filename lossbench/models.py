"""Models behind one interface: ``fit(X, y, X_val, y_val) -> TrainResult``, ``predict``, ``predict_proba``.

scikit-learn models train on flattened features with their native loss; torch models train with
:func:`lossbench.train.fit_torch` on any loss from :mod:`lossbench.losses`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from lossbench.train import TrainResult

ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid")


@dataclass(frozen=True)
class ModelSpec:
    backend: str  # "sklearn" | "torch"
    build: Callable


@dataclass(frozen=True)
class Context:
    """What a model builder needs to know about the run beyond its own config node."""

    num_classes: int
    feature_shape: tuple[int, ...]
    class_counts: tuple[int, ...]  # training split, after imbalance
    seed: int
    loss: Mapping
    regularization: Mapping
    train: Mapping


class SklearnModel:
    def __init__(self, estimator, num_classes: int) -> None:
        self.estimator, self.num_classes = estimator, num_classes

    @staticmethod
    def _flat(X: np.ndarray) -> np.ndarray:
        # float64: sklearn's probabilities from float32 input miss its own sum-to-one tolerance
        return X.reshape(len(X), -1).astype(np.float64)

    def fit(self, X, y, X_val, y_val) -> TrainResult:
        start = time.perf_counter()
        self.estimator.fit(self._flat(X), y)
        n_iter = np.max(getattr(self.estimator, "n_iter_", [0]))
        return TrainResult(
            epochs_run=int(n_iter), best_epoch=int(n_iter), seconds=time.perf_counter() - start
        )

    def predict(self, X) -> np.ndarray:
        return self.estimator.predict(self._flat(X)).astype(np.int64)

    def predict_proba(self, X) -> np.ndarray | None:
        if not hasattr(self.estimator, "predict_proba"):
            return None
        proba = np.zeros((len(X), self.num_classes))
        proba[:, self.estimator.classes_] = self.estimator.predict_proba(self._flat(X))
        return proba


class TorchModel:
    def __init__(self, net, ctx: Context) -> None:
        from lossbench.losses import build_loss

        self.net, self.ctx = net, ctx
        params = {k: v for k, v in ctx.loss.items() if k != "name"}
        self.loss_fn = build_loss(
            ctx.loss["name"], num_classes=ctx.num_classes, class_counts=list(ctx.class_counts), **params
        )
        from lossbench.train import resolve_device

        self.device = resolve_device(str(ctx.train["device"]))

    def fit(self, X, y, X_val, y_val) -> TrainResult:
        from lossbench.train import fit_torch

        return fit_torch(
            self.net,
            self.loss_fn,
            X,
            y,
            X_val,
            y_val,
            train_cfg=self.ctx.train,
            regularization=self.ctx.regularization,
            num_classes=self.ctx.num_classes,
            seed=self.ctx.seed,
            device=self.device,
        )

    def logits(self, X) -> np.ndarray:
        import torch

        from lossbench.train import predict_logits

        return predict_logits(self.net, torch.as_tensor(X, device=self.device)).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        return self.logits(X).argmax(1).astype(np.int64)

    def predict_proba(self, X) -> np.ndarray | None:
        """softmax(logits), when the loss makes that a probability estimate; None for margin/square losses."""
        from scipy.special import softmax

        from lossbench.losses import LOSSES

        if not LOSSES[self.ctx.loss["name"]].probabilistic:
            return None
        return softmax(self.logits(X).astype(np.float64), axis=1)


def _logreg(cfg: Mapping, ctx: Context) -> SklearnModel:
    from sklearn.linear_model import LogisticRegression

    reg = ctx.regularization
    n = sum(ctx.class_counts)
    strength = float(reg.get("strength", 0.0))
    # mean loss + strength/2 ||w||^2  <=>  sklearn's  C * sum loss + 1/2 ||w||^2  with C = 1/(strength n)
    C = np.inf if reg["name"] == "none" or strength == 0 else 1.0 / (strength * n)
    estimator = LogisticRegression(
        C=C, max_iter=int(cfg["max_iter"]), tol=float(cfg["tol"]), random_state=ctx.seed
    )
    return SklearnModel(estimator, ctx.num_classes)


def _activation(name: str):
    from torch import nn

    return {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}[name]()


def _torch_mlp(cfg: Mapping, ctx: Context) -> TorchModel:
    import torch
    from torch import nn

    torch.manual_seed(ctx.seed)  # weight initialisation is part of the seeded run
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(np.prod(ctx.feature_shape))
    for hidden in cfg["hidden_sizes"]:
        layers += [nn.Linear(width, int(hidden)), _activation(cfg["activation"])]
        if float(cfg.get("dropout", 0.0)) > 0:
            layers.append(nn.Dropout(float(cfg["dropout"])))
        width = int(hidden)
    layers.append(nn.Linear(width, ctx.num_classes))
    return TorchModel(nn.Sequential(*layers), ctx)


MODELS: dict[str, ModelSpec] = {
    "logreg": ModelSpec("sklearn", _logreg),
    "torch_mlp": ModelSpec("torch", _torch_mlp),
}


def build_model(cfg: Mapping, ctx: Context) -> SklearnModel | TorchModel:
    return MODELS[cfg["name"]].build(cfg, ctx)
