"""lossbench.metrics against scikit-learn / imbalanced-learn and hand-computed values; lossbench.plots."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from imblearn.metrics import geometric_mean_score
from sklearn import metrics as skm

from lossbench.metrics import (
    METRICS,
    PROBA_METRICS,
    adaptive_calibration_error,
    classification_metrics,
    confusion,
    expected_calibration_error,
    metric_info,
    multiclass_brier,
    per_class_table,
)
from lossbench.plots import confusion_matrix_figure

LABEL_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "g_mean", "mcc"}
PROBA_KEYS = {"log_loss", "brier", "ece", "adaptive_ece", "pr_auc", "roc_auc"}


def _example(num_classes: int, n: int = 80, seed: int = 0):
    """Fixed random example: every class present, informative but imperfect probabilities."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, n - num_classes)])
    logits = rng.normal(size=(n, num_classes)) + 1.2 * np.eye(num_classes)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba


def _guo_ece(y, proba, n_bins=15):
    """Independent transcription of Guo et al.'s reference loop (lower < conf <= upper)."""
    conf, pred = proba.max(axis=1), proba.argmax(axis=1)
    acc = pred == y
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(acc[in_bin].mean() - conf[in_bin].mean())
    return ece


def _reference(name: str, y, pred, proba, num_classes: int, minority) -> float:
    labels = np.arange(num_classes)
    onehot = np.eye(num_classes)[y]
    if name.startswith("recall_class_"):
        return skm.recall_score(y, pred, labels=labels, average=None, zero_division=0)[
            int(name.split("_")[-1])
        ]
    return {
        "accuracy": lambda: skm.accuracy_score(y, pred),
        "balanced_accuracy": lambda: skm.balanced_accuracy_score(y, pred),
        "macro_f1": lambda: skm.f1_score(y, pred, average="macro", zero_division=0),
        "minority_recall": lambda: np.mean(skm.recall_score(y, pred, labels=minority, average=None)),
        "g_mean": lambda: geometric_mean_score(y, pred, average="multiclass"),
        "mcc": lambda: skm.matthews_corrcoef(y, pred),
        "log_loss": lambda: skm.log_loss(y, proba, labels=labels),
        # mean over all n*C cells times C = mean over samples of the per-sample sum
        "brier": lambda: skm.mean_squared_error(onehot, proba) * num_classes,
        "ece": lambda: _guo_ece(y, proba),
        "pr_auc": lambda: skm.average_precision_score(onehot, proba, average="macro"),
        "roc_auc": lambda: (
            skm.roc_auc_score(y, proba[:, 1])
            if num_classes == 2
            else skm.roc_auc_score(y, proba, multi_class="ovr", average="macro")
        ),
    }[name]()


CASES = [
    (c, name)
    for c in (2, 4)
    for name in [
        *sorted(LABEL_KEYS),
        "minority_recall",
        *[f"recall_class_{k}" for k in range(c)],
        *sorted(PROBA_KEYS - {"adaptive_ece"}),
    ]
]


@pytest.mark.parametrize(("num_classes", "name"), CASES)
def test_matches_sklearn_and_imblearn(num_classes, name):
    y, pred, proba = _example(num_classes)
    minority = [num_classes - 1]
    got = classification_metrics(y, pred, proba, num_classes=num_classes, minority_classes=minority)
    want = _reference(name, y, pred, proba, num_classes, minority)
    assert 0.0 < abs(want) < 5  # the example is not degenerate for this metric
    assert type(got[name]) is float
    assert got[name] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_binary_hand_computed():
    y = [0, 0, 0, 1]
    pred = [0, 0, 1, 1]
    proba = [[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]]
    m = classification_metrics(y, pred, proba, num_classes=2, minority_classes=[1])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["recall_class_0"] == pytest.approx(2 / 3)
    assert m["recall_class_1"] == pytest.approx(1.0)
    assert m["minority_recall"] == pytest.approx(1.0)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["g_mean"] == pytest.approx(math.sqrt(2 / 3))
    # F1_0 = 2*(1*2/3)/(1+2/3) = 0.8, F1_1 = 2*(0.5*1)/1.5 = 2/3
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    # tp=1, tn=2, fp=1, fn=0: (1*2 - 1*0) / sqrt(2*1*3*2)
    assert m["mcc"] == pytest.approx(2 / math.sqrt(12))
    # per-sample sums: 2*0.1^2, 2*0.2^2, 2*0.6^2, 2*0.3^2 = 0.02 + 0.08 + 0.72 + 0.18 = 1.0
    assert m["brier"] == pytest.approx(0.25)
    assert m["log_loss"] == pytest.approx(
        -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.7)) / 4
    )
    # the single positive (0.7) outranks every negative; the class-0 scores rank all class-0 samples first
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["pr_auc"] == pytest.approx(1.0)


