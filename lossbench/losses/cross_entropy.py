"""Cross-entropy family: ``ce``, ``weighted_ce``, ``label_smoothing``.

    loss_i = (1 - eps) * w_{y_i} * (-log p_{i,y_i}) + (eps / C) * sum_k w_k * (-log p_{i,k})
    loss   = sum_i loss_i / sum_i w_{y_i}

With ``w = 1`` the denominator is N. With weights, the mean divides by the summed weight of the batch's
targets, not by N, exactly as ``torch.nn.CrossEntropyLoss(weight=w)`` with reduction 'mean'; so a batch made
only of one class gets the same loss whatever that class's weight, and weights act through the mix of classes.

Imports without torch (see ``lossbench.losses``): the functions import it when called, and ``CrossEntropy`` is
defined on first access (module ``__getattr__``, PEP 562).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import _weights
from ._lazy import defined_on_first_access
from ._registry import register_loss
from ._validation import ClassVector, Real, StrOptions

if TYPE_CHECKING:
    import torch

    from ._base import LossModule

__all__ = ["CrossEntropy", "balanced_class_weights", "cross_entropy"]  # noqa: F822 (module __getattr__)


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy with optional per-class ``weight`` [C] and label smoothing ``eps`` in [0, 1).

    Args:
        logits: ``[N, C]`` float. target: ``[N]`` int64 class indices.
        weight: ``[C]`` per-class weights or None; the mean divides by ``sum_i w_{y_i}`` (torch convention).
        label_smoothing: eps; the target distribution is ``(1 - eps) * onehot + eps / C``.

    Returns:
        0-dim tensor, equal to ``F.cross_entropy(logits, target, weight, label_smoothing=eps)``.
    """
    import torch
    import torch.nn.functional as F

    from ._base import class_weight_like

    log_p = F.log_softmax(logits, dim=1)
    nll = -log_p.gather(1, target[:, None]).squeeze(1)
    w = class_weight_like(weight, logits)
    w_y = torch.ones_like(nll) if w is None else w[target]
    per_sample = w_y * nll
    if label_smoothing > 0:
        smooth = -(log_p if w is None else log_p * w).mean(dim=1)
        per_sample = (1 - label_smoothing) * per_sample + label_smoothing * smooth
    return per_sample.sum() / w_y.sum()


def balanced_class_weights(class_counts: Sequence[float]) -> torch.Tensor:
    """``w_k = n / (C * n_k)`` (scikit-learn's ``class_weight='balanced'``), float32 [C]."""
    import torch

    return torch.from_numpy(_weights.balanced_class_weights(class_counts))


def _torch_classes() -> dict[str, type]:
    import torch

    from ._base import LossModule, check_inputs

    class CrossEntropy(LossModule):
        """Module form of :func:`cross_entropy`; ``weight`` is a buffer (``None`` for unweighted)."""

        weight: torch.Tensor | None

        def __init__(
            self,
            num_classes: int,
            weight: Sequence[float] | torch.Tensor | None = None,
            label_smoothing: float = 0.0,
        ) -> None:
            super().__init__(num_classes)
            w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32).clone()
            self.register_buffer("weight", w)
            self.label_smoothing = float(label_smoothing)

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            check_inputs(logits, target, self.num_classes)
            return cross_entropy(logits, target, self.weight, self.label_smoothing)

        def extra_repr(self) -> str:
            return f"num_classes={self.num_classes}, weighted={self.weight is not None}, " + (
                f"label_smoothing={self.label_smoothing}"
            )

    return {"CrossEntropy": CrossEntropy}


__getattr__ = defined_on_first_access(__name__, _torch_classes, "CrossEntropy")


@register_loss("ce", summary="Cross-entropy: -log p_y.", params={}, probabilistic=True)
def _build_ce(*, num_classes: int, class_counts: list[float] | None) -> LossModule:
    from .cross_entropy import CrossEntropy

    return CrossEntropy(num_classes)


@register_loss(
    "weighted_ce",
    summary="Class-weighted CE: sum_i w_{y_i} (-log p_{y_i}) / sum_i w_{y_i} (torch weight= convention).",
    params={
        "weights": (
            "balanced",
            (StrOptions({"balanced"}), ClassVector(0.0, closed="neither", what="positive")),
        ),
    },
    probabilistic=True,
    needs_class_counts=lambda params: params["weights"] == "balanced",
)
def _build_weighted_ce(
    *, num_classes: int, class_counts: list[float] | None, weights: str | list[float]
) -> LossModule:
    import torch

    from .cross_entropy import CrossEntropy

    return CrossEntropy(
        num_classes, weight=torch.from_numpy(_weights.weighted_ce_weights(class_counts, weights))
    )


@register_loss(
    "label_smoothing",
    summary="Cross-entropy against (1 - eps) onehot + eps / C (Szegedy et al. 2016).",
    params={"smoothing": (0.1, (Real(0.0, 1.0, closed="left"),))},
    probabilistic=True,
)
def _build_label_smoothing(
    *, num_classes: int, class_counts: list[float] | None, smoothing: float
) -> LossModule:
    from .cross_entropy import CrossEntropy

    return CrossEntropy(num_classes, label_smoothing=smoothing)
