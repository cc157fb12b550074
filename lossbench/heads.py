"""Output layers of the torch models. Imports torch: only the torch model builders import it.

``CosineLinear`` gives normalised logits, z_k = cos(x, w_k) = x·w_k / (|x| |w_k|) in [-1, 1], as LDAM is
published (Cao et al. 2019 train it with such a last layer and scale s = 30: CE(s (z - Delta_y e_y))). A loss
asks for it through its registration (``LossSpec.head``, LDAM's ``loss.logits``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CosineLinear(nn.Module):
    """``cos(x, w_k)`` for each class k: a bias-free linear layer on unit-norm inputs and weights."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def output_layer(in_features: int, num_classes: int, head: str) -> nn.Module:
    """The last layer a loss asks for: ``linear`` (nn.Linear) or ``cosine`` (:class:`CosineLinear`)."""
    return CosineLinear(in_features, num_classes) if head == "cosine" else nn.Linear(in_features, num_classes)
