"""Class-balanced loss (Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples").

    alpha_k = (1 - beta) / (1 - beta^{n_k}),  rescaled so that sum_k alpha_k = C
    loss    = sum_i alpha_{y_i} (-log p_{i,y_i}) / sum_i alpha_{y_i}     (weighted_ce's normalisation)

``beta = 0`` gives alpha = 1 (plain CE); ``beta -> 1`` tends to inverse-frequency weights.

Imports without torch (see ``lossbench.losses``): torch is imported when the weights are made as a tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import _weights
from ._registry import register_loss
from ._validation import Real

if TYPE_CHECKING:
    import torch

    from ._base import LossModule

__all__ = ["class_balanced_weights"]


def class_balanced_weights(class_counts: Sequence[float], beta: float) -> torch.Tensor:
    """``alpha_k ∝ (1 - beta) / (1 - beta^{n_k})`` with ``sum alpha = C``, float32 [C]; counts must be > 0."""
    import torch

    return torch.from_numpy(_weights.class_balanced_weights(class_counts, beta))


@register_loss(
    "class_balanced",
    summary="Class-balanced CE (Cui et al. 2019): weights (1 - beta) / (1 - beta^n_k), sum = C.",
    params={"beta": (0.9999, (Real(0.0, 1.0, closed="left"),))},
    probabilistic=True,
    needs_class_counts=True,
)
def _build_class_balanced(*, num_classes: int, class_counts: list[float], beta: float) -> LossModule:
    from .cross_entropy import CrossEntropy

    return CrossEntropy(num_classes, weight=class_balanced_weights(class_counts, beta))