def test_ece_hand_computed():
    # 15 bins. conf 0.9 -> bin (0.867, 0.933]: 2 samples, 1 correct: |0.5 - 0.9| = 0.4, weight 2/5 -> 0.16
    # conf 0.7 -> bin (0.667, 0.733]: 3 samples, 2 correct: |2/3 - 0.7| = 1/30, weight 3/5 -> 0.02
    # ECE = 0.18
    y = [0, 1, 1, 1, 0]
    proba = [
        [0.9, 0.05, 0.05],  # correct
        [0.9, 0.05, 0.05],  # wrong
        [0.2, 0.7, 0.1],  # correct
        [0.1, 0.7, 0.2],  # correct
        [0.1, 0.2, 0.7],  # wrong
    ]
    assert expected_calibration_error(y, proba) == pytest.approx(0.18)


def test_ece_edge_confidence_goes_to_lower_bin():
    # 2 bins (0, .5], (.5, 1]. conf 0.5 (argmax 0, y=1: wrong) sits in the LOWER bin: 0.5*|0 - 0.5| = 0.25;
    # conf 0.75 correct: 0.5*|1 - 0.75| = 0.125 -> 0.375. Had 0.5 gone up: one bin |0.5 - 0.625| = 0.125.
    assert expected_calibration_error([1, 1], [[0.5, 0.5], [0.25, 0.75]], n_bins=2) == pytest.approx(0.375)


def test_adaptive_ece_hand_computed():
    proba = [[0.9, 0.1], [0.05, 0.95], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]]
    y = [0, 0, 0, 1, 0]
    # confidence / correct per row: .9 c, .95 w, .7 w, .8 c, .6 c; sorted: [.6 c, .7 w, .8 c, .9 c, .95 w]
    # 3 bins (array_split 2 + 2 + 1): [.6 c, .7 w] [.8 c, .9 c] [.95 w]
    # 2/5*|0.5 - 0.65| + 2/5*|1 - 0.85| + 1/5*|0 - 0.95| = 0.06 + 0.06 + 0.19 = 0.31
    assert adaptive_calibration_error(y, proba, n_bins=3) == pytest.approx(0.31)
    # equal-width 3 bins differ: (1/3, 2/3] holds .6 c -> 1/5*0.4 = 0.08; (2/3, 1] holds the other four,
    # acc 0.5, conf 0.8375 -> 4/5*0.3375 = 0.27; ECE = 0.35
    assert expected_calibration_error(y, proba, n_bins=3) == pytest.approx(0.35)
    # 2 bins (3 + 2): [.6 c, .7 w, .8 c] -> 3/5*|2/3 - 0.7| = 0.02; [.9 c, .95 w] -> 2/5*|0.5 - 0.925| = 0.17
    assert adaptive_calibration_error(y, proba, n_bins=2) == pytest.approx(0.19)
    # 15 bins > 5 samples: one per bin, mean |correct - conf| = (0.4 + 0.7 + 0.2 + 0.1 + 0.95) / 5 = 0.47
    assert adaptive_calibration_error(y, proba) == pytest.approx(0.47)


def test_calibrated_construction_gives_zero():
    # 10 samples at confidence 0.8 with 8 correct, 10 at 0.6 with 6 correct: acc == conf in every bin
    p80 = [[0.8, 0.2]] * 10
    p60 = [[0.4, 0.6]] * 10
    proba = np.array(p80 + p60)
    y = np.array([0] * 8 + [1] * 2 + [1] * 6 + [0] * 4)
    assert expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)
    assert adaptive_calibration_error(y, proba, n_bins=2) == pytest.approx(0.0, abs=1e-12)
    # miscalibrate by swapping the labels of one confident sample: no longer zero
    y[0] = 1
    assert expected_calibration_error(y, proba) == pytest.approx(0.5 * 0.1)


