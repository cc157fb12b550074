"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"), multiclass softmax form.

    loss = mean_i  alpha_{y_i} * (1 - p_{i,y_i})^gamma * (-log p_{i,y_i})

``gamma = 0`` and ``alpha = None`` is cross-entropy exactly. ``alpha`` weights are *not* renormalised: the
mean is over N (unlike weighted_ce, which divides by the summed weights).

Imports without torch (see ``lossbench.losses``): ``focal_loss`` imports it when called, and ``FocalLoss`` is
defined on first access (module ``__getattr__``, PEP 562).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._lazy import defined_on_first_access
from ._registry import register_loss
from ._validation import ClassVector, NoneValue, Real

if TYPE_CHECKING:
    import torch

    from ._base import LossModule

__all__ = ["FocalLoss", "focal_loss"]  # noqa: F822 (module __getattr__)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax focal loss, mean over the batch.

    Args:
        logits: ``[N, C]`` float. target: ``[N]`` int64.
        gamma: focusing parameter >= 0 (default 2.0).
        alpha: ``[C]`` per-class weights or None.

    Returns:
        0-dim tensor. Finite with finite gradients for any finite logits, also for ``gamma < 1``.
    """
    import torch
    import torch.nn.functional as F

    from ._base import class_weight_like

    log_p = F.log_softmax(logits, dim=1)
    log_p_y = log_p.gather(1, target[:, None]).squeeze(1)
    loss = -log_p_y
    if gamma != 0:
        # (1 - p_y)^gamma = exp(gamma * log(1 - p_y)) with log(1 - p_y) = logsumexp_{k != y} log p_k.
        # Computing 1 - p_y directly cancels to 0 for confident rows, and d/dx x^gamma is infinite at 0 for
        # gamma < 1 (NaN gradients); the logsumexp form stays finite and exact.
        is_target = F.one_hot(target, logits.shape[1]).bool()
        log_one_minus_p = torch.logsumexp(log_p.masked_fill(is_target, float("-inf")), dim=1)
        loss = torch.exp(gamma * log_one_minus_p) * loss
    a = class_weight_like(alpha, logits)
    if a is not None:
        loss = a[target] * loss
    return loss.mean()


def _torch_classes() -> dict[str, type]:
    import torch

    from ._base import LossModule, check_inputs

    class FocalLoss(LossModule):
        """Module form of :func:`focal_loss`; ``alpha`` is a buffer (None when unweighted)."""

        alpha: torch.Tensor | None

        def __init__(
            self, num_classes: int, gamma: float = 2.0, alpha: Sequence[float] | None = None
        ) -> None:
            super().__init__(num_classes)
            self.gamma = float(gamma)
            self.register_buffer(
                "alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
            )

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            check_inputs(logits, target, self.num_classes)
            return focal_loss(logits, target, self.gamma, self.alpha)

        def extra_repr(self) -> str:
            return f"num_classes={self.num_classes}, gamma={self.gamma}, weighted={self.alpha is not None}"

    return {"FocalLoss": FocalLoss}


__getattr__ = defined_on_first_access(__name__, _torch_classes, "FocalLoss")


@register_loss(
    "focal",
    summary="Focal loss (Lin et al. 2017): -alpha_y (1 - p_y)^gamma log p_y, mean over N.",
    params={
        "gamma": (2.0, (Real(0.0, None, closed="left"),)),
        "alpha": (None, (NoneValue(), ClassVector(0.0, closed="left", what="non-negative"))),
    },
    probabilistic=True,
)
def _build_focal(
    *, num_classes: int, class_counts: list[float] | None, gamma: float, alpha: list[float] | None
) -> LossModule:
    from .focal import FocalLoss

    return FocalLoss(num_classes, gamma=gamma, alpha=alpha)
