"""What a fit reports, shared by the models, the torch loop and the vectorised seeds (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainResult:
    """What a model's ``fit`` reports: per-epoch curves (torch), epochs run, best epoch, device, seconds."""

    curves: dict[str, list[float]] = field(default_factory=dict)
    epochs_run: int = 0
    best_epoch: int = 0
    device: str = "cpu"
    seconds: float = 0.0
