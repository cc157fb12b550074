"""run(cfg) on every data x model option at tiny size, with metric values checked, not just 'it ran'."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss, recall_score

from lossbench.pipeline import run
from tests.conftest import compose_cfg, tiny

DATA = ["digits", "breast_cancer", "wine", "synthetic"]
MODELS = ["logreg", "torch_mlp"]
# Lower bounds on test balanced accuracy at ratio 1 (chance is 1/C); a broken pipeline lands near chance.
FLOOR = {"digits": 0.80, "breast_cancer": 0.85, "wine": 0.80, "synthetic": 0.60}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("data", DATA)
def test_every_data_and_model_learns_and_reports_consistent_metrics(data, model):
    result = run(compose_cfg(tiny([f"data={data}", f"model={model}", "imbalance.ratio=1", "seed=1"])))
    m, y, pred, proba = result.metrics, result.y_test, result.y_pred, result.proba_test
    C = result.num_classes
    assert m["test/accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["test/balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["test/macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    recalls = recall_score(y, pred, average=None, labels=range(C), zero_division=0)
    assert [m[f"test/recall_class_{k}"] for k in range(C)] == pytest.approx(recalls.tolist())
    assert m["test/log_loss"] == pytest.approx(log_loss(y, proba, labels=range(C)), rel=1e-6)
    assert np.allclose(proba.sum(1), 1.0)
    assert m["test/balanced_accuracy"] > FLOOR[data], m["test/balanced_accuracy"]
    assert sum(result.class_counts["test"]) == len(y)


def test_digits_logreg_reference_numbers():
    """A fixed seed gives fixed numbers: guards against silent changes of split, scaling or solver."""
    result = run(
        compose_cfg(["data=digits", "model=logreg", "imbalance.ratio=1", "imbalance.test=natural", "seed=1"])
    )
    # 25% of each digits class (178, 182, 177, 183, 181, 182, 181, 179, 174, 180), stratified
    assert result.class_counts["test"] == [45, 46, 44, 46, 45, 46, 45, 45, 43, 45]
    assert sum(result.class_counts["train"]) == 1077 and sum(result.class_counts["val"]) == 270
    # 431 of 450 right with default L2 (strength 1e-3); two samples of slack for BLAS differences
    assert result.metrics["test/accuracy"] == pytest.approx(431 / 450, abs=2 / 450)


def test_imbalanced_training_counts_follow_the_profile():
    result = run(compose_cfg(["data=digits", "model=logreg", "imbalance.ratio=10", "seed=1"]))
    counts = np.array(result.class_counts["train"])
    n_max = min(result.class_counts["train_available"])
    expected = np.floor(n_max * 10.0 ** (-np.arange(10) / 9) + 1e-9)
    assert counts.tolist() == expected.astype(int).tolist()
    assert counts[0] / counts[-1] == pytest.approx(10, rel=0.1)


def test_torch_mlp_is_deterministic_on_cpu():
    overrides = tiny(["data=digits", "model=torch_mlp", "imbalance.ratio=10", "seed=1"])
    a, b = run(compose_cfg(overrides)), run(compose_cfg(overrides))
    assert a.metrics == b.metrics
    assert a.curves == b.curves
    c = run(compose_cfg([*overrides[:-1], "seed=2"]))
    assert c.curves != a.curves


def test_torch_training_loop_records_curves_and_stops_early():
    cfg = compose_cfg(
        [
            "data=wine",
            "model=torch_mlp",
            "train.epochs=300",
            "train.min_steps=0",
            "train.patience=5",
            "train.lr=0.05",
        ]
    )
    result = run(cfg)
    epochs = result.info["epochs_run"]
    assert len(result.curves["train_loss"]) == len(result.curves["val_loss"]) == epochs
    assert epochs < 300, "early stopping never triggered"
    # it stops 5 epochs after its best, but not before the warm-up (a quarter of the 300 planned epochs)
    assert epochs == max(75, result.info["best_epoch"] + 5)
    # training loss went down
    assert result.curves["train_loss"][-1] < result.curves["train_loss"][0]


def test_l2_strength_maps_to_each_backend():
    """mean loss + strength/2 ||w||^2: LogisticRegression C = 1/(strength n); torch adds the penalty."""
    import torch

    from lossbench.models import Context, _logreg
    from lossbench.train import weight_penalty

    ctx = dict(
        num_classes=3, feature_shape=(4,), class_counts=(40, 30, 30), seed=0, loss={"name": "ce"}, train={}
    )
    l2 = _logreg(
        {"max_iter": 100, "tol": 1e-4}, Context(**ctx, regularization={"name": "l2", "strength": 0.01})
    )
    assert pytest.approx(1 / (0.01 * 100)) == l2.estimator.C
    free = _logreg(
        {"max_iter": 100, "tol": 1e-4}, Context(**ctx, regularization={"name": "none", "strength": 0})
    )
    assert np.inf == free.estimator.C

    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
        net.bias.fill_(100.0)  # biases are not penalised
    penalty = weight_penalty(net, {"name": "l2", "strength": 0.1})
    assert penalty.item() == pytest.approx(0.1 / 2 * (1 + 4 + 9 + 0.25))
    assert weight_penalty(net, {"name": "none", "strength": 0.0}) is None


def test_stronger_l2_gives_smaller_torch_weights():
    base = tiny(["data=wine", "model=torch_mlp", "train.epochs=30", "train.patience=null", "seed=0"])
    free = run(compose_cfg(base))
    strong = run(compose_cfg([*base, "regularization=l2", "regularization.strength=0.5"]))
    assert strong.metrics["test/log_loss"] != free.metrics["test/log_loss"]
    # the penalty pulls the model towards uniform predictions: its training loss ends higher
    assert strong.curves["train_loss"][-1] > free.curves["train_loss"][-1]
