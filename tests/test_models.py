"""Models and how each loss is realised on them: every valid pair trains, sklearn realisations are exact."""

import numpy as np
import pytest
import torch

from lossbench.compat import REGULARIZATION, matrix_markdown, realisation, supported_losses
from lossbench.losses import available_losses, build_loss
from lossbench.models import MODELS, Context, build_model
from lossbench.pipeline import run
from tests.conftest import compose_cfg, tiny

SKLEARN_PAIRS = [(m, loss) for m in MODELS if MODELS[m].backend == "sklearn" for loss in supported_losses(m)]


def _overrides(model: str, loss: str) -> list[str]:
    out = [f"model={model}", f"loss={loss}", "data=digits", "imbalance.ratio=5", "seed=0"]
    if model in ("linear_svm", "sgd") and loss in ("hinge", "squared_hinge"):
        out.append("loss.variant=one_vs_rest")
    if model == "sklearn_mlp":
        out += ["model.hidden_sizes=[32]", "model.max_iter=60"]
    return tiny(out)


@pytest.mark.parametrize("loss", available_losses())
def test_torch_mlp_trains_with_every_loss(loss):
    result = run(compose_cfg([*_overrides("torch_mlp", loss), "train.epochs=15"]))
    assert result.metrics["test/balanced_accuracy"] > 0.6, result.metrics["test/balanced_accuracy"]
    assert result.realisation == "native"
    assert all(np.isfinite(v) for v in result.curves["train_loss"])


@pytest.mark.parametrize(("model", "loss"), SKLEARN_PAIRS, ids=[f"{m}-{lo}" for m, lo in SKLEARN_PAIRS])
def test_every_sklearn_pair_trains(model, loss):
    result = run(compose_cfg(_overrides(model, loss)))
    assert result.metrics["test/balanced_accuracy"] > 0.7, result.metrics["test/balanced_accuracy"]
    assert result.realisation == realisation(
        model, loss, "l2", loss_params={"variant": "one_vs_rest"}, data="digits"
    )


@pytest.mark.parametrize("model", ["torch_linear", "torch_cnn"])
def test_other_torch_models_train(model):
    result = run(compose_cfg([*_overrides(model, "ce"), "train.epochs=15"]))
    assert result.metrics["test/balanced_accuracy"] > 0.8


def test_dropout_is_in_the_network_only_when_asked():
    ctx = dict(
        num_classes=3,
        feature_shape=(1, 8, 8),
        class_counts=(5, 5, 5),
        seed=0,
        loss={"name": "ce"},
        train={"device": "cpu"},
    )
    for name in ("torch_mlp", "torch_cnn"):
        cfg = compose_cfg([f"model={name}"])["model"]
        plain = build_model(cfg, Context(**ctx, regularization={"name": "l2", "strength": 0.001}))
        dropped = build_model(
            cfg, Context(**ctx, regularization={"name": "dropout", "rate": 0.4, "strength": 0.0})
        )
        assert not any(isinstance(m, torch.nn.Dropout) for m in plain.net.modules())
        rates = [m.p for m in dropped.net.modules() if isinstance(m, torch.nn.Dropout)]
        assert rates and all(r == 0.4 for r in rates)