def test_sampled_labels_are_nearly_calibrated():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=20000)
    y = (rng.random(20000)[:, None] > np.cumsum(proba, axis=1)).sum(axis=1)  # y ~ Categorical(p)
    assert expected_calibration_error(y, proba) < 0.02
    assert adaptive_calibration_error(y, proba) < 0.02
    overconfident = proba**3 / (proba**3).sum(axis=1, keepdims=True)
    assert expected_calibration_error(y, overconfident) > 0.08


def test_brier_extremes():
    assert multiclass_brier([0, 2], [[1, 0, 0], [0, 0, 1]], 3) == 0.0
    assert multiclass_brier([0, 2], [[0, 1, 0], [1, 0, 0]], 3) == 2.0
    assert multiclass_brier([0, 1], [[0.5, 0.5], [0.5, 0.5]], 2) == pytest.approx(0.5)


def test_proba_none_has_no_probability_keys():
    y, pred, _ = _example(3)
    m = classification_metrics(y, pred, num_classes=3)
    assert set(m) == LABEL_KEYS | {"recall_class_0", "recall_class_1", "recall_class_2"}
    assert not set(m) & set(PROBA_METRICS)
    assert all(type(v) is float for v in m.values())


def test_minority_recall_only_when_requested():
    y, pred, proba = _example(4)
    assert "minority_recall" not in classification_metrics(y, pred, proba, num_classes=4)
    m = classification_metrics(y, pred, proba, num_classes=4, minority_classes=(1, 3, 3))
    assert m["minority_recall"] == pytest.approx((m["recall_class_1"] + m["recall_class_3"]) / 2)


def test_class_present_but_never_predicted_is_zero_without_warnings():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 0])  # class 2 is never predicted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y, pred, num_classes=3, minority_classes=[2])
        table = per_class_table(y, pred, num_classes=3)
    assert m["recall_class_2"] == 0.0
    assert m["minority_recall"] == 0.0
    assert m["g_mean"] == 0.0  # imblearn: any zero recall zeroes the geometric mean
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert table.loc[2, ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]


def test_class_absent_from_y_true():
    # class 3 never occurs in y_true but is predicted twice; its probability column is non-zero
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 3, 1, 1, 1, 2, 2, 3])
    proba = np.full((9, 4), 0.1)
    proba[np.arange(9), pred] = 0.7
    proba[[0, 3, 6], 3] = 0.05
    proba[[0, 3, 6], pred[[0, 3, 6]]] = 0.75
    present = [0, 1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y, pred, proba, num_classes=4, minority_classes=[2, 3])
    assert math.isnan(m["recall_class_3"])  # undefined, not 0
    assert m["minority_recall"] == pytest.approx(2 / 3)  # only class 2 is present
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, labels=present, average="macro"))
    assert m["g_mean"] == pytest.approx(geometric_mean_score(y, pred, labels=present, average="multiclass"))
    assert m["g_mean"] == pytest.approx((2 / 3 * 1 * 2 / 3) ** (1 / 3))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2, 3]))
    onehot = np.eye(4)[y]
    assert m["pr_auc"] == pytest.approx(
        np.mean([skm.average_precision_score(onehot[:, k], proba[:, k]) for k in present])
    )
    assert m["roc_auc"] == pytest.approx(
        np.mean([skm.roc_auc_score(onehot[:, k], proba[:, k]) for k in present])
    )
    assert all(math.isfinite(v) for k, v in m.items() if k != "recall_class_3")


