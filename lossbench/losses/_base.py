"""Base class shared by every loss module."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LossModule", "check_inputs", "class_weight_like"]


def check_inputs(logits: torch.Tensor, target: torch.Tensor, num_classes: int | None = None) -> None:
    """Shape checks only (no device sync): logits ``[N, C]`` float, target ``[N]`` integer."""
    if logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError(
            f"logits must be a float tensor of shape [N, C]; got {logits.dtype} {tuple(logits.shape)}."
        )
    if target.ndim != 1 or target.shape[0] != logits.shape[0] or target.is_floating_point():
        raise ValueError(
            f"target must be an integer tensor of shape [N] = [{logits.shape[0]}]; "
            f"got {target.dtype} {tuple(target.shape)}."
        )
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"logits have {logits.shape[1]} classes but the loss was built for {num_classes}.")


def class_weight_like(weight: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    """Per-class weights on the logits' device and dtype (the training loop may not move the loss module)."""
    return None if weight is None else weight.to(device=logits.device, dtype=logits.dtype)


class LossModule(nn.Module):
    """A loss: ``forward(logits [N, C] float, target [N] int64) -> 0-dim mean loss``.

    Per-class tensors are buffers, so ``.to(device)`` moves them; ``forward`` also moves them on the fly.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook the training loop calls at the start of each epoch (0-based ``epoch``). No-op by default."""
