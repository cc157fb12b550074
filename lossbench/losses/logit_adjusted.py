"""Logit-adjusted loss (Menon et al. 2021, "Long-tail learning via logit adjustment").

    loss = CE(z + tau * log pi, y),   pi_k = n_k / sum_j n_j

At test time predict ``argmax z`` (the adjustment lives only in the loss). For a model that cannot take the
adjustment in its loss, :func:`posthoc_logit_adjust` gives the post-hoc variant: ``argmax(z - tau log pi)``.
``tau = 0`` is plain CE.

Imports without torch (see ``lossbench.losses``): ``logit_adjusted_loss`` imports it when called,
``posthoc_logit_adjust`` is NumPy only, and ``LogitAdjustedLoss`` is defined on first access (module
``__getattr__``, PEP 562).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._lazy import defined_on_first_access
from ._registry import register_loss
from ._validation import Real, check_class_counts, check_param
from .cross_entropy import cross_entropy

if TYPE_CHECKING:
    import torch

    from ._base import LossModule

__all__ = [
    "LogitAdjustedLoss",  # noqa: F822 (module __getattr__)
    "logit_adjusted_loss",
    "posthoc_logit_adjust",
]


def _log_prior(class_counts: Sequence[float]) -> np.ndarray:
    counts = np.asarray(class_counts, dtype=np.float64)
    return np.log(counts / counts.sum())


def logit_adjusted_loss(
    logits: torch.Tensor, target: torch.Tensor, log_prior: torch.Tensor, tau: float = 1.0
) -> torch.Tensor:
    """``CE(logits + tau * log_prior)``; ``log_prior`` is ``[C]`` log class frequencies. Returns 0-dim."""
    return cross_entropy(logits + tau * log_prior.to(device=logits.device, dtype=logits.dtype), target)


def _torch_classes() -> dict[str, type]:
    import torch

    from ._base import LossModule, check_inputs

    class LogitAdjustedLoss(LossModule):
        """Module form of :func:`logit_adjusted_loss`; ``log_prior`` (``log pi``) is a buffer."""

        log_prior: torch.Tensor

        def __init__(self, num_classes: int, class_counts: Sequence[float], tau: float = 1.0) -> None:
            super().__init__(num_classes)
            self.tau = float(tau)
            self.register_buffer("log_prior", torch.as_tensor(_log_prior(class_counts), dtype=torch.float32))

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            check_inputs(logits, target, self.num_classes)
            return logit_adjusted_loss(logits, target, self.log_prior, self.tau)

        def extra_repr(self) -> str:
            return f"num_classes={self.num_classes}, tau={self.tau}"

    return {"LogitAdjustedLoss": LogitAdjustedLoss}


__getattr__ = defined_on_first_access(__name__, _torch_classes, "LogitAdjustedLoss")


def posthoc_logit_adjust(scores: np.ndarray, class_counts: Sequence[float], tau: float = 1.0) -> np.ndarray:
    """Post-hoc logit adjustment (Menon et al. 2021): ``scores - tau * log pi``, pi_k = n_k / sum n.

    Args:
        scores: ``[..., C]`` decision scores or logits of a model trained without adjustment.
        class_counts: training count of each class, C positive numbers.
        tau: adjustment strength >= 0 (default 1.0).

    Returns:
        float64 array of the shape of ``scores``; ``argmax`` over the last axis is the balanced prediction.

    Examples
    --------
    >>> posthoc_logit_adjust(np.array([[0.0, 0.0]]), [3, 1])  # log pi = [log .75, log .25]
    array([[0.28768207, 1.38629436]])
    """
    tau = check_param("posthoc_logit_adjust", "tau", tau, (Real(0.0, None, closed="left"),), None)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 0:
        raise ValueError("scores must have a class axis last, shape [..., C]; got a scalar.")
    counts = check_class_counts(class_counts, scores.shape[-1], caller="posthoc_logit_adjust", positive=True)
    return scores - tau * _log_prior(counts)


@register_loss(
    "logit_adjusted",
    summary="Logit-adjusted CE (Menon et al. 2021): CE(z + tau log pi).",
    params={"tau": (1.0, (Real(0.0, None, closed="left"),))},
    probabilistic=True,
    needs_class_counts=True,
)
def _build_logit_adjusted(*, num_classes: int, class_counts: list[float], tau: float) -> LossModule:
    from .logit_adjusted import LogitAdjustedLoss

    return LogitAdjustedLoss(num_classes, class_counts, tau=tau)
