"""Multiclass hinge losses: ``hinge`` and ``squared_hinge`` (power q = 1 or 2).

    weston_watkins:  loss_i = sum_{k != y} max(0, m - z_y + z_k)^q / C   (= nn.MultiMarginLoss(p=q, margin=m))
    crammer_singer:  loss_i = max(0, m - z_y + max_{k != y} z_k)^q       (q = 1, m = 1: sklearn hinge_loss)
    one_vs_rest:     loss_i = sum_k max(0, m - s_k z_k)^q, s_y = +1, s_k = -1 otherwise
                     (the sum of C binary hinges: what LinearSVC / SGDClassifier train for multiclass)

Mean over N. Not probabilistic: softmax(z) is not a calibrated estimate under these losses.

Imports without torch (see ``lossbench.losses``): the functions import it when called, and
``MulticlassHingeLoss`` is defined on first access (module ``__getattr__``, PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import defined_on_first_access
from ._registry import register_loss
from ._validation import Real, StrOptions

if TYPE_CHECKING:
    import torch

    from ._base import LossModule

__all__ = ["MulticlassHingeLoss", "multiclass_hinge_loss"]  # noqa: F822 (module __getattr__)

VARIANTS = ("weston_watkins", "crammer_singer", "one_vs_rest")


def multiclass_hinge_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    variant: str = "weston_watkins",
    margin: float = 1.0,
    power: int = 1,
) -> torch.Tensor:
    """Weston-Watkins, Crammer-Singer or one-vs-rest hinge on logits ``[N, C]``, targets ``[N]``, power 1|2.

    Returns a 0-dim tensor (mean over N).
    """
    import torch

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}.")
    z_y = logits.gather(1, target[:, None])
    is_target = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, target[:, None], True)
    if variant == "weston_watkins":
        terms = (margin - z_y + logits).clamp(min=0).masked_fill(is_target, 0.0)
        per_sample = terms.pow(power).sum(dim=1) / logits.shape[1]
    elif variant == "one_vs_rest":
        signs = is_target.to(logits.dtype) * 2 - 1
        per_sample = (margin - signs * logits).clamp(min=0).pow(power).sum(dim=1)
    else:
        runner_up = logits.masked_fill(is_target, float("-inf")).amax(dim=1, keepdim=True)
        per_sample = (margin - z_y + runner_up).clamp(min=0).pow(power).squeeze(1)
    return per_sample.mean()


def _torch_classes() -> dict[str, type]:
    from ._base import LossModule, check_inputs

    class MulticlassHingeLoss(LossModule):
        """Module form of :func:`multiclass_hinge_loss`."""

        def __init__(
            self, num_classes: int, variant: str = "weston_watkins", margin: float = 1.0, power: int = 1
        ):
            super().__init__(num_classes)
            self.variant, self.margin, self.power = variant, float(margin), int(power)

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            check_inputs(logits, target, self.num_classes)
            return multiclass_hinge_loss(logits, target, self.variant, self.margin, self.power)

        def extra_repr(self) -> str:
            return f"num_classes={self.num_classes}, variant={self.variant!r}, " + (
                f"margin={self.margin}, power={self.power}"
            )

    return {"MulticlassHingeLoss": MulticlassHingeLoss}


__getattr__ = defined_on_first_access(__name__, _torch_classes, "MulticlassHingeLoss")


_PARAMS = {
    "variant": ("weston_watkins", (StrOptions(set(VARIANTS)),)),
    "margin": (1.0, (Real(0.0, None, closed="neither"),)),
}


@register_loss(
    "hinge",
    summary="Multiclass hinge: Weston-Watkins (MultiMarginLoss) or Crammer-Singer (sklearn hinge_loss).",
    params=_PARAMS,
    probabilistic=False,
)
def _build_hinge(
    *, num_classes: int, class_counts: list[float] | None, variant: str, margin: float
) -> LossModule:
    from .hinge import MulticlassHingeLoss

    return MulticlassHingeLoss(num_classes, variant=variant, margin=margin, power=1)


@register_loss(
    "squared_hinge",
    summary="Multiclass squared hinge: each hinge term squared (WW = MultiMarginLoss(p=2)).",
    params=_PARAMS,
    probabilistic=False,
)
def _build_squared_hinge(
    *, num_classes: int, class_counts: list[float] | None, variant: str, margin: float
) -> LossModule:
    from .hinge import MulticlassHingeLoss

    return MulticlassHingeLoss(num_classes, variant=variant, margin=margin, power=2)
