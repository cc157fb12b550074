"""Models behind one interface: ``fit(X, y, X_val, y_val) -> TrainResult``, ``predict``, ``predict_proba``.

scikit-learn models train on flattened features with their native loss; torch models train with
:func:`lossbench.train.fit_torch` on any loss from :mod:`lossbench.losses`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from lossbench.config import LOSS_NOT_PARAMS as NOT_PARAMS
from lossbench.fitted import TrainResult

ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid")


@dataclass(frozen=True)
class ModelSpec:
    backend: str  # "sklearn" | "torch"
    build: Callable
    needs_images: bool = False  # (channels, H, W) input only


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
    sample_class_weights: np.ndarray | None = None  # rebalance=class_weight on sklearn models


class SklearnModel:
    """A scikit-learn estimator plus how the loss is realised around it.

    ``class_weights`` (weights realisation) become per-sample weights; ``smoothing`` > 0 (expansion) fits on
    each row repeated C times with labels 0..C-1 weighted by the smoothed targets; ``posthoc_tau`` (post-hoc)
    predicts argmax(log p - tau log prior). Sample weights are scaled to mean 1, so "mean loss" is the
    weight-normalised mean torch uses and the strength mappings below hold unchanged.
    """

    def __init__(
        self,
        estimator,
        num_classes: int,
        *,
        class_weights: np.ndarray | None = None,
        smoothing: float = 0.0,
        posthoc_tau: float | None = None,
        class_counts: tuple[int, ...] = (),
    ) -> None:
        self.estimator, self.num_classes = estimator, num_classes
        self.class_weights, self.smoothing, self.posthoc_tau = class_weights, smoothing, posthoc_tau
        self.log_prior = (
            np.log(np.asarray(class_counts, dtype=np.float64) / np.sum(class_counts))
            if class_counts
            else None
        )

    @staticmethod
    def _flat(X: np.ndarray) -> np.ndarray:
        # float64: sklearn's probabilities from float32 input miss its own sum-to-one tolerance
        return X.reshape(len(X), -1).astype(np.float64)

    def fit(self, X, y, X_val, y_val) -> TrainResult:
        start = time.perf_counter()
        X, C = self._flat(X), self.num_classes
        weight = None if self.class_weights is None else self.class_weights[y]
        if self.smoothing > 0:
            # CE against q = (1-eps) onehot + eps/C equals a weighted CE over C copies of each row
            q = np.full((len(y), C), self.smoothing / C)
            q[np.arange(len(y)), y] += 1.0 - self.smoothing
            weight = q.ravel() if weight is None else (q * weight[:, None]).ravel()
            X, y = np.repeat(X, C, axis=0), np.tile(np.arange(C), len(y))
        if weight is not None:
            n_rows = len(weight) // C if self.smoothing > 0 else len(weight)  # rows before expansion
            self.estimator.fit(X, y, sample_weight=weight * (n_rows / weight.sum()))
        else:
            self.estimator.fit(X, y)
        n_iter = getattr(self.estimator, "n_iter_", None)  # None for closed-form fits (ridge)
        n_iter = 0 if n_iter is None else np.max(n_iter)
        return TrainResult(
            epochs_run=int(n_iter), best_epoch=int(n_iter), seconds=time.perf_counter() - start
        )

    def _raw_proba(self, X) -> np.ndarray:
        proba = np.zeros((len(X), self.num_classes))
        proba[:, self.estimator.classes_] = self.estimator.predict_proba(self._flat(X))
        return proba

    def predict(self, X) -> np.ndarray:
        if self.posthoc_tau is None:
            return self.estimator.predict(self._flat(X)).astype(np.int64)
        return self.predict_proba(X).argmax(1).astype(np.int64)

    def predict_proba(self, X) -> np.ndarray | None:
        if not hasattr(self.estimator, "predict_proba"):
            return None
        proba = self._raw_proba(X)
        if self.posthoc_tau is None:
            return proba
        from scipy.special import softmax

        return softmax(np.log(np.clip(proba, 1e-300, None)) - self.posthoc_tau * self.log_prior, axis=1)


class TorchModel:
    def __init__(self, net, ctx: Context) -> None:
        from lossbench.losses import build_loss

        self.net, self.ctx = net, ctx
        params = {k: v for k, v in ctx.loss.items() if k not in NOT_PARAMS}
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
        """The probabilities the loss trains (``LossSpec.probability``: softmax(z), LDAM softmax(scale z));
        None for margin/square losses."""
        from lossbench.losses import LOSSES

        spec = LOSSES[self.ctx.loss["name"]]
        if not spec.probabilistic:
            return None
        return spec.probability(
            self.logits(X), {k: v for k, v in self.ctx.loss.items() if k not in NOT_PARAMS}
        )


def _sklearn_loss_wrapping(ctx: Context) -> dict:
    """How the loss is realised around a scikit-learn estimator: class weights, expansion, post-hoc."""
    loss = ctx.loss
    name, counts = loss["name"], ctx.class_counts
    if (
        ctx.sample_class_weights is not None
    ):  # rebalance=class_weight (the table forbids a weighted loss here)
        wrapping = _sklearn_loss_wrapping(replace(ctx, sample_class_weights=None))
        return {**wrapping, "class_weights": np.asarray(ctx.sample_class_weights)}
    if name in ("weighted_ce", "class_balanced"):
        from lossbench.losses import class_weights

        params = {k: v for k, v in loss.items() if k not in NOT_PARAMS}
        weights = class_weights(name, num_classes=ctx.num_classes, class_counts=list(counts), **params)
        return {"class_weights": weights.astype(np.float64)}  # the torch loss's weight buffer, in float64
    if name == "label_smoothing":
        return {"smoothing": float(loss["smoothing"])}
    if name == "logit_adjusted":
        return {"posthoc_tau": float(loss["tau"]), "class_counts": counts}
    return {}


def _strength(ctx: Context) -> tuple[str, float, float]:
    """(penalty name, canonical strength lambda, l1_ratio) of the run's regularization."""
    reg = ctx.regularization
    l1_ratio = {"l1": 1.0, "l2": 0.0}.get(reg["name"], float(reg.get("l1_ratio", 0.0)))
    return reg["name"], float(reg.get("strength", 0.0)), l1_ratio


