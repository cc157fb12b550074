"""Torch losses for classification, behind one registry.

>>> from lossbench.losses import build_loss
>>> loss_fn = build_loss("focal", num_classes=3, gamma=2.0)
>>> loss = loss_fn(logits, target)  # logits [N, C] float, target [N] int64 -> 0-dim mean loss

Every public module here registers its losses with ``@register_loss`` and is imported by ``discover``; a new
loss is one module, one ``conf/loss/<name>.yaml`` and one test. Notation: z = logits, p = softmax(z),
y = target, n_k = training count of class k, pi_k = n_k / sum(n).
"""

from ._base import LossModule
from ._registry import (
    LOSSES,
    LossSpec,
    available_losses,
    build_loss,
    discover,
    register_loss,
    validate_loss_params,
)
from ._validation import InvalidLossParameterError

discover(__name__, __path__)

from .logit_adjusted import posthoc_logit_adjust  # noqa: E402  (after discovery, like every loss module)

__all__ = [
    "LOSSES",
    "InvalidLossParameterError",
    "LossModule",
    "LossSpec",
    "available_losses",
    "build_loss",
    "posthoc_logit_adjust",
    "register_loss",
    "validate_loss_params",
]
