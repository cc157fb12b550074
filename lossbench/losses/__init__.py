"""Torch losses for classification, behind one registry.

>>> from lossbench.losses import build_loss
>>> loss_fn = build_loss("focal", num_classes=3, gamma=2.0)
>>> loss = loss_fn(logits, target)  # logits [N, C] float, target [N] int64 -> 0-dim mean loss

Every public module here registers its losses with ``@register_loss`` when imported, and ``discover`` imports
them all. None of them imports torch until a loss is built: functions import it when called, and the
``nn.Module`` classes are defined on first access through the module's ``__getattr__`` (PEP 562, see
``_lazy``); ``LossModule`` below likewise. A new loss is one module, one ``conf/loss/<name>.yaml`` and one
test. Notation: z = logits, p = softmax(z), y = target, n_k = training count of class k, pi_k = n_k / sum(n).
"""

from ._registry import (
    LOSSES,
    LossSpec,
    available_losses,
    build_loss,
    class_weights,
    discover,
    register_loss,
    validate_loss_params,
)
from ._validation import InvalidLossParameterError

discover(__name__, __path__)  # imports the loss modules (not torch): every loss is registered

from .logit_adjusted import posthoc_logit_adjust  # noqa: E402  (NumPy only; after the registrations)


def __getattr__(name: str):
    if name == "LossModule":  # the base class of the losses' nn.Modules: importing it imports torch
        from ._base import LossModule

        return LossModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LOSSES",
    "InvalidLossParameterError",
    "LossModule",
    "LossSpec",
    "available_losses",
    "build_loss",
    "class_weights",
    "posthoc_logit_adjust",
    "register_loss",
    "validate_loss_params",
]