@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_ovr_average_precision_and_roc_auc_equal_sklearns_with_ties(num_classes):
    """The per-class AP and ROC AUC are computed without sklearn (it costs ~1 ms of validation per class and
    call); they must equal sklearn's numbers, ties (rounded, saturated scores) and rare classes included."""
    rng = np.random.default_rng(num_classes)
    for trial in range(30):
        n = int(rng.integers(5, 400))
        y = rng.integers(0, num_classes, n)
        y[:num_classes] = np.arange(num_classes)  # every class present
        proba = rng.dirichlet(np.full(num_classes, 0.3), n)
        if trial % 3 == 0:  # heavy ties
            proba = np.round(proba, 1) + 1e-9
            proba /= proba.sum(axis=1, keepdims=True)
        m = classification_metrics(y, proba.argmax(1), proba, num_classes=num_classes)
        onehot = np.eye(num_classes)[y]
        ap = np.mean([skm.average_precision_score(onehot[:, k], proba[:, k]) for k in range(num_classes)])
        auc = (
            skm.roc_auc_score(y, proba[:, 1])
            if num_classes == 2
            else skm.roc_auc_score(y, proba, multi_class="ovr", average="macro")
        )
        assert m["pr_auc"] == pytest.approx(ap, abs=1e-12, rel=1e-12)
        assert m["roc_auc"] == pytest.approx(auc, abs=1e-12, rel=1e-12)


@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_mcc_g_mean_and_log_loss_equal_sklearns_and_imblearns(num_classes):
    """mcc, g_mean and log_loss are computed without sklearn / imblearn (their per-call input checks cost
    ~5 ms each); they must equal those libraries' numbers: absent and never-predicted classes, constant and
    perfect predictions, exact 0 / 1 probabilities."""
    rng = np.random.default_rng(100 + num_classes)
    for trial in range(40):
        n = int(rng.integers(3, 300))
        y = rng.integers(0, num_classes, n)
        if trial % 4 == 1:  # a class absent from y_true
            y[y == num_classes - 1] = 0
        proba = rng.dirichlet(np.full(num_classes, 0.3), n)
        if trial % 5 == 2:  # saturated rows: exact 0 and 1
            proba = np.eye(num_classes)[rng.integers(0, num_classes, n)]
        pred = proba.argmax(1)
        if trial % 7 == 3:
            pred = np.zeros(n, dtype=int)  # constant prediction: mcc 0, some recall 0
        elif trial % 7 == 4:
            pred = y.copy()  # perfect
        m = classification_metrics(y, pred, proba, num_classes=num_classes)
        present = np.unique(y)
        gmean = geometric_mean_score(y, pred, labels=present, average="multiclass", correction=0.0)
        assert m["g_mean"] == pytest.approx(gmean, abs=1e-12, rel=1e-12)
        assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred), abs=1e-12, rel=1e-12)
        log_loss = skm.log_loss(y, proba, labels=np.arange(num_classes))
        assert m["log_loss"] == pytest.approx(log_loss, abs=1e-12, rel=1e-12)


def test_single_class_in_y_true_roc_auc_is_nan():
    m = classification_metrics([1, 1, 1], [1, 0, 1], [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], num_classes=2)
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["recall_class_0"])
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)


def test_exact_zero_one_probabilities_give_finite_log_loss():
    y = [0, 1, 1]
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # the last one is confidently wrong
    m = classification_metrics(y, proba.argmax(axis=1), proba, num_classes=2)
    eps = np.finfo(np.float64).eps
    assert math.isfinite(m["log_loss"])
    assert m["log_loss"] == pytest.approx(-(2 * math.log(1 - eps) + math.log(eps)) / 3)
    assert m["brier"] == pytest.approx(2 / 3)


def test_float32_softmax_rows_are_accepted():
    y, pred, proba = _example(5)
    m32 = classification_metrics(y, pred, proba.astype(np.float32), num_classes=5)
    m64 = classification_metrics(y, pred, proba, num_classes=5)
    assert m32["log_loss"] == pytest.approx(m64["log_loss"], rel=1e-5)


def test_metrics_registry_covers_every_key():
    keys = set()
    for c in (2, 3, 5):
        y, pred, proba = _example(c)
        keys |= set(classification_metrics(y, pred, proba, num_classes=c, minority_classes=[0]))
    for key in keys:
        info = metric_info(key)
        assert info.description and info.name in METRICS
        assert info.needs_proba == (key in PROBA_KEYS)
    covered = {metric_info(k).name for k in keys}
    assert covered == set(METRICS)  # and no stale entries
    lower_is_better = {name for name, info in METRICS.items() if not info.higher_is_better}
    assert lower_is_better == {"log_loss", "brier", "ece", "adaptive_ece"}
    assert metric_info("test/recall_class_12").name == "recall_class_<k>"
    with pytest.raises(KeyError, match="Available metrics"):
        metric_info("val/accuracy_score")


