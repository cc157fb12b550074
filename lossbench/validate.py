"""Check every value of a composed config before any data is loaded or any run is created.

Each problem raises :class:`~lossbench.errors.ConfigError`: the key, the bad value, what is allowed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

from lossbench.errors import ConfigError

DEVICES = "auto, cpu, cuda or cuda:N"


def _get(cfg: Mapping, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def number(
    cfg: Mapping,
    key: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    optional: bool = False,
) -> None:
    """A real number (or an integer) within [low, high]; open ends where asked."""
    value = _get(cfg, key)
    if value is None and optional:
        return
    kind = "an integer" if integer else "a number"
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    allowed = (
        f"must be {kind}"
        + (f" {lo}" if lo else "")
        + (" and" if lo and hi else "")
        + (f" {hi}" if hi else "")
    )
    if optional:
        allowed += " (or null)"
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    if not ok_type or not math.isfinite(value):
        raise ConfigError(key, value, allowed)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ConfigError(key, value, allowed)


def choice(cfg: Mapping, key: str, allowed: tuple[str, ...] | list[str]) -> None:
    value = _get(cfg, key)
    if value not in allowed:
        raise ConfigError(key, value, f"must be one of {', '.join(allowed)}")


def _validate_data(cfg: Mapping) -> None:
    from lossbench.data import LOADERS, check_data_config

    choice(cfg, "data.name", sorted(LOADERS))
    label = cfg["data"].get("label")
    if label is not None and (not isinstance(label, str) or not label.strip() or not label.isprintable()):
        raise ConfigError("data.label", label, "must be null or a non-empty name (printable characters)")
    check_data_config(cfg)  # the file exists, keys are well-formed: before any data is read
    if cfg["data"]["name"] == "synthetic":
        number(cfg, "data.n_classes", low=2, integer=True)
        number(cfg, "data.n_features", low=1, integer=True)
        number(cfg, "data.n_informative", low=1, high=cfg["data"]["n_features"], integer=True)
        number(cfg, "data.n_samples", low=10 * cfg["data"]["n_classes"], integer=True)
        number(cfg, "data.class_sep", low=0, low_open=True)
        number(cfg, "data.data_seed", low=0, integer=True)
        if cfg["data"]["n_classes"] > 2 ** cfg["data"]["n_informative"]:
            raise ConfigError(
                "data.n_informative",
                cfg["data"]["n_informative"],
                f"must satisfy 2**n_informative >= n_classes ({cfg['data']['n_classes']})",
            )


def _positive_ints(cfg: Mapping, key: str) -> None:
    value = _get(cfg, key)
    allowed = "must be a non-empty list of positive integers, e.g. [128, 64]"
    if not isinstance(value, list) or not value:
        raise ConfigError(key, value, allowed)
    if any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1 for h in value):
        raise ConfigError(key, value, allowed)


def _validate_model(cfg: Mapping) -> None:
    from lossbench.models import ACTIVATIONS, MODELS

    choice(cfg, "model.name", sorted(MODELS))
    model = cfg["model"]
    for key in ("max_iter", "hidden"):
        if key in model:
            number(cfg, f"model.{key}", low=1, integer=True)
    for key in ("tol", "lr", "eta0"):
        if key in model:
            number(cfg, f"model.{key}", low=0, low_open=True)
    for key in ("hidden_sizes", "channels"):
        if key in model:
            _positive_ints(cfg, f"model.{key}")
    if "activation" in model:
        allowed = ("relu", "tanh", "sigmoid") if model["name"] == "sklearn_mlp" else ACTIVATIONS
        choice(cfg, "model.activation", allowed)
    if "learning_rate" in model:
        choice(cfg, "model.learning_rate", ("auto", "optimal", "constant", "invscaling", "adaptive"))


def _validate_regularization(cfg: Mapping) -> None:
    choice(cfg, "regularization.name", ("none", "l1", "l2", "elasticnet", "dropout"))
    reg = cfg["regularization"]
    number(cfg, "regularization.strength", low=0)
    if reg["name"] == "elasticnet":
        number(cfg, "regularization.l1_ratio", low=0, high=1)
    if reg["name"] == "dropout":
        number(cfg, "regularization.rate", low=0, high=1, low_open=True, high_open=True)


def _validate_rebalance(cfg: Mapping) -> None:
    from lossbench.rebalance import METHODS, WEIGHTINGS

    choice(cfg, "rebalance.name", METHODS)
    if cfg["rebalance"]["name"] == "class_weight":
        choice(cfg, "rebalance.weights", WEIGHTINGS)
        number(cfg, "rebalance.beta", low=0, high=1, high_open=True)
    if cfg["rebalance"]["name"] == "smote":
        number(cfg, "rebalance.k_neighbors", low=1, integer=True)


def _validate_train(cfg: Mapping) -> None:
    choice(cfg, "train.optimizer", ("adam", "adamw", "sgd"))
    number(cfg, "train.lr", low=0, low_open=True)
    number(cfg, "train.momentum", low=0, high=1, high_open=True)
    number(cfg, "train.epochs", low=1, integer=True)
    number(cfg, "train.batch_size", low=1, integer=True)
    number(cfg, "train.patience", low=0, integer=True, optional=True)
    number(cfg, "train.min_steps", low=0, integer=True)
    number(cfg, "train.warmup", low=0, high=1)
    choice(cfg, "train.monitor", ("val_loss", "val_balanced_accuracy"))
    threads = cfg["train"].get("threads", "auto")
    if threads != "auto" and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ConfigError("train.threads", threads, "must be auto or an integer >= 1")
    device = str(cfg["train"]["device"])
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError("train.device", device, f"must be {DEVICES}")
    from lossbench.models import MODELS

    model = MODELS.get(cfg["model"]["name"])
    if device.startswith("cuda") and model is not None and model.backend == "torch":
        _check_cuda(device)


def _check_cuda(device: str) -> None:
    """``cuda`` / ``cuda:N`` names a GPU this machine has (torch is imported only for such a device)."""
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "train.device", device, "CUDA is not available on this machine", "Use train.device=auto or cpu."
        )
    index = int(device.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(
            "train.device", device, f"this machine has {count} CUDA device(s): cuda:0..{count - 1}"
        )


def _validate_loss(cfg: Mapping, num_classes: int | None) -> None:
    from lossbench.losses import available_losses, validate_loss_params

    choice(cfg, "loss.name", available_losses())
    from lossbench.config import LOSS_NOT_PARAMS

    params = {k: v for k, v in cfg["loss"].items() if k not in LOSS_NOT_PARAMS}
    try:
        validate_loss_params(cfg["loss"]["name"], num_classes=num_classes, **params)
    except (TypeError, ValueError) as e:
        param = getattr(e, "param", None)
        if param is not None:  # one parameter: name it (loss.gamma), with what it must be
            raise ConfigError(f"loss.{param}", e.value, e.allowed) from e
        raise ConfigError("loss", cfg["loss"]["name"], str(e).rstrip(".")) from e


def validate(cfg: Mapping) -> None:
    """Raise ConfigError for the first invalid value of a composed run config."""
    from lossbench.compat import check_config
    from lossbench.config import to_container
    from lossbench.data import NUM_CLASSES
    from lossbench.imbalance import PROFILES

    cfg = to_container(cfg)
    if "tracking" in cfg:
        from lossbench.tracking import check_experiment_name

        check_experiment_name(cfg["tracking"].get("experiment"))
        from lossbench.journal import check

        check(cfg["tracking"].get("wal", "auto"))
    number(cfg, "seed", low=0, integer=True)
    number(cfg, "split.test", low=0, high=1, low_open=True, high_open=True)
    number(cfg, "split.val", low=0, high=1 - cfg["split"]["test"], low_open=True, high_open=True)
    _validate_data(cfg)
    choice(cfg, "imbalance.profile", PROFILES)
    number(cfg, "imbalance.ratio", low=1)
    choice(cfg, "imbalance.test", ("balanced", "natural"))
    if cfg["imbalance"]["profile"] in ("step", "binary"):
        high = 0.5 if cfg["imbalance"]["profile"] == "binary" else 1
        number(cfg, "imbalance.minority_fraction", low=0, high=high, low_open=True, high_open=high == 1)
        known = NUM_CLASSES[cfg["data"]["name"]](cfg["data"])
        if cfg["imbalance"]["profile"] == "binary" and known not in (None, 2):
            raise ConfigError(
                "imbalance.profile",
                "binary",
                f"needs data with 2 classes; data={cfg['data']['name']} has {known}",
                "Use imbalance=exponential or imbalance=step.",
            )
    _validate_rebalance(cfg)
    _validate_model(cfg)
    _validate_train(cfg)
    _validate_regularization(cfg)
    _validate_loss(cfg, NUM_CLASSES[cfg["data"]["name"]](cfg["data"]))
    check_config(cfg)
