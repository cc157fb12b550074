"""execute_seeds: K seeds of one config as one vectorised torch.func ensemble reproduce each sequential run.

Each test runs the same prepared configs through ``pipeline.execute`` one by one and through
``ensemble.execute_seeds`` at once, and compares every seed's numbers. They agree up to float rounding (a
batched matmul may round in the last bit where K single ones do not). ReLU and max-pool kinks can amplify
such a last-bit difference into a different trajectory on some seed after a few epochs (measured: one of
three digits seeds at epoch 3 with lr 0.01), which says nothing about the code, so the strict comparisons use
``model.activation=tanh``: smooth, and the same ensemble code path as relu.
"""

import dataclasses
import logging

import numpy as np
import pytest
import torch

from lossbench.ensemble import execute_seeds, plan_seeds
from lossbench.pipeline import execute, prepare
from lossbench.train import NonFiniteLossError
from tests.conftest import compose_cfg, tiny

TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny nets gain nothing from intra-op threads, and on a busy 2-core machine two spinning torch threads
    made this module 6x slower (200 s vs 32 s). Both sides of every comparison run under the same setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


MLP = ["model=torch_mlp", "model.activation=tanh", "data=digits", "imbalance.ratio=10"]


def _prepared(overrides: list[str], seeds=(0, 1, 2)) -> list:
    return [prepare(compose_cfg(tiny([*overrides, f"seed={s}"]))) for s in seeds]


def _assert_same_run(seq, ens, tol: float = TOL) -> None:
    """One seed: the ensemble member's RunResult equals the sequential one (metrics within ``tol``)."""
    assert ens.info["vectorised"] is True
    np.testing.assert_array_equal(ens.y_pred, seq.y_pred)
    assert (ens.info["epochs_run"], ens.info["best_epoch"]) == (
        seq.info["epochs_run"],
        seq.info["best_epoch"],
    )
    assert ens.metrics.keys() == seq.metrics.keys()
    for key, value in seq.metrics.items():
        if np.isnan(value):
            assert np.isnan(ens.metrics[key]), key
        else:
            assert abs(ens.metrics[key] - value) <= tol, (key, ens.metrics[key], value)
    assert ens.curves.keys() == seq.curves.keys()
    for name, values in seq.curves.items():
        assert len(ens.curves[name]) == len(values)
        assert np.max(np.abs(np.subtract(ens.curves[name], values))) <= tol, name
    if seq.proba_test is None:
        assert ens.proba_test is None
    else:
        assert np.max(np.abs(ens.proba_test - seq.proba_test)) <= tol
    assert ens.class_counts == seq.class_counts and ens.class_names == seq.class_names
    assert ens.realisation == seq.realisation
    same_info = {k: v for k, v in seq.info.items() if k != "fit_seconds"}
    assert {k: ens.info[k] for k in same_info} == same_info


def _compare(prepared: list, tol: float = TOL) -> tuple[list, list]:
    seq = [execute(p) for p in prepared]
    ens = execute_seeds(prepared)
    assert len(ens) == len(seq)
    for s, e in zip(seq, ens, strict=True):
        _assert_same_run(s, e, tol)
        assert e.info["ensemble_size"] == len(prepared)
    # the members are really different runs (own split, init, batch order), not one run K times
    assert seq[0].curves["train_loss"] != seq[1].curves["train_loss"]
    return seq, ens


@pytest.mark.parametrize("loss", ["ce", "focal", "logit_adjusted", "ldam", "weighted_ce", "hinge"])
def test_each_seed_of_the_ensemble_equals_its_sequential_run(loss):
    seq, _ = _compare(_prepared([*MLP, f"loss={loss}"]))
    assert all(r.metrics["test/balanced_accuracy"] > 0.5 for r in seq)  # it learned something


def test_per_seed_class_counts_give_each_member_its_own_loss_parameters():
    """synthetic data splits differently per seed: different class counts, so different log priors (logit
    adjustment) and margins (LDAM) per member; each member must use its own."""
    base = ["model=torch_mlp", "model.activation=tanh", "data=synthetic", "imbalance.ratio=1"]
    for loss in ("logit_adjusted", "ldam"):
        prepared = _prepared(
            [*base, f"loss={loss}", "loss.scale=1"] if loss == "ldam" else [*base, f"loss={loss}"]
        )
        counts = {tuple(p.class_counts["fit"]) for p in prepared}
        assert len(counts) > 1, "precondition: the seeds' class counts differ"
        _compare(prepared)


