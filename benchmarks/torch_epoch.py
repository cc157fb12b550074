"""Epoch time of lossbench's torch training loop against a plain DataLoader loop, on Fashion-MNIST.

Target: lossbench's epoch >= 5x faster than the DataLoader loop on a GPU (on a CPU the ratio is reported).

Both loops train the same thing in this process: the arrays ``lossbench.pipeline.prepare`` makes from
``data=fashion_mnist`` (the training split at ``imbalance.ratio=1``, the val split), the net
``lossbench.models.build_model`` builds for the model (same seed, so the same initial weights), its loss
(``loss=ce``), Adam at ``train.lr``, the same batch size, the same number of epochs, no early stopping
(``train.patience=null``) and no penalty (``regularization=none``). Each epoch is one pass over the training
split plus one evaluation of the val split (its loss and balanced accuracy), as lossbench does.

- lossbench: ``TorchModel.fit`` -> ``lossbench.train.fit_torch`` (tensors on the device, batches by index).
  Epoch times come from timestamps taken when ``fit_torch`` calls the loss's ``on_epoch_start`` hook.
- baseline: ``DataLoader(TensorDataset(X, y), batch_size, shuffle=True)`` over CPU tensors, each batch moved
  to the device, the running loss read with ``loss.item()`` each step, then the val split evaluated.
- also shown: lossbench's loop with the default ``regularization=l2`` (an explicit penalty every step).

Reported: the median epoch time after the first (warm-up) epoch; ratio = baseline / lossbench.

    python benchmarks/torch_epoch.py                 # all 42,000 training images, torch_mlp, 4 epochs
    python benchmarks/torch_epoch.py --quick         # a 5,000-image subsample, 3 epochs (under a minute)
    python benchmarks/torch_epoch.py --device cuda --model torch_cnn --batch-size 256
    python benchmarks/torch_epoch.py --threads 1     # on a busy CPU: two torch threads contend badly
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

from _common import machine_line, table, verdict

TARGET = 5.0


def compose_prepared(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from lossbench.config import config_dir
    from lossbench.pipeline import prepare

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return prepare(cfg)


def build(p):
    """The model lossbench builds for this prepared config (as ``pipeline.execute`` does)."""
    from lossbench.models import Context, build_model

    c = p.cfg
    ctx = Context(
        num_classes=p.dataset.num_classes,
        feature_shape=p.dataset.feature_shape,
        class_counts=tuple(p.class_counts["fit"]),
        seed=int(c["seed"]),
        loss=c["loss"],
        regularization=c["regularization"],
        train=c["train"],
    )
    return build_model(c["model"], ctx)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lossbench_epochs(p) -> list[float]:
    """Per-epoch seconds of lossbench's own loop: stamps at each epoch start (fit_torch calls the loss's
    ``on_epoch_start`` hook there; the loss's own hook still runs) and at the end of fit."""
    model = build(p)
    hook = getattr(model.loss_fn, "on_epoch_start", None)
    stamps: list[float] = []

    def stamp(epoch: int, epochs: int) -> None:
        _sync(model.device)
        stamps.append(time.perf_counter())
        if hook is not None:
            hook(epoch, epochs)

    model.loss_fn.on_epoch_start = stamp
    model.fit(p.X_fit, p.y_fit, p.X_val, p.y_val)
    _sync(model.device)
    stamps.append(time.perf_counter())
    return [b - a for a, b in itertools.pairwise(stamps)]


