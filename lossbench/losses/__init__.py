"""Torch losses for classification, behind one registry.

>>> from lossbench.losses import build_loss
>>> loss_fn = build_loss("focal", num_classes=3, gamma=2.0)
>>> loss = loss_fn(logits, target)  # logits [N, C] float, target [N] int64 -> 0-dim mean loss

Every public module here registers its losses with ``@register_loss``; ``discover`` reads those
registrations from the source, and a module is imported (with torch) when one of its losses is first built.
A new loss is one module, one ``conf/loss/<name>.yaml`` and one test. Notation: z = logits, p = softmax(z),
y = target, n_k = training count of class k, pi_k = n_k / sum(n).
"""

import importlib

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

discover(__name__, __path__)  # reads the loss modules; torch is imported when a loss is first built


_ON_FIRST_USE = {"LossModule": "._base", "posthoc_logit_adjust": ".logit_adjusted"}  # these import torch


def __getattr__(name: str):
    if name in _ON_FIRST_USE:
        return getattr(importlib.import_module(_ON_FIRST_USE[name], __name__), name)
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
