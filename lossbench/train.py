"""The torch training loop: in-memory tensors on the device, manual batching, early stopping.

One host synchronisation per epoch (the epoch's summed loss and the validation score), none per step.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from lossbench.fitted import TrainResult


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error, never a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from lossbench.errors import ConfigError

        raise ConfigError("train.device", name, "CUDA is not available on this machine; use auto or cpu")
    return torch.device(name)


def use_threads(train_cfg: Mapping, device: torch.device) -> None:
    """torch's intra-op threads for a CPU fit: ``train.threads`` (``auto``: every core this process may use,
    as for a single run; a job of a sweep gets the number already resolved for its launcher's workers)."""
    if device.type != "cpu":
        return
    from lossbench.runtime import torch_threads

    threads = torch_threads(train_cfg.get("threads", "auto"))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def weight_penalty(net: nn.Module, regularization: Mapping) -> torch.Tensor | None:
    """Explicit penalty on weight matrices/kernels (not biases), canonical form strength/2*||w||^2 for L2."""
    name, strength = regularization["name"], float(regularization.get("strength", 0.0))
    if name not in ("l1", "l2", "elasticnet", "dropout") or strength == 0.0:
        return None
    weights = [p for p in net.parameters() if p.ndim > 1]
    # dropout's optional strength is an L2 penalty alongside it
    l1_ratio = {"l1": 1.0, "l2": 0.0, "dropout": 0.0}.get(name, float(regularization.get("l1_ratio", 0.5)))
    total = 0.0
    if l1_ratio > 0:
        total = total + strength * l1_ratio * sum(w.abs().sum() for w in weights)
    if l1_ratio < 1:
        total = total + strength * (1 - l1_ratio) / 2 * sum(w.pow(2).sum() for w in weights)
    return total


def _balanced_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    support = torch.bincount(target, minlength=num_classes)
    hits = torch.bincount(target[pred == target], minlength=num_classes)
    present = support > 0
    return (hits[present].float() / support[present].float()).mean()


@torch.no_grad()
def predict_logits(net: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    net.eval()
    return torch.cat([net(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])


def _optimizer(params, cfg: Mapping) -> torch.optim.Optimizer:
    name, lr = cfg["optimizer"], float(cfg["lr"])
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(cfg.get("momentum", 0.0)))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)  # penalties are explicit, never decoupled
    return torch.optim.Adam(params, lr=lr)


def fit_torch(
    net: nn.Module,
    loss_fn: nn.Module,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    train_cfg: Mapping,
    regularization: Mapping,
    num_classes: int,
    seed: int,
    device: torch.device,
) -> TrainResult:
    """Train ``net`` in place; on return it holds the weights of the best validation epoch."""
    start = time.perf_counter()
    use_threads(train_cfg, device)
    net.to(device)
    loss_fn.to(device)
    Xt = torch.as_tensor(X_train, device=device)
    yt = torch.as_tensor(y_train, device=device)
    Xv = torch.as_tensor(X_val, device=device)
    yv = torch.as_tensor(y_val, device=device)
    optimizer = _optimizer(net.parameters(), train_cfg)
    generator = torch.Generator().manual_seed(seed)
    epochs, batch_size = int(train_cfg["epochs"]), int(train_cfg["batch_size"])
    patience = train_cfg.get("patience")
    maximise = train_cfg.get("monitor", "val_loss") == "val_balanced_accuracy"
    on_epoch_start = getattr(loss_fn, "on_epoch_start", None)
    show_bar = sys.stderr.isatty()

    curves: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_balanced_accuracy": []}
    best_score, best_epoch, best_state = None, 0, None
    n = len(yt)
    epoch = 0
    for epoch in range(epochs):
        if on_epoch_start is not None:
            on_epoch_start(epoch, epochs)
        net.train()
        order = torch.randperm(n, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, n, batch_size):
            batch = order[i : i + batch_size]
            loss = loss_fn(net(Xt[batch]), yt[batch])
            penalty = weight_penalty(net, regularization)
            objective = loss if penalty is None else loss + penalty
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            total += loss.detach() * len(batch)

        logits_val = predict_logits(net, Xv)
        val_loss = loss_fn(logits_val, yv)
        val_bacc = _balanced_accuracy(logits_val.argmax(1), yv, num_classes)
        train_loss, val_loss, val_bacc = torch.stack([total / n, val_loss, val_bacc]).tolist()  # one sync
        if not (np.isfinite(train_loss) and np.isfinite(val_loss)):
            raise NonFiniteLossError(
                f"non-finite loss at epoch {epoch + 1}: train {train_loss}, val {val_loss} "
                f"(try a smaller train.lr or another loss setting)"
            )
        curves["train_loss"].append(train_loss)
        curves["val_loss"].append(val_loss)
        curves["val_balanced_accuracy"].append(val_bacc)

        score = val_bacc if maximise else val_loss
        if best_score is None or (score > best_score if maximise else score < best_score):
            best_score, best_epoch = score, epoch
            best_state = copy.deepcopy(net.state_dict())
        if show_bar:
            done = int(30 * (epoch + 1) / epochs)
            sys.stderr.write(
                f"\r  epoch {epoch + 1:>4}/{epochs} [{'#' * done}{'.' * (30 - done)}] "
                f"train {train_loss:.4f} val {val_loss:.4f} bacc {val_bacc:.3f}"
            )
            sys.stderr.flush()
        if patience is not None and epoch - best_epoch >= int(patience):
            break
    if show_bar:
        sys.stderr.write("\n")
    if best_state is not None:
        net.load_state_dict(best_state)
    return TrainResult(curves, epoch + 1, best_epoch + 1, str(device), time.perf_counter() - start)