def test_rebalance_class_weight_penalties_and_sgd_are_per_member():
    _compare(
        _prepared(
            [*MLP, "rebalance=class_weight", "regularization=elasticnet", "regularization.strength=0.01"]
        )
    )
    _compare(_prepared([*MLP, "train.optimizer=sgd", "train.lr=0.05", "regularization=l1"]))


def test_members_stop_early_at_different_epochs():
    """patience 1: members leave the ensemble at different epochs and the others train on (compaction)."""
    seq, _ = _compare(_prepared([*MLP, "train.epochs=15", "train.patience=1"]))
    stops = [r.info["epochs_run"] for r in seq]
    assert len(set(stops)) > 1 and max(stops) < 15, stops
    # monitoring the val loss instead: the same per-member bookkeeping on the other score
    _compare(_prepared([*MLP, "train.epochs=8", "train.monitor=val_loss"]))


def test_torch_linear_and_torch_cnn():
    _compare(_prepared(["model=torch_linear", "data=digits", "imbalance.ratio=10", "loss=focal"]))
    cnn = ["model=torch_cnn", "model.channels=[4,8]", "model.hidden=16", "data=digits", "imbalance.ratio=10"]
    _compare(_prepared([*cnn, "train.epochs=2"]), tol=1e-4)


def test_sklearn_models_fall_back_to_sequential_with_the_reason(caplog):
    prepared = _prepared(["model=logreg", "data=digits", "imbalance.ratio=10"], seeds=(0, 1))
    plan = plan_seeds(prepared)
    assert plan.groups == [] and set(plan.sequential) == {0, 1}
    assert "scikit-learn" in plan.sequential[0]
    with caplog.at_level(logging.INFO, logger="lossbench"):
        results = execute_seeds(prepared)
    assert "runs sequentially: model=logreg is a scikit-learn model" in caplog.text
    for p, r in zip(prepared, results, strict=True):
        assert r.info["vectorised"] is False and "scikit-learn" in r.info["sequential_reason"]
        reference = execute(p)
        assert r.metrics == reference.metrics
        np.testing.assert_array_equal(r.y_pred, reference.y_pred)


def test_a_mixed_call_vectorises_the_seed_group_and_runs_the_rest_alone():
    torch_seeds = _prepared([*MLP, "loss=ce"], seeds=(0, 1))
    dropout = _prepared([*MLP, "regularization=dropout"], seeds=(0, 1))
    other_ratio = _prepared([*MLP[:-1], "imbalance.ratio=5"], seeds=(0,))
    logreg = _prepared(["model=logreg", "data=digits"], seeds=(0,))
    prepared = [*torch_seeds, *dropout, *other_ratio, *logreg]
    plan = plan_seeds(prepared)
    assert plan.groups == [[0, 1]]
    assert "dropout" in plan.sequential[2] and "dropout" in plan.sequential[3]
    assert "only by seed" in plan.sequential[4]
    assert "scikit-learn" in plan.sequential[5]
    results = execute_seeds(prepared)
    assert [r.info["vectorised"] for r in results] == [True, True, False, False, False, False]
    for p, r in zip(prepared[:2], results[:2], strict=True):
        _assert_same_run(execute(p), r)
    for p, r in zip(prepared[2:], results[2:], strict=True):
        assert r.metrics == execute(p).metrics  # sequential: the very same computation


def test_seeds_whose_fitted_splits_differ_in_size_run_sequentially():
    prepared = _prepared([*MLP, "loss=ce"])
    short = prepared[2]
    prepared[2] = dataclasses.replace(short, X_fit=short.X_fit[:-5], y_fit=short.y_fit[:-5])
    plan = plan_seeds(prepared)
    assert plan.groups == [[0, 1]]
    assert f"have {len(prepared[2].y_fit)}/{len(prepared[2].y_val)} rows" in plan.sequential[2]
    results = execute_seeds(prepared)
    assert results[2].info["vectorised"] is False
    assert results[2].metrics == execute(prepared[2]).metrics
    _assert_same_run(execute(prepared[0]), results[0])


def test_a_diverging_member_fails_alone_as_its_sequential_run_would():
    prepared = _prepared([*MLP, "loss=ce"])
    bad = prepared[1].X_fit.copy()
    bad[:, 0] = np.nan
    prepared[1] = dataclasses.replace(prepared[1], X_fit=bad)
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        execute(prepared[1])
    results = execute_seeds(prepared, return_exceptions=True)
    assert isinstance(results[1], NonFiniteLossError) and "epoch 1" in str(results[1])
    _assert_same_run(execute(prepared[0]), results[0])
    _assert_same_run(execute(prepared[2]), results[2])
    with pytest.raises(NonFiniteLossError):
        execute_seeds(prepared)