def _torch_softmax_regression(X, y, loss_fn, strength):
    """Full-batch LBFGS on  mean loss + strength/2 ||W||^2  (bias unpenalised), float64."""
    X, y = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y)
    W = torch.zeros(X.shape[1], int(y.max()) + 1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(int(y.max()) + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1,
        max_iter=5000,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        obj = loss_fn(X @ W + b, y) + strength / 2 * (W**2).sum()
        obj.backward()
        return obj

    opt.step(closure)
    return W.detach().numpy().T, b.detach().numpy()


@pytest.mark.parametrize(
    ("loss", "params"), [("label_smoothing", {"smoothing": 0.2}), ("weighted_ce", {"weights": "balanced"})]
)
def test_sklearn_realisation_matches_a_torch_fit_of_the_same_linear_model(loss, params):
    """logreg + expansion (label smoothing) or sample weights equals the torch loss on softmax regression."""
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True)
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:30], np.flatnonzero(y == 2)[:12]]
    X, y = StandardScaler().fit_transform(X[keep]), y[keep]
    counts = tuple(np.bincount(y).tolist())
    strength = 0.05
    ctx = Context(
        num_classes=3,
        feature_shape=(13,),
        class_counts=counts,
        seed=0,
        loss={"name": loss, **params},
        regularization={"name": "l2", "strength": strength},
        train={},
    )
    model = build_model({"name": "logreg", "max_iter": 10000, "tol": 1e-12}, ctx)
    model.fit(X, y, X, y)
    loss_fn = build_loss(loss, num_classes=3, class_counts=list(counts), **params).double()
    W, b = _torch_softmax_regression(X, y, loss_fn, strength)
    assert np.abs(model.estimator.coef_ - W).max() <= 1e-4
    # intercepts are identified up to a common shift (unpenalised): compare centred
    assert (
        np.abs((model.estimator.intercept_ - model.estimator.intercept_.mean()) - (b - b.mean())).max()
        <= 1e-4
    )


def test_posthoc_logit_adjustment_predicts_argmax_of_adjusted_log_probabilities():
    result_plain = run(compose_cfg(["model=logreg", "loss=ce", "data=digits", "imbalance.ratio=50"]))
    result_la = run(compose_cfg(["model=logreg", "loss=logit_adjusted", "data=digits", "imbalance.ratio=50"]))
    assert result_la.realisation == "post-hoc"
    counts = np.array(result_plain.class_counts["train"], dtype=float)
    adjusted = np.log(result_plain.proba_test) - np.log(counts / counts.sum())
    assert np.array_equal(result_la.y_pred, adjusted.argmax(1))
    # the adjustment helps the tail classes at a heavy imbalance
    assert result_la.metrics["test/minority_recall"] > result_plain.metrics["test/minority_recall"]


def test_strength_maps_to_each_backend_parameter():
    ctx = dict(
        num_classes=3, feature_shape=(4,), class_counts=(40, 30, 30), seed=0, loss={"name": "ce"}, train={}
    )
    l2 = {"name": "l2", "strength": 0.01}
    sgd = build_model(compose_cfg(["model=sgd"])["model"], Context(**ctx, regularization=l2)).estimator
    assert sgd.alpha == 0.01 and sgd.penalty == "l2"
    mlp = build_model(
        compose_cfg(["model=sklearn_mlp"])["model"], Context(**ctx, regularization=l2)
    ).estimator
    assert mlp.alpha == pytest.approx(0.01 * 100)
    ridge = build_model(
        compose_cfg(["model=ridge"])["model"], Context(**{**ctx, "loss": {"name": "mse"}}, regularization=l2)
    ).estimator
    assert ridge.alpha == pytest.approx(0.01 * 100 / 2)
    svm_ctx = Context(
        **{**ctx, "loss": {"name": "squared_hinge"}}, regularization={"name": "l1", "strength": 0.01}
    )
    svm = build_model(compose_cfg(["model=linear_svm"])["model"], svm_ctx).estimator
    assert svm.penalty == "l1" and svm.dual is False
    assert pytest.approx(1 / (0.01 * 100)) == svm.C
    en = {"name": "elasticnet", "strength": 0.02, "l1_ratio": 0.3}
    lr = build_model(compose_cfg(["model=logreg"])["model"], Context(**ctx, regularization=en)).estimator
    assert lr.l1_ratio == 0.3 and lr.solver == "saga"
    assert pytest.approx(1 / (0.02 * 100)) == lr.C


def test_compatibility_table_answers_and_the_matrix_shows_it():
    assert realisation("linear_svm", "focal", "l2") is None
    assert realisation("logreg", "label_smoothing", "l2") == "expansion"
    assert realisation("torch_mlp", "ldam", "dropout") == "native"
    assert realisation("torch_linear", "ce", "dropout") is None
    for model in MODELS:
        assert set(REGULARIZATION[model]) <= {"none", "l1", "l2", "elasticnet", "dropout"}
    table = matrix_markdown()
    assert "| `linear_svm` |" in table and table.count("\n") == len(MODELS) + 1