def _logreg(cfg: Mapping, ctx: Context) -> SklearnModel:
    from sklearn.linear_model import LogisticRegression

    penalty, strength, l1_ratio = _strength(ctx)
    n = sum(ctx.class_counts)
    # mean loss + strength/2 ||w||^2  <=>  sklearn's  C * sum loss + 1/2 ||w||^2  with C = 1/(strength n)
    C = np.inf if penalty == "none" or strength == 0 else 1.0 / (strength * n)
    solver = "saga" if l1_ratio > 0 else "lbfgs"
    estimator = LogisticRegression(
        C=C,
        l1_ratio=l1_ratio,
        solver=solver,
        max_iter=int(cfg["max_iter"]),
        tol=float(cfg["tol"]),
        random_state=ctx.seed,
    )
    return SklearnModel(estimator, ctx.num_classes, **_sklearn_loss_wrapping(ctx))


def _linear_svm(cfg: Mapping, ctx: Context) -> SklearnModel:
    from sklearn.svm import LinearSVC

    penalty, strength, _ = _strength(ctx)
    loss = ctx.loss
    crammer = loss.get("variant") == "crammer_singer"
    estimator = LinearSVC(
        penalty="l1" if penalty == "l1" else "l2",
        loss=loss["name"],  # hinge | squared_hinge (the compatibility table allows nothing else)
        dual=penalty != "l1",
        C=1.0 / (strength * sum(ctx.class_counts)),  # C sum loss + ||w|| term, as for logreg
        multi_class="crammer_singer" if crammer else "ovr",
        max_iter=int(cfg["max_iter"]),
        tol=float(cfg["tol"]),
        random_state=ctx.seed,
    )
    return SklearnModel(estimator, ctx.num_classes, **_sklearn_loss_wrapping(ctx))


SGD_LOSS = {
    "ce": "log_loss",
    "weighted_ce": "log_loss",
    "class_balanced": "log_loss",
    "label_smoothing": "log_loss",
    "logit_adjusted": "log_loss",
    "hinge": "hinge",
    "squared_hinge": "squared_hinge",
    "mse": "squared_error",
}


def _sgd_schedule(name: str, loss: str) -> str:
    """auto: 'optimal' (1/(alpha t)) suits bounded classification losses; the square loss diverges under it
    and gets sklearn's regression schedule, 'invscaling'."""
    if name != "auto":
        return name
    return "invscaling" if loss == "mse" else "optimal"


def _sgd(cfg: Mapping, ctx: Context) -> SklearnModel:
    from sklearn.linear_model import SGDClassifier

    penalty, strength, l1_ratio = _strength(ctx)
    estimator = SGDClassifier(
        loss=SGD_LOSS[ctx.loss["name"]],
        penalty=None if penalty == "none" else penalty,
        alpha=strength if penalty != "none" else 0.0,  # SGD's objective is already  mean loss + alpha R(w)
        l1_ratio=l1_ratio,
        max_iter=int(cfg["max_iter"]),
        tol=float(cfg["tol"]),
        learning_rate=_sgd_schedule(str(cfg["learning_rate"]), ctx.loss["name"]),
        eta0=float(cfg["eta0"]),
        random_state=ctx.seed,
    )
    return SklearnModel(estimator, ctx.num_classes, **_sklearn_loss_wrapping(ctx))


