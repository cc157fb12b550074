"""Brier score as a loss: squared error between probabilities and the one-hot target.

    loss = mean_i sum_k (p_{i,k} - onehot_{i,k})^2,   p = softmax(z);  range [0, 2]

Differs from ``mse``, which regresses the logits themselves.

Imports without torch (see ``lossbench.losses``): the functions import it when called, and ``BrierLoss`` is
defined on first access (module ``__getattr__``, PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import defined_on_first_access
from ._registry import register_loss

if TYPE_CHECKING:
    import torch

    from ._base import LossModule

__all__ = ["BrierLoss", "brier_loss"]  # noqa: F822 (module __getattr__)


def brier_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multiclass Brier score of ``softmax(logits)`` ``[N, C]`` vs target ``[N]``; returns a 0-dim tensor."""
    import torch.nn.functional as F

    p = F.softmax(logits, dim=1)
    onehot = F.one_hot(target, logits.shape[1]).to(p.dtype)
    return (p - onehot).pow(2).sum(dim=1).mean()


def _torch_classes() -> dict[str, type]:
    from ._base import LossModule, check_inputs

    class BrierLoss(LossModule):
        """Module form of :func:`brier_loss`."""

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            check_inputs(logits, target, self.num_classes)
            return brier_loss(logits, target)

    return {"BrierLoss": BrierLoss}


__getattr__ = defined_on_first_access(__name__, _torch_classes, "BrierLoss")


@register_loss(
    "brier", summary="Brier score: sum_k (p_k - onehot_k)^2, mean over N.", params={}, probabilistic=True
)
def _build_brier(*, num_classes: int, class_counts: list[float] | None) -> LossModule:
    from .brier import BrierLoss

    return BrierLoss(num_classes)