@pytest.mark.parametrize("model", ["logreg", "torch_mlp"])
def test_class_weight_rebalancing_equals_the_weighted_ce_loss(model):
    """rebalance=class_weight (balanced) with ce is weighted_ce with balanced weights, on both backends."""
    base = tiny([f"model={model}", "data=wine", "imbalance.ratio=5", "seed=2"])
    rebalanced = run(compose_cfg([*base, "loss=ce", "rebalance=class_weight"]))
    weighted = run(compose_cfg([*base, "loss=weighted_ce"]))
    assert rebalanced.metrics == pytest.approx(weighted.metrics, rel=1e-6, abs=1e-9)
    plain = run(compose_cfg([*base, "loss=ce"]))
    assert plain.metrics != pytest.approx(weighted.metrics, rel=1e-6, abs=1e-9)


def test_class_weight_with_effective_number_equals_class_balanced_loss():
    base = tiny(["model=logreg", "data=wine", "imbalance.ratio=5", "seed=2"])
    a = run(
        compose_cfg(
            [*base, "rebalance=class_weight", "rebalance.weights=effective_number", "rebalance.beta=0.9"]
        )
    )
    b = run(compose_cfg([*base, "loss=class_balanced", "loss.beta=0.9"]))
    assert a.metrics == pytest.approx(b.metrics, rel=1e-6, abs=1e-9)


def test_train_threads_sets_torchs_cpu_threads_and_leaves_the_fingerprint_alone():
    import os

    from lossbench.config import fingerprint, to_container
    from lossbench.runtime import torch_threads

    cores = len(os.sched_getaffinity(0))
    from lossbench.runtime import busy_cores

    free = cores - busy_cores()
    assert 0 <= busy_cores() <= cores and busy_cores() == busy_cores()  # read once per process
    assert torch_threads("auto") == max(1, free) and torch_threads("auto", cores * 4) == 1
    assert torch_threads("auto", 2) == max(1, free // 2) and torch_threads(3) == 3
    before = torch.get_num_threads()
    try:
        auto = to_container(compose_cfg(_overrides("torch_mlp", "ce")))
        one = to_container(compose_cfg([*_overrides("torch_mlp", "ce"), "train.threads=1"]))
        assert fingerprint(auto) == fingerprint(one)
        assert fingerprint(one) != fingerprint(to_container(compose_cfg(_overrides("torch_mlp", "focal"))))
        torch.set_num_threads(max(2, cores))
        at_one = run(one)
        assert torch.get_num_threads() == 1
        run(auto)
        assert torch.get_num_threads() == max(1, free)
        # another thread count trains the same net: what resuming across thread counts relies on
        at_two = run(to_container(compose_cfg([*_overrides("torch_mlp", "ce"), "train.threads=2"])))
        assert torch.get_num_threads() == 2
        assert at_two.metrics == pytest.approx(at_one.metrics, rel=1e-6, abs=1e-9)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("model", ["torch_linear", "torch_mlp", "torch_cnn"])
def test_ldam_gets_the_published_cosine_last_layer(model):
    """Cao et al. 2019 train LDAM on cosine logits in [-1, 1] with scale 30; other losses keep nn.Linear."""
    import torch
    from torch import nn

    from lossbench.heads import CosineLinear

    def last_layer(loss, *extra):
        cfg = compose_cfg([f"model={model}", "data=digits", f"loss={loss}", *extra])
        ctx = Context(
            num_classes=10,
            feature_shape=(1, 8, 8),
            class_counts=(10,) * 10,
            seed=0,
            loss=cfg["loss"],
            train={"device": "cpu"},
            regularization={"name": "none", "strength": 0.0},
        )
        built = build_model(cfg["model"], ctx)
        return built, list(built.net.modules())[-1]

    built, head = last_layer("ldam")
    assert isinstance(head, CosineLinear)
    logits = built.net(torch.randn(32, 1, 8, 8) * 5)
    assert logits.abs().max().item() <= 1.0 + 1e-6 and logits.abs().max().item() > 0.01
    assert type(last_layer("ldam", "loss.logits=linear")[1]) is nn.Linear
    assert type(last_layer("ce")[1]) is nn.Linear
