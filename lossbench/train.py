"""The torch training loop: in-memory tensors on the device, manual batching, early stopping.

One host synchronisation per epoch (the epoch's summed loss and the validation score), none per step.

Progress (:class:`EpochProgress`, one call per epoch, nothing per batch): on a terminal (stderr a TTY, in the
process the user started, not a pool worker) a tqdm bar per fit, epoch/total and the val balanced accuracy;
anywhere else (CI, a log file, a pool worker) a log line every ``LOSSBENCH_PROGRESS_SECONDS`` seconds
(default 10; 0 = every epoch), ``epoch 30/200: train_loss 0.4100 val_balanced_accuracy 0.9300``, and one at
the last epoch when any was written. Never both.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from lossbench.fitted import TrainResult

log = logging.getLogger("lossbench")

PROGRESS_ENV = "LOSSBENCH_PROGRESS_SECONDS"  # seconds between epoch log lines when no bar is shown
_DEFAULT_PROGRESS_SECONDS = 10.0


class Schedule:
    """How long a torch fit trains and when early stopping may stop it, from ``train.*`` and the data size.

    - planned epochs ``E = max(train.epochs, ceil(train.min_steps / steps_per_epoch))``: a step budget that
      scales with the data (a 60-row table at batch 64 takes 1 optimiser step an epoch; 100 epochs would be
      100 steps);
    - early stopping (``train.patience`` epochs without improvement of ``train.monitor``) may stop only after
      ``ceil(train.warmup * E)`` epochs, so a run cannot end on its initial plateau;
    - a loss with a second phase (LDAM's deferred re-weighting, ``loss.drw_start``: its ``drw_epoch(E)``) has
      the best epoch chosen from that phase on, and early stopping waits until the phase has run
      ``train.patience`` epochs: DRW always happens within the epochs run.
    """

    def __init__(self, train_cfg: Mapping, n_train: int, loss_fn=None) -> None:
        batch = int(train_cfg["batch_size"])
        steps_per_epoch = max(1, -(-int(n_train) // batch))
        min_steps = int(train_cfg.get("min_steps") or 0)
        self.epochs = max(int(train_cfg["epochs"]), -(-min_steps // steps_per_epoch))
        patience = train_cfg.get("patience")
        self.patience = None if patience is None else int(patience)
        self.warmup = math.ceil(float(train_cfg.get("warmup") or 0.0) * self.epochs)
        phase = getattr(loss_fn, "drw_epoch", None)
        self.phase = phase(self.epochs) if callable(phase) else None

    def restarts_selection(self, epoch: int) -> bool:
        """True at the (0-based) epoch that begins the loss's second phase: the best so far is reset."""
        return self.phase is not None and epoch == self.phase and epoch > 0

    def should_stop(self, epoch: int, best_epoch: int) -> bool:
        """After epoch ``epoch`` (0-based) with the best at ``best_epoch``: stop early?"""
        if self.patience is None or epoch + 1 < self.warmup:
            return False
        if self.phase is not None and epoch < self.phase + self.patience:
            return False
        return epoch - best_epoch >= self.patience


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def progress_seconds() -> float:
    """Seconds between epoch log lines: ``$LOSSBENCH_PROGRESS_SECONDS`` (default 10; 0 = every epoch)."""
    try:
        return max(0.0, float(os.environ.get(PROGRESS_ENV, _DEFAULT_PROGRESS_SECONDS)))
    except ValueError:
        return _DEFAULT_PROGRESS_SECONDS


def _on_terminal() -> bool:
    """A bar only for a person watching: stderr is a TTY and this is not a worker process of a pool (several
    workers' bars on one terminal overwrite each other; loky's workers are multiprocessing children)."""
    import multiprocessing

    try:
        return sys.stderr.isatty() and multiprocessing.parent_process() is None
    except (AttributeError, ValueError):  # stderr replaced or closed
        return False


class EpochProgress:
    """Per-epoch progress of one fit: a tqdm bar on a terminal, else periodic log lines (module docstring).
    ``update`` is called once per epoch with the epoch's numbers; ``close`` once at the end."""

    def __init__(self, epochs: int, what: str = "") -> None:
        self.epochs = epochs
        self.what = what  # e.g. "ensemble of 3 seeds, means"
        from lossbench.runtime import job_label

        prefix = " ".join(t for t in (job_label(), what) if t)
        self.prefix = f"{prefix}: " if prefix else ""
        self.bar = None
        self.every = progress_seconds()
        self.last = time.monotonic()
        self.logged = 0
        self.pending: tuple | None = None
        if _on_terminal():
            from tqdm import tqdm

            desc = prefix or "fit"
            self.bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False, file=sys.stderr, ncols=100)

    def update(self, epoch: int, train_loss: float, val_bacc: float) -> None:
        """Epoch ``epoch`` (0-based) is done."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"val_bacc {val_bacc:.3f}", refresh=False)
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self._line(epoch, train_loss, val_bacc)
            self.last = now
            self.pending = None
        else:
            self.pending = (epoch, train_loss, val_bacc)

    def _line(self, epoch: int, train_loss: float, val_bacc: float, note: str = "") -> None:
        self.logged += 1
        log.info(
            "%sepoch %d/%d: train_loss %.4f val_balanced_accuracy %.4f%s",
            self.prefix,
            epoch + 1,
            self.epochs,
            train_loss,
            val_bacc,
            note,
        )

    def close(self, best_epoch: int | None = None) -> None:
        """The fit ended: the bar goes; the last epoch gets its line when earlier ones were written."""
        if self.bar is not None:
            self.bar.close()
            return
        if self.pending is not None and self.logged:
            epoch = self.pending[0]
            note = ""
            if epoch + 1 < self.epochs and best_epoch is not None:
                note = f" (stopped early, best epoch {best_epoch + 1})"
            self._line(*self.pending, note=note)


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
    batch_size = int(train_cfg["batch_size"])
    schedule = Schedule(train_cfg, len(y_train), loss_fn)
    epochs = schedule.epochs
    maximise = train_cfg.get("monitor", "val_loss") == "val_balanced_accuracy"
    on_epoch_start = getattr(loss_fn, "on_epoch_start", None)
    progress = EpochProgress(epochs)

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
            progress.close()
            raise NonFiniteLossError(
                f"non-finite loss at epoch {epoch + 1}: train {train_loss}, val {val_loss} "
                f"(try a smaller train.lr or another loss setting)"
            )
        curves["train_loss"].append(train_loss)
        curves["val_loss"].append(val_loss)
        curves["val_balanced_accuracy"].append(val_bacc)

        score = val_bacc if maximise else val_loss
        if schedule.restarts_selection(epoch):
            best_score = None
        if best_score is None or (score > best_score if maximise else score < best_score):
            best_score, best_epoch = score, epoch
            best_state = copy.deepcopy(net.state_dict())
        progress.update(epoch, train_loss, val_bacc)
        if schedule.should_stop(epoch, best_epoch):
            break
    progress.close(best_epoch)
    if best_state is not None:
        net.load_state_dict(best_state)
    return TrainResult(curves, epoch + 1, best_epoch + 1, str(device), time.perf_counter() - start)