def _ridge(cfg: Mapping, ctx: Context) -> SklearnModel:
    from sklearn.linear_model import RidgeClassifier

    _, strength, _ = _strength(ctx)
    # ||Y - XW||^2 + alpha ||W||^2  =  n (mean square loss + strength/2 ||W||^2)  with alpha = strength n/2
    estimator = RidgeClassifier(alpha=strength * sum(ctx.class_counts) / 2)
    return SklearnModel(estimator, ctx.num_classes, **_sklearn_loss_wrapping(ctx))


def _sklearn_mlp(cfg: Mapping, ctx: Context) -> SklearnModel:
    from sklearn.neural_network import MLPClassifier

    penalty, strength, _ = _strength(ctx)
    # MLPClassifier minimises  mean loss + alpha/(2n) ||W||^2 ,  so alpha = strength n
    estimator = MLPClassifier(
        hidden_layer_sizes=tuple(int(h) for h in cfg["hidden_sizes"]),
        activation={"sigmoid": "logistic"}.get(cfg["activation"], cfg["activation"]),
        alpha=strength * sum(ctx.class_counts) if penalty == "l2" else 0.0,
        learning_rate_init=float(cfg["lr"]),
        max_iter=int(cfg["max_iter"]),
        early_stopping=False,
        random_state=ctx.seed,
    )
    return SklearnModel(estimator, ctx.num_classes, **_sklearn_loss_wrapping(ctx))


def _activation(name: str):
    from torch import nn

    return {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}[name]()


def _dropout_rate(ctx: Context) -> float:
    reg = ctx.regularization
    return float(reg.get("rate", 0.0)) if reg["name"] == "dropout" else 0.0


def _output_layer(width: int, ctx: Context):
    """The last layer the loss asks for (``LossSpec.output_layer``: LDAM's cosine logits, else linear)."""
    from lossbench.heads import output_layer
    from lossbench.losses import LOSSES

    params = {k: v for k, v in ctx.loss.items() if k not in NOT_PARAMS}
    return output_layer(width, ctx.num_classes, LOSSES[ctx.loss["name"]].output_layer(params))


def _torch_linear(cfg: Mapping, ctx: Context) -> TorchModel:
    import torch
    from torch import nn

    torch.manual_seed(ctx.seed)
    return TorchModel(nn.Sequential(nn.Flatten(), _output_layer(int(np.prod(ctx.feature_shape)), ctx)), ctx)


def _torch_mlp(cfg: Mapping, ctx: Context) -> TorchModel:
    import torch
    from torch import nn

    torch.manual_seed(ctx.seed)  # weight initialisation is part of the seeded run
    rate = _dropout_rate(ctx)
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(np.prod(ctx.feature_shape))
    for hidden in cfg["hidden_sizes"]:
        layers += [nn.Linear(width, int(hidden)), _activation(cfg["activation"])]
        if rate > 0:
            layers.append(nn.Dropout(rate))
        width = int(hidden)
    layers.append(_output_layer(width, ctx))
    return TorchModel(nn.Sequential(*layers), ctx)


def _torch_cnn(cfg: Mapping, ctx: Context) -> TorchModel:
    """Conv(3x3)-activation-maxpool(2) blocks, then one hidden dense layer: for (channels, H, W) images."""
    import torch
    from torch import nn

    torch.manual_seed(ctx.seed)
    in_channels, height, width = ctx.feature_shape
    rate = _dropout_rate(ctx)
    layers: list[nn.Module] = []
    for out_channels in cfg["channels"]:
        layers += [nn.Conv2d(in_channels, int(out_channels), 3, padding=1), _activation(cfg["activation"])]
        layers.append(nn.MaxPool2d(2))
        in_channels, height, width = int(out_channels), height // 2, width // 2
    layers += [
        nn.Flatten(),
        nn.Linear(in_channels * height * width, int(cfg["hidden"])),
        _activation(cfg["activation"]),
    ]
    if rate > 0:
        layers.append(nn.Dropout(rate))
    layers.append(_output_layer(int(cfg["hidden"]), ctx))
    return TorchModel(nn.Sequential(*layers), ctx)


MODELS: dict[str, ModelSpec] = {
    "logreg": ModelSpec("sklearn", _logreg),
    "linear_svm": ModelSpec("sklearn", _linear_svm),
    "sgd": ModelSpec("sklearn", _sgd),
    "ridge": ModelSpec("sklearn", _ridge),
    "sklearn_mlp": ModelSpec("sklearn", _sklearn_mlp),
    "torch_linear": ModelSpec("torch", _torch_linear),
    "torch_mlp": ModelSpec("torch", _torch_mlp),
    "torch_cnn": ModelSpec("torch", _torch_cnn, needs_images=True),
}


def build_model(cfg: Mapping, ctx: Context) -> SklearnModel | TorchModel:
    return MODELS[cfg["name"]].build(cfg, ctx)
