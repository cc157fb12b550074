"""Losses robust to label noise, on probabilities p = softmax(z).

    mae:  loss_i = sum_k |p_{i,k} - onehot_{i,k}| = 2 (1 - p_{i,y})            range [0, 2]
          (Ghosh et al. 2017: bounded, hence robust to noisy labels; slow to fit on clean data)
    gce:  loss_i = (1 - p_{i,y}^q) / q,  q in (0, 1]                            range [0, 1/q]
          (Zhang & Sabuncu 2018, "Generalized Cross Entropy Loss for Training Deep Neural Networks with Noisy
          Labels"): q -> 0 gives cross-entropy, q = 1 gives 1 - p_y = mae / 2; their default is q = 0.7.

Both are means over N. p_y^q is computed as exp(q log p_y) from ``log_softmax`` (stable for large logits).

Imports without torch (see ``lossbench.losses``): the functions import it when called, and the module classes
are defined on first access (module ``__getattr__``, PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import defined_on_first_access
from ._registry import register_loss
from ._validation import Real

if TYPE_CHECKING:
    import torch

    from ._base import LossModule

__all__ = ["GeneralizedCrossEntropy", "MAELoss", "gce_loss", "mae_loss"]  # noqa: F822 (module __getattr__)


def _log_p_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)


def mae_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sum_k |softmax(z)_k - onehot_k|`` = 2 (1 - p_y), mean over N; logits ``[N, C]``, target ``[N]``."""
    return (2.0 * (1.0 - _log_p_target(logits, target).exp())).mean()


def gce_loss(logits: torch.Tensor, target: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Generalized cross-entropy ``(1 - p_y^q) / q``, mean over N; ``0 < q <= 1``."""
    return ((1.0 - (q * _log_p_target(logits, target)).exp()) / q).mean()


def _torch_classes() -> dict[str, type]:
    from ._base import LossModule, check_inputs

    class MAELoss(LossModule):
        """Module form of :func:`mae_loss`."""

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            check_inputs(logits, target, self.num_classes)
            return mae_loss(logits, target)

    class GeneralizedCrossEntropy(LossModule):
        """Module form of :func:`gce_loss`."""

        def __init__(self, num_classes: int, q: float = 0.7) -> None:
            super().__init__(num_classes)
            self.q = float(q)

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            check_inputs(logits, target, self.num_classes)
            return gce_loss(logits, target, self.q)

        def extra_repr(self) -> str:
            return f"num_classes={self.num_classes}, q={self.q}"

    return {"MAELoss": MAELoss, "GeneralizedCrossEntropy": GeneralizedCrossEntropy}


__getattr__ = defined_on_first_access(__name__, _torch_classes, "MAELoss", "GeneralizedCrossEntropy")


@register_loss(
    "mae",
    summary="MAE on probabilities (Ghosh et al. 2017): sum_k |p_k - onehot_k| = 2 (1 - p_y), mean over N.",
    params={},
    probabilistic=True,
)
def _build_mae(*, num_classes: int, class_counts: list[float] | None) -> LossModule:
    from .robust import MAELoss

    return MAELoss(num_classes)


@register_loss(
    "gce",
    summary="Generalized cross-entropy (Zhang & Sabuncu 2018): (1 - p_y^q) / q; q -> 0: CE, q = 1: MAE / 2.",
    params={"q": (0.7, (Real(0.0, 1.0, closed="right"),))},
    probabilistic=True,
)
def _build_gce(*, num_classes: int, class_counts: list[float] | None, q: float) -> LossModule:
    from .robust import GeneralizedCrossEntropy

    return GeneralizedCrossEntropy(num_classes, q=q)
