"""The torch fit's schedule: a step budget that scales with the data, early stopping that cannot end a run on
its initial plateau, and DRW that always happens within the epochs run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossbench.losses import build_loss
from lossbench.train import Schedule, fit_torch
from tests.conftest import compose_cfg, run_cli

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 4)).astype(np.float32)
Y = np.arange(64) % 2


def _fit(loss="ce", **train):
    """A fit on a plateau: lr 1e-12 leaves the weights (and so the val metric) where they start."""
    cfg = {
        "optimizer": "adam",
        "lr": 1e-12,
        "epochs": 20,
        "batch_size": 64,
        "patience": 2,
        "monitor": "val_balanced_accuracy",
        "threads": 1,
        "min_steps": 0,
        "warmup": 0.0,
        **train,
    }
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    params = {"drw_start": 0.5, "scale": 1.0} if loss == "ldam" else {}
    loss_fn = build_loss(loss, num_classes=2, class_counts=[48, 16], **params)
    fit = fit_torch(
        net,
        loss_fn,
        X,
        Y,
        X,
        Y,
        train_cfg=cfg,
        regularization={"name": "none", "strength": 0.0},
        num_classes=2,
        seed=0,
        device=torch.device("cpu"),
    )
    return fit, loss_fn


def test_the_step_budget_scales_with_the_data():
    train = {"epochs": 100, "batch_size": 64, "min_steps": 1000, "patience": 15, "warmup": 0.25}
    small = Schedule(train, n_train=133)  # 3 steps an epoch
    assert (small.epochs, small.warmup) == (334, 84)
    assert Schedule(train, n_train=60).epochs == 1000  # 1 step an epoch
    assert Schedule(train, n_train=6400).epochs == 100  # 100 steps an epoch: epochs rule
    assert Schedule({**train, "min_steps": 0}, n_train=60).epochs == 100


def test_early_stopping_cannot_stop_before_its_minimum_on_a_plateau():
    fit, _ = _fit()
    assert (fit.epochs_run, fit.best_epoch) == (3, 1)  # no warm-up: stops after patience 2
    fit, _ = _fit(warmup=0.5)
    assert fit.epochs_run == 10  # half of the 20 planned epochs, then it may stop
    # the step budget: 1 step an epoch, 40 steps -> 40 planned epochs, a quarter of them run at least
    fit, _ = _fit(epochs=10, min_steps=40, warmup=0.25)
    assert fit.epochs_run == 10 and len(fit.curves["val_loss"]) == 10


def test_drw_switches_on_within_a_short_run():
    fit, loss_fn = _fit("ldam")  # drw_start 0.5 of 20 epochs: epoch 10 (0-based)
    assert loss_fn.drw_active is True
    # the best epoch is chosen from DRW's first epoch on, and DRW runs for the patience before any stop
    assert fit.best_epoch == 11 and fit.epochs_run == 13
    # without DRW the same plateau stops after 3 epochs (so the wait above is DRW's)
    fit, _ = _fit("ce")
    assert fit.epochs_run == 3


def test_defaults_give_small_tables_their_step_budget():
    cfg = compose_cfg(["model=torch_mlp", "data=wine", "imbalance.ratio=1"])
    assert cfg["train"]["min_steps"] == 1000 and cfg["train"]["warmup"] == 0.25


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.min_steps=-1", "train.min_steps=-1 is invalid: must be an integer >= 0."),
        ("train.warmup=1.5", "train.warmup=1.5 is invalid: must be a number >= 0 and <= 1."),
    ],
)
def test_bad_schedule_values_are_refused(tmp_path, override, message):
    proc = run_cli(["model=torch_mlp", override], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == f"lossbench: error: {message}"
