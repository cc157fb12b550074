"""LDAM loss with optional deferred re-weighting (Cao et al. 2019, "Learning Imbalanced Datasets with
Label-Distribution-Aware Margin Loss").

    Delta_k = max_margin * n_k^(-1/4) / max_j n_j^(-1/4)          (rarest class gets max_margin)
    loss    = CE(scale * (z - Delta_y e_y), y [, weight=w_DRW])

Probabilities: the loss trains softmax(scale (z - Delta_y e_y)); the margin is a training-time offset only, so
the model's probabilities are softmax(scale z) (``LOSSES["ldam"].probability``), not softmax(z).

``scale`` = 30 follows the paper, whose logits are cosines in [-1, 1] (normalised features and weights): with
``logits = "cosine"`` (the default) lossbench's torch models get that last layer (``lossbench.heads``);
``logits = "linear"`` keeps a plain linear layer, for which ``scale = 1`` is the natural choice.

Deferred re-weighting (DRW): with ``drw_start = f``,
from epoch ``floor(f * num_epochs)`` (0-based) on, the CE uses class-balanced weights with beta = 0.9999
(Cao's code; same normalisation as weighted_ce). The training loop switches it via ``on_epoch_start``;
``drw_start = 1.0`` therefore never re-weights within training, like ``None``.

Imports without torch (see ``lossbench.losses``): the functions import it when called, and ``LDAMLoss`` is
defined on first access (module ``__getattr__``, PEP 562).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._lazy import defined_on_first_access
from ._registry import register_loss, softmax
from ._validation import NoneValue, Real, StrOptions
from .class_balanced import class_balanced_weights
from .cross_entropy import cross_entropy

if TYPE_CHECKING:
    import torch

    from ._base import LossModule

__all__ = ["DRW_BETA", "LDAMLoss", "ldam_loss", "ldam_margins"]  # noqa: F822 (module __getattr__)

DRW_BETA = 0.9999


def ldam_margins(class_counts: Sequence[float], max_margin: float = 0.5) -> torch.Tensor:
    """``Delta_k ∝ n_k^(-1/4)`` with ``max Delta = max_margin``, float32 [C]."""
    import torch

    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    m = counts.pow(-0.25)
    return (m * (max_margin / m.max())).float()


def ldam_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    margins: torch.Tensor,
    scale: float = 30.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``CE(scale * (logits - margins[y] e_y), y, weight)``; margins ``[C]``, weight ``[C]`` or None.

    With zero margins and ``scale = 1`` this is cross-entropy. Returns a 0-dim tensor.
    """
    m = margins.to(device=logits.device, dtype=logits.dtype)[target]
    shifted = logits.scatter_add(1, target[:, None], -m[:, None])
    return cross_entropy(scale * shifted, target, weight)


def _torch_classes() -> dict[str, type]:
    from ._base import LossModule, check_inputs

    class LDAMLoss(LossModule):
        """Module form of :func:`ldam_loss` with the DRW schedule; ``margins``, ``drw_weights`` are buffers.

        ``drw_active`` tells whether the class-balanced weights are on (set by :meth:`on_epoch_start`).
        """

        margins: torch.Tensor
        drw_weights: torch.Tensor | None

        def __init__(
            self,
            num_classes: int,
            class_counts: Sequence[float],
            max_margin: float = 0.5,
            scale: float = 30.0,
            drw_start: float | None = None,
        ) -> None:
            super().__init__(num_classes)
            self.max_margin, self.scale, self.drw_start = float(max_margin), float(scale), drw_start
            self.register_buffer("margins", ldam_margins(class_counts, max_margin))
            drw = None if drw_start is None else class_balanced_weights(class_counts, DRW_BETA)
            self.register_buffer("drw_weights", drw)
            self.drw_active = False

        def drw_epoch(self, num_epochs: int) -> int | None:
            """First (0-based) epoch with re-weighting on, or None without DRW."""
            if self.drw_start is None:
                return None
            # Tolerance: 0.29 * 100 is 28.999999999999996 in floating point and must give 29.
            return math.floor(self.drw_start * num_epochs + 1e-9)

        def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
            """Switch the DRW weights on from epoch ``floor(drw_start * num_epochs)``; off before it."""
            if not isinstance(num_epochs, numbers.Integral) or num_epochs < 1:
                raise ValueError(f"num_epochs must be an int >= 1; got {num_epochs!r}.")
            if not isinstance(epoch, numbers.Integral) or not 0 <= epoch < num_epochs:
                raise ValueError(
                    f"epoch must be an int in [0, num_epochs={num_epochs}) (0-based); got {epoch!r}."
                )
            start = self.drw_epoch(num_epochs)
            self.drw_active = start is not None and epoch >= start

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            check_inputs(logits, target, self.num_classes)
            weight = self.drw_weights if self.drw_active else None
            return ldam_loss(logits, target, self.margins, self.scale, weight)

        def extra_repr(self) -> str:
            return (
                f"num_classes={self.num_classes}, max_margin={self.max_margin}, scale={self.scale}, "
                f"drw_start={self.drw_start}, drw_active={self.drw_active}"
            )

    return {"LDAMLoss": LDAMLoss}


__getattr__ = defined_on_first_access(__name__, _torch_classes, "LDAMLoss")


@register_loss(
    "ldam",
    summary="LDAM (Cao et al. 2019): CE(s (z - Delta_y e_y)), Delta_k ∝ n_k^-1/4; optional DRW.",
    params={
        "max_margin": (0.5, (Real(0.0, None, closed="neither"),)),
        "scale": (30.0, (Real(0.0, None, closed="neither"),)),
        "drw_start": (None, (NoneValue(), Real(0.0, 1.0, closed="right"))),
        "logits": ("cosine", (StrOptions({"cosine", "linear"}),)),
    },
    probabilistic=True,
    needs_class_counts=True,
    to_proba=lambda z, params: softmax(params["scale"] * z),
    head=lambda params: params["logits"],
)
def _build_ldam(
    *,
    num_classes: int,
    class_counts: list[float],
    max_margin: float,
    scale: float,
    drw_start: float | None,
    logits: str,
) -> LossModule:
    from .ldam import LDAMLoss

    return LDAMLoss(num_classes, class_counts, max_margin=max_margin, scale=scale, drw_start=drw_start)
