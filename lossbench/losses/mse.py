"""Square loss on logits against one-hot targets (Hui & Belkin 2021, "Evaluation of Neural Architectures
Trained with Square Loss vs Cross-Entropy in Classification Tasks").

    loss_i = (1 / C) * [ k (z_y - M)^2 + sum_{k' != y} z_{k'}^2 ],   mean over N

``rescale_k = rescale_m = 1`` is ``F.mse_loss(z, onehot)``; the paper uses larger k, M for many classes.
Not probabilistic: the logits regress the one-hot code, softmax(z) is not the model's probability.

Imports without torch (see ``lossbench.losses``): the functions import it when called, and ``SquareLoss`` is
defined on first access (module ``__getattr__``, PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import defined_on_first_access
from ._registry import register_loss
from ._validation import Real

if TYPE_CHECKING:
    import torch

    from ._base import LossModule

__all__ = ["SquareLoss", "square_loss"]  # noqa: F822 (module __getattr__)


def square_loss(
    logits: torch.Tensor, target: torch.Tensor, rescale_k: float = 1.0, rescale_m: float = 1.0
) -> torch.Tensor:
    """Rescaled square loss of logits ``[N, C]`` vs one-hot(target ``[N]``); returns a 0-dim tensor."""
    import torch.nn.functional as F

    onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
    sq = (logits - rescale_m * onehot).pow(2)
    sq = sq * (1 + (rescale_k - 1) * onehot)  # weight k on the target column only
    return sq.mean()


def _torch_classes() -> dict[str, type]:
    from ._base import LossModule, check_inputs

    class SquareLoss(LossModule):
        """Module form of :func:`square_loss`."""

        def __init__(self, num_classes: int, rescale_k: float = 1.0, rescale_m: float = 1.0) -> None:
            super().__init__(num_classes)
            self.rescale_k, self.rescale_m = float(rescale_k), float(rescale_m)

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            check_inputs(logits, target, self.num_classes)
            return square_loss(logits, target, self.rescale_k, self.rescale_m)

        def extra_repr(self) -> str:
            return f"num_classes={self.num_classes}, rescale_k={self.rescale_k}, rescale_m={self.rescale_m}"

    return {"SquareLoss": SquareLoss}


__getattr__ = defined_on_first_access(__name__, _torch_classes, "SquareLoss")


@register_loss(
    "mse",
    summary="Square loss on logits vs one-hot (Hui & Belkin 2021): (1/C)[k (z_y - M)^2 + sum_{j!=y} z_j^2].",
    params={
        "rescale_k": (1.0, (Real(0.0, None, closed="neither"),)),
        "rescale_m": (1.0, (Real(0.0, None, closed="neither"),)),
    },
    probabilistic=False,
)
def _build_mse(
    *, num_classes: int, class_counts: list[float] | None, rescale_k: float, rescale_m: float
) -> LossModule:
    from .mse import SquareLoss

    return SquareLoss(num_classes, rescale_k=rescale_k, rescale_m=rescale_m)