def dataloader_epochs(p) -> list[float]:
    """Per-epoch seconds of the plain loop: DataLoader(TensorDataset), shuffled; same net, loss, optimizer."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    model = build(p)  # same seed: the same initial weights as lossbench's net
    net, loss_fn, device = model.net, model.loss_fn, model.device
    train = p.cfg["train"]
    if train["optimizer"] != "adam":
        raise SystemExit("benchmark: the baseline loop uses Adam; keep train.optimizer=adam")
    net.to(device)
    loss_fn.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=float(train["lr"]))
    loader = DataLoader(
        TensorDataset(torch.as_tensor(p.X_fit), torch.as_tensor(p.y_fit)),
        batch_size=int(train["batch_size"]),
        shuffle=True,
        generator=torch.Generator().manual_seed(int(p.cfg["seed"])),
    )
    X_val = torch.as_tensor(p.X_val).to(device)
    y_val = torch.as_tensor(p.y_val).to(device)
    C = p.dataset.num_classes
    times, curves = [], []
    for _ in range(int(train["epochs"])):
        _sync(device)
        start = time.perf_counter()
        net.train()
        running = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = loss_fn(net(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item() * len(yb)
        net.eval()
        with torch.no_grad():
            logits = torch.cat([net(X_val[i : i + 4096]) for i in range(0, len(X_val), 4096)])
            val_loss = loss_fn(logits, y_val).item()
            pred = logits.argmax(1)
            support = torch.bincount(y_val, minlength=C)
            hits = torch.bincount(y_val[pred == y_val], minlength=C)
            val_bacc = (hits[support > 0].float() / support[support > 0].float()).mean().item()
        curves.append((running / len(p.y_fit), val_loss, val_bacc))  # what a loop keeps every epoch
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000-image subsample, 3 epochs")
    parser.add_argument("--device", default="auto", help="train.device: auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--model", default="torch_mlp", help="torch_mlp (default), torch_cnn, torch_linear")
    parser.add_argument("--batch-size", type=int, default=64, help="train.batch_size (default 64)")
    parser.add_argument("--epochs", type=int, help="epochs per loop, >= 2 (default 4; quick 3)")
    parser.add_argument("--subsample", type=int, help="data.subsample (default: all 70,000; quick 5000)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for both loops (default: torch's)")
    args = parser.parse_args()
    epochs = args.epochs or (3 if args.quick else 4)
    subsample = args.subsample or (5000 if args.quick else None)
    if epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is warm-up)")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = [
        "data=fashion_mnist",
        f"data.subsample={'null' if subsample is None else subsample}",
        f"model={args.model}",
        "loss=ce",
        "imbalance.ratio=1",
        "train.patience=null",
        f"train.epochs={epochs}",
        "train.min_steps=0",
        f"train.batch_size={args.batch_size}",
        f"train.device={args.device}",
        "seed=0",
    ]
    print("torch_epoch: lossbench's training loop vs a plain DataLoader loop, Fashion-MNIST")
    print(machine_line())
    plain = compose_prepared([*overrides, "regularization=none"])
    with_l2 = compose_prepared([*overrides, "regularization=l2"])
    n, device = len(plain.y_fit), build(plain).device
    steps = -(-n // args.batch_size)
    print(
        f"{args.model} on {n} training images ({steps} steps of {args.batch_size}) + {len(plain.y_val)} val "
        f"images, {epochs} epochs, device {device}, torch threads {torch.get_num_threads()}"
    )

    runs = {}
    for label, fn, p in (
        ("lossbench fit_torch", lossbench_epochs, plain),
        ("baseline DataLoader(TensorDataset, shuffle=True)", dataloader_epochs, plain),
        ("lossbench fit_torch, regularization=l2 (default)", lossbench_epochs, with_l2),
    ):
        print(f"  {label} ...")
        runs[label] = fn(p)

    def median_after_first(times: list[float]) -> float:
        return statistics.median(times[1:])

    ours = median_after_first(runs["lossbench fit_torch"])
    base = median_after_first(runs["baseline DataLoader(TensorDataset, shuffle=True)"])
    rows = [
        [
            label,
            f"{1e3 * median_after_first(t):.1f}",
            f"{1e3 * t[0]:.1f}",
            f"{n / median_after_first(t):,.0f}",
            f"{base / median_after_first(t):.2f}",
        ]
        for label, t in runs.items()
    ]
    title = f"Epoch time, median of epochs 2..{epochs}; speed-up = baseline / row"
    title += f" (target >= {TARGET:g} on GPU)"
    print()
    print(table(title, ["loop", "epoch ms", "1st epoch ms", "images/s", "speed-up"], rows))
    if device.type != "cuda":
        print("note: the target is set for a GPU; on a CPU this ratio is reported, not judged")
    print()
    print(
        verdict(
            f"torch_epoch ({device.type}, baseline/lossbench)",
            base / ours,
            TARGET,
            "x",
            higher_is_better=True,
        )
    )


if __name__ == "__main__":
    main()