BAD_INPUTS = [
    (dict(y_pred=[0, 1]), ValueError, "'y_pred'.*same length"),
    (dict(y_true=[0, 1, 5]), ValueError, r"'y_true'.*range \[0, 2\].*Got 5"),
    (dict(y_pred=[0, -1, 1]), ValueError, r"'y_pred'.*range \[0, 2\].*Got -1"),
    (dict(y_true=[[0, 1, 2]]), ValueError, "'y_true'.*1-D"),
    (dict(y_true=[0.0, 0.5, 1.0]), ValueError, "'y_true'.*integer"),
    (dict(y_true=["a", "b", "c"]), ValueError, "'y_true'.*integer"),
    (dict(y_true=[], y_pred=[]), ValueError, "'y_true'.*empty"),
    (dict(proba=np.full((3, 2), 0.5)), ValueError, r"'proba'.*shape.*\(3, 3\)"),
    (dict(proba=np.full((2, 3), 1 / 3)), ValueError, r"'proba'.*shape"),
    (dict(proba=[[0.5, 0.2, 0.1]] * 3), ValueError, "'proba'.*rows summing to 1"),
    (dict(proba=[[2.0, -0.5, -0.5]] * 3), ValueError, r"'proba'.*\[0, 1\]"),
    (dict(proba=[[np.nan, 0.5, 0.5]] * 3), ValueError, "'proba'.*finite"),
    (dict(num_classes=1), ValueError, "'num_classes'.*>= 2"),
    (dict(num_classes=3.0), TypeError, "'num_classes'.*int"),
    (dict(minority_classes=[3]), ValueError, r"'minority_classes'.*\[0, 2\].*Got 3"),
    (dict(minority_classes=3), TypeError, "'minority_classes'.*sequence"),
]


@pytest.mark.parametrize(("override", "error", "match"), BAD_INPUTS)
def test_bad_inputs_raise(override, error, match):
    kwargs = dict(y_true=[0, 1, 2], y_pred=[0, 1, 1], proba=np.eye(3), num_classes=3, minority_classes=())
    kwargs.update(override)
    with pytest.raises(error, match=match):
        classification_metrics(kwargs.pop("y_true"), kwargs.pop("y_pred"), kwargs.pop("proba"), **kwargs)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: expected_calibration_error([0, 1], [[1, 0], [0, 1]], n_bins=0), "'n_bins'.*>= 1"),
        (lambda: adaptive_calibration_error([0, 2], [[1, 0], [0, 1]]), r"'y_true'.*\[0, 1\]"),
        (lambda: expected_calibration_error([0, 1], [1.0, 0.0]), "'proba'.*2-D"),
        (lambda: multiclass_brier([0, 1], [[1, 0], [0, 1]], 3), r"'proba'.*shape.*\(2, 3\)"),
        (lambda: confusion([0, 1], [0, 1, 1], 2), "'y_pred'.*same length"),
        (lambda: per_class_table([0, 1], [0, 1], num_classes=2, class_names=["a"]), "'class_names'.*2"),
        (lambda: per_class_table([0, 1], [0, 1], num_classes=2, train_counts=[5]), "'train_counts'"),
    ],
)
def test_bad_inputs_of_helpers(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_confusion_matches_sklearn_and_keeps_absent_classes():
    y, pred, _ = _example(4)
    np.testing.assert_array_equal(confusion(y, pred, 4), skm.confusion_matrix(y, pred, labels=range(4)))
    cm = confusion([0, 0, 1], [0, 1, 1], 4)
    assert cm.shape == (4, 4) and cm.sum() == 3 and cm[0, 1] == 1


def test_per_class_table():
    y, pred, _ = _example(4)
    table = per_class_table(y, pred, num_classes=4, class_names=list("abcd"), train_counts=[100, 30, 10, 3])
    assert list(table.columns) == ["class", "name", "train_count", "support", "precision", "recall", "f1"]
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=range(4), zero_division=0)
    np.testing.assert_allclose(table[["precision", "recall", "f1"]].to_numpy(), np.c_[p, r, f])
    assert table["support"].tolist() == s.tolist()
    assert table["name"].tolist() == ["a", "b", "c", "d"]
    assert table["train_count"].tolist() == [100, 30, 10, 3]

    bare = per_class_table([0, 0, 1], [0, 1, 1], num_classes=3)
    assert bare["name"].tolist() == ["0", "1", "2"]
    assert bare["train_count"].isna().all() and str(bare["train_count"].dtype) == "Int64"
    assert bare.loc[2, "support"] == 0 and bare.loc[2, "precision"] == 0.0
    assert pd.isna(bare.loc[2, "recall"]) and pd.isna(bare.loc[2, "f1"])


