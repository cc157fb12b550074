"""The one compatibility table: is (model, loss, regularization) valid, and how is it realised?

Validation, sweeps and reports all ask this module; nothing else decides which combinations exist.
Realisations:

- ``native``: the model's own training objective is that loss;
- ``weights``: cross-entropy with per-class sample weights (weighted_ce, class_balanced);
- ``expansion``: label smoothing by expanding each row into C rows weighted by the smoothed targets (exact);
- ``post-hoc``: logit adjustment on the fitted model's log-probabilities: argmax(log p - tau log prior).
"""

from __future__ import annotations

from collections.abc import Mapping

from lossbench.errors import ConfigError
from lossbench.models import MODELS

REALISATIONS = ("native", "weights", "expansion", "post-hoc")

_CE_FAMILY = {
    "ce": "native",
    "weighted_ce": "weights",
    "class_balanced": "weights",
    "label_smoothing": "expansion",
    "logit_adjusted": "post-hoc",
}
# scikit-learn models: the losses each realises, and how. Torch models take every registered loss natively.
SKLEARN_LOSSES: dict[str, dict[str, str]] = {
    "logreg": dict(_CE_FAMILY),
    "sklearn_mlp": dict(_CE_FAMILY),
    "sgd": {**_CE_FAMILY, "hinge": "native", "squared_hinge": "native", "mse": "native"},
    "linear_svm": {"hinge": "native", "squared_hinge": "native"},
    "ridge": {"mse": "native"},
}
# scikit-learn's multiclass margin losses: which loss.variant each model trains exactly.
SKLEARN_VARIANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "linear_svm": {"hinge": ("one_vs_rest", "crammer_singer"), "squared_hinge": ("one_vs_rest",)},
    "sgd": {"hinge": ("one_vs_rest",), "squared_hinge": ("one_vs_rest",)},
}
_PENALTIES = ("none", "l1", "l2", "elasticnet")
REGULARIZATION: dict[str, tuple[str, ...]] = {
    "logreg": _PENALTIES,
    "sgd": _PENALTIES,
    "linear_svm": ("l1", "l2"),  # an unpenalised SVM is ill-posed on separable data
    "ridge": ("l2",),
    "sklearn_mlp": ("none", "l2"),
    "torch_linear": _PENALTIES,
    "torch_mlp": (*_PENALTIES, "dropout"),
    "torch_cnn": (*_PENALTIES, "dropout"),
}


def supported_losses(model: str) -> dict[str, str]:
    """Loss name -> realisation, for one model."""
    if MODELS[model].backend == "torch":
        from lossbench.losses import available_losses

        return dict.fromkeys(available_losses(), "native")
    return dict(SKLEARN_LOSSES[model])


def _problem(
    model: str,
    loss: str,
    regularization: str,
    loss_params: Mapping,
    data: str | None,
    rebalance: str = "none",
    strength: float | None = None,
):
    """The first reason the combination cannot exist, as a ConfigError, or None."""
    losses = supported_losses(model)
    if loss not in losses:
        return ConfigError("loss", loss, f"model={model} supports the losses: {', '.join(sorted(losses))}")
    variants = SKLEARN_VARIANTS.get(model, {}).get(loss)
    variant = loss_params.get("variant")
    if variants and variant is not None and variant not in variants:
        return ConfigError(
            "loss.variant", variant, f"model={model} trains loss={loss} with variant {' or '.join(variants)}"
        )
    regs = REGULARIZATION[model]
    if regularization not in regs:
        return ConfigError(
            "regularization", regularization, f"model={model} supports the regularizations: {', '.join(regs)}"
        )
    if strength is not None and regularization == "none" and strength != 0:
        return ConfigError(
            "regularization.strength",
            strength,
            "must be 0 with regularization=none",
            "Choose regularization=l1, l2, elasticnet or dropout for a penalty.",
        )
    if strength is not None and regularization in ("l1", "l2", "elasticnet") and strength == 0:
        return ConfigError(
            "regularization.strength",
            strength,
            f"must be > 0 with regularization={regularization}",
            "Use regularization=none for no penalty.",
        )
    if model == "linear_svm" and regularization == "l1" and loss != "squared_hinge":
        return ConfigError(
            "regularization", "l1", "LinearSVC takes an l1 penalty with loss=squared_hinge only"
        )
    if rebalance == "class_weight":
        if loss in ("weighted_ce", "class_balanced"):
            return ConfigError(
                "rebalance", rebalance, f"loss={loss} is already class-weighted; use rebalance=none"
            )
        if MODELS[model].backend == "torch" and loss != "ce":
            return ConfigError(
                "rebalance",
                rebalance,
                f"on torch models it applies to loss=ce only (as weighted CE), not loss={loss}",
                "Use rebalance=oversample, or the loss's own class weights (e.g. focal's alpha).",
            )
    if MODELS[model].needs_images and data is not None:
        from lossbench.data import IMAGE_DATASETS

        if data not in IMAGE_DATASETS:
            return ConfigError(
                "data", data, f"model={model} needs image data: {', '.join(sorted(IMAGE_DATASETS))}"
            )
    return None


def check(
    model: str,
    loss: str,
    regularization: str = "none",
    loss_params: Mapping | None = None,
    data: str | None = None,
    rebalance: str = "none",
    strength: float | None = None,
) -> str:
    """Return the realisation, or raise a ConfigError saying what the model does support."""
    problem = _problem(model, loss, regularization, loss_params or {}, data, rebalance, strength)
    if problem is not None:
        raise problem
    return supported_losses(model)[loss]


def realisation(model: str, loss: str, regularization: str = "none", **context) -> str | None:
    """How the combination is realised, or None when it cannot exist (``context``: as for :func:`check`)."""
    try:
        return check(model, loss, regularization, **context)
    except ConfigError:
        return None


def check_config(cfg: Mapping) -> str:
    """:func:`check` for a composed run config."""
    return check(
        cfg["model"]["name"],
        cfg["loss"]["name"],
        cfg["regularization"]["name"],
        cfg["loss"],
        cfg["data"]["name"],
        cfg.get("rebalance", {}).get("name", "none"),
        cfg["regularization"].get("strength"),
    )


def matrix_markdown() -> str:
    """The model x loss matrix (README): realisation per cell, '—' where the pair cannot exist."""
    from lossbench.losses import available_losses

    losses = available_losses()
    rows = ["| model | " + " | ".join(f"`{loss}`" for loss in losses) + " | regularization |"]
    rows.append("|---" * (len(losses) + 2) + "|")
    for model in MODELS:
        supported = supported_losses(model)
        cells = []
        for loss in losses:
            how = supported.get(loss)
            variants = SKLEARN_VARIANTS.get(model, {}).get(loss)
            cells.append("—" if how is None else how + (f" ({', '.join(variants)})" if variants else ""))
        rows.append(f"| `{model}` | " + " | ".join(cells) + f" | {', '.join(REGULARIZATION[model])} |")
    return "\n".join(rows)
