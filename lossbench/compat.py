"""The one compatibility table: is (model, loss, regularization) valid, and how is it realised?

Validation, sweeps and reports all ask this module; nothing else decides what pairs exist.
Realisations: ``native`` (the model's own training objective), ``weights`` (class/sample weights),
``expansion`` (rows expanded by soft targets), ``post-hoc`` (applied to the scores after fitting).
"""

from __future__ import annotations

from lossbench.errors import ConfigError
from lossbench.models import MODELS

# scikit-learn models: the losses each realises and how. Torch models take every registered torch loss.
SKLEARN_LOSSES: dict[str, dict[str, str]] = {
    "logreg": {"ce": "native"},
}
REGULARIZATION: dict[str, tuple[str, ...]] = {
    "sklearn": ("none", "l2"),
    "torch": ("none", "l2"),
}


def supported_losses(model: str) -> dict[str, str]:
    """Loss name -> realisation, for one model."""
    if MODELS[model].backend == "torch":
        from lossbench.losses import available_losses

        return dict.fromkeys(available_losses(), "native")
    return dict(SKLEARN_LOSSES[model])


def realisation(model: str, loss: str, regularization: str = "none") -> str | None:
    """How the triple is realised, or None when it cannot exist."""
    if regularization not in REGULARIZATION[MODELS[model].backend]:
        return None
    return supported_losses(model).get(loss)


def check(model: str, loss: str, regularization: str = "none") -> str:
    """Return the realisation, or raise a ConfigError listing what the model does support."""
    losses = supported_losses(model)
    if loss not in losses:
        raise ConfigError("loss", loss, f"model={model} supports the losses: {', '.join(sorted(losses))}")
    regs = REGULARIZATION[MODELS[model].backend]
    if regularization not in regs:
        raise ConfigError(
            "regularization", regularization, f"model={model} supports the regularizations: {', '.join(regs)}"
        )
    return losses[loss]