# ------------------------------------------------------------------------------------------------------------
# plots


def _png(tmp_path, num_classes, **kwargs):
    from matplotlib.image import imread

    rng = np.random.default_rng(num_classes)
    cm = rng.integers(0, 20, size=(num_classes, num_classes)) + 30 * np.eye(num_classes, dtype=int)
    cm[-1] = 0  # a class with no test samples must not break row normalisation
    names = [f"class_{k}" for k in range(num_classes)]
    path = confusion_matrix_figure(cm, names, tmp_path / "sub" / f"cm_{num_classes}.png", **kwargs)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5_000
    return path, imread(path)


def test_confusion_matrix_png(tmp_path):
    path, img = _png(tmp_path, 4, title="ce @ rho=100")
    assert path == tmp_path / "sub" / "cm_4.png" and path.is_file()
    assert img.ndim == 3 and min(img.shape[:2]) >= 400
    _, raw = _png(tmp_path, 5, normalize=False)
    assert raw.shape[0] > 0


def test_png_bytes_decode_to_the_same_pixels():
    """The confusion-matrix PNG is written by plots.png_bytes (unfiltered rows, zlib level 1): Pillow and
    matplotlib read back exactly the pixels given, CRCs checked; odd sizes, flat and noisy rows alike."""
    import io

    from matplotlib.image import imread
    from PIL import Image

    from lossbench.plots import png_bytes

    rng = np.random.default_rng(0)
    for shape in [(37, 53, 3), (1, 1, 3), (600, 650, 3)]:
        rgb = rng.integers(0, 256, size=shape, dtype=np.uint8)
        rgb[: shape[0] // 2] = (8, 81, 156)  # flat rows
        data = png_bytes(rgb)
        Image.open(io.BytesIO(data)).verify()  # chunk CRCs and structure
        img = Image.open(io.BytesIO(data))
        assert img.mode == "RGB" and img.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(img), rgb)
        assert np.array_equal(np.round(imread(io.BytesIO(data), format="png") * 255).astype(np.uint8), rgb)
    for bad in (np.zeros((4, 4)), np.zeros((4, 4, 4), dtype=np.uint8), np.zeros((0, 4, 3), dtype=np.uint8)):
        with pytest.raises(ValueError, match=r"\[H, W, 3\] RGB array of uint8"):
            png_bytes(bad)


def test_confusion_matrix_file_holds_the_drawn_image(tmp_path):
    from PIL import Image

    from lossbench import plots

    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    path = confusion_matrix_figure(cm, ["a", "b", "c"], tmp_path / "cm.png", title="t")
    drawn = plots._draw(
        cm / cm.sum(1, keepdims=True),
        ["a", "b", "c"],
        fmt=".2f",
        vmax=1.0,
        cbar_label="fraction of true class (row-normalised)",
        title="t",
    )
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(drawn))


def test_confusion_matrix_png_grows_with_classes(tmp_path):
    shapes = [_png(tmp_path, c)[1].shape for c in (3, 10, 25)]  # 25 > 20: annotations hidden
    heights, widths = [s[0] for s in shapes], [s[1] for s in shapes]
    assert heights[0] < heights[1] < heights[2]
    assert widths[0] < widths[1] < widths[2]


def test_confusion_matrix_figure_rejects_mismatched_names(tmp_path):
    with pytest.raises(ValueError, match=r"'class_names'.*3"):
        confusion_matrix_figure(np.eye(3), ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"'cm'.*square"):
        confusion_matrix_figure(np.ones((2, 3)), ["a", "b"], tmp_path / "x.png")
