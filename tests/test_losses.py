"""Tests for lossbench.losses: references, degenerate cases, stability, validation, configs."""

from __future__ import annotations

import ast
import importlib
import json
import math
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import ListConfig, OmegaConf
from sklearn.metrics import brier_score_loss, hinge_loss
from torch import nn

from lossbench.losses import (
    LOSSES,
    InvalidLossParameterError,
    LossModule,
    available_losses,
    build_loss,
    posthoc_logit_adjust,
    register_loss,
    validate_loss_params,
)
from lossbench.losses._validation import Real
from lossbench.losses.ldam import ldam_loss

ROOT = Path(__file__).resolve().parents[1]
CONF_LOSS = ROOT / "conf" / "loss"

# Tiny hand example: 2 samples, 3 classes.
Z = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([0, 2])
COUNTS = [6, 3, 1]
# -log p_y per row: log(e + 1 + 1/e) - 1 and log(2 + e^2) - 0.
NLL = (0.40760596444438035, 2.2395447662218846)

# Random batch for comparisons against torch / sklearn references.
C = 5
GEN = torch.Generator().manual_seed(0)
ZR = torch.randn(32, C, generator=GEN, dtype=torch.float64) * 3
YR = torch.randint(0, C, (32,), generator=GEN)
COUNTS_R = [500, 120, 40, 9, 2]


def loss_of(name, logits=Z, target=Y, counts=None, **params):
    counts = counts or (COUNTS if logits.shape[1] == 3 else COUNTS_R)
    return build_loss(name, num_classes=logits.shape[1], class_counts=counts, **params)(logits, target).item()


# --------------------------------------------------------------------------------------------- hand values
@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("ce", {}, (NLL[0] + NLL[1]) / 2),
        # balanced w = 10 / (3 * [6, 3, 1]); the mean divides by w_0 + w_2, not by N.
        ("weighted_ce", {}, (10 / 18 * NLL[0] + 10 / 3 * NLL[1]) / (10 / 18 + 10 / 3)),
        ("weighted_ce", {"weights": [1, 5, 3]}, (1 * NLL[0] + 3 * NLL[1]) / 4),
        # (1 - p_y)^2 * nll with p_y = 0.66524..., 0.10650...
        ("focal", {}, ((1 - 0.6652409557748219) ** 2 * NLL[0] + (1 - 0.10650697891920075) ** 2 * NLL[1]) / 2),
        ("focal", {"gamma": 0, "alpha": [2, 1, 0.5]}, (2 * NLL[0] + 0.5 * NLL[1]) / 2),
        ("label_smoothing", {}, 1.3402420319997992),
        ("logit_adjusted", {}, 1.7803818316955198),  # CE(z + log([.6, .3, .1]))
        ("class_balanced", {}, 1.9777831388118419),  # alpha = [0.3334, 0.6667, 1.9999]
        ("ldam", {"scale": 1.0}, 1.611507294947863),  # Delta = 0.5 * [6, 3, 1]^-1/4 / 1
        # WW row 2: (1 - 0 + 0) + (1 - 0 + 2) = 4, / C; row 1 is 0.
        ("hinge", {}, (0 + 4 / 3) / 2),
        ("hinge", {"variant": "crammer_singer"}, (0 + 3) / 2),
        ("hinge", {"margin": 2.0}, ((1 + 0) / 3 + (2 + 4) / 3) / 2),
        ("squared_hinge", {}, (0 + (1 + 9) / 3) / 2),
        ("squared_hinge", {"variant": "crammer_singer"}, (0 + 9) / 2),
        # rows: (1-1)^2 + 0 + 1 and 0 + 4 + (0-1)^2, / C, mean over N.
        ("mse", {}, (1 + 5) / 6),
        # k = 2, M = 3: 2 (1-3)^2 + 0 + 1 = 9 and 0 + 4 + 2 (0-3)^2 = 22.
        ("mse", {"rescale_k": 2, "rescale_m": 3}, (9 + 22) / 6),
        ("brier", {}, 0.8045408460882633),
        # p_y = 0.66524..., 0.10650... (as for focal): 2 (1 - p_y) per row, and (1 - p_y^q) / q
        ("mae", {}, (2 * (1 - 0.6652409557748219) + 2 * (1 - 0.10650697891920075)) / 2),
        ("gce", {}, ((1 - 0.6652409557748219**0.7) / 0.7 + (1 - 0.10650697891920075**0.7) / 0.7) / 2),
        (
            "gce",
            {"q": 0.25},
            ((1 - 0.6652409557748219**0.25) / 0.25 + (1 - 0.10650697891920075**0.25) / 0.25) / 2,
        ),
    ],
)
def test_hand_computed_values(name, params, expected):
    # per-class weights, margins and priors are float32 buffers, hence rel=1e-6
    assert loss_of(name, **params) == pytest.approx(expected, rel=1e-6)


def test_ldam_margins_by_hand():
    loss = build_loss("ldam", num_classes=2, class_counts=[16, 1], max_margin=0.5)
    # n^-1/4 = [1/2, 1], rescaled so the rarest class gets max_margin.
    assert loss.margins.tolist() == pytest.approx([0.25, 0.5])


# ---------------------------------------------------------------------------------- library references
def onehot(target, num_classes=C):
    return F.one_hot(target, num_classes).double()


def test_ce_equals_torch():
    assert loss_of("ce", ZR, YR) == pytest.approx(nn.CrossEntropyLoss()(ZR, YR).item(), rel=1e-12)


@pytest.mark.parametrize("weights", ["balanced", [0.5, 1.0, 2.0, 4.0, 8.0]])
def test_weighted_ce_equals_torch_weight(weights):
    counts = np.array(COUNTS_R, dtype=float)
    w = counts.sum() / (C * counts) if weights == "balanced" else np.array(weights)
    expected = nn.CrossEntropyLoss(weight=torch.tensor(w))(ZR, YR).item()
    assert loss_of("weighted_ce", ZR, YR, COUNTS_R, weights=weights) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("weighted_ce", {"weights": "balanced"}),
        ("weighted_ce", {"weights": [0.5, 1.0, 2.0, 4.0, 8.0]}),
        ("class_balanced", {"beta": 0.0}),
        ("class_balanced", {"beta": 0.9}),
        ("class_balanced", {"beta": 0.9999}),
    ],
)
@pytest.mark.parametrize("counts", [COUNTS_R, [1, 1, 1, 1, 1], [5000, 700, 90, 8, 1]])
def test_class_weights_without_torch_are_the_built_losses_weights(name, params, counts):
    """scikit-learn models fit with ``class_weights`` (NumPy); torch losses hold the same numbers, bit for
    bit."""
    from lossbench.losses import class_weights

    got = class_weights(name, num_classes=C, class_counts=counts, **params)
    built = build_loss(name, num_classes=C, class_counts=counts, **params).weight
    assert got.dtype == np.float32 and built.dtype == torch.float32
    assert np.array_equal(got, built.numpy())
    if name == "class_balanced":
        assert got.sum() == pytest.approx(C, rel=1e-6)
    elif params["weights"] == "balanced":
        n = np.asarray(counts, dtype=float)
        np.testing.assert_allclose(got, n.sum() / (C * n), rtol=1e-7)


def test_class_weights_are_checked_as_build_loss_checks_them():
    from lossbench.losses import class_weights

    with pytest.raises(ValueError, match=r"'focal' is not realised as class weights.*'class_balanced'"):
        class_weights("focal", num_classes=C, class_counts=COUNTS_R)
    with pytest.raises(ValueError, match="needs class_counts"):
        class_weights("class_balanced", num_classes=C)
    with pytest.raises(InvalidLossParameterError, match="beta"):
        class_weights("class_balanced", num_classes=C, class_counts=COUNTS_R, beta=1.5)
    with pytest.raises(ValueError, match="class_counts"):
        class_weights("weighted_ce", num_classes=C, class_counts=[1, 2], weights="balanced")


def test_class_balanced_equals_torch_weight():
    beta = 0.999
    counts = np.array(COUNTS_R, dtype=float)
    alpha = (1 - beta) / (1 - beta**counts)
    alpha = alpha / alpha.sum() * C
    expected = nn.CrossEntropyLoss(weight=torch.tensor(alpha))(ZR, YR).item()
    assert loss_of("class_balanced", ZR, YR, COUNTS_R, beta=beta) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("eps", [0.1, 0.35])
def test_label_smoothing_equals_torch(eps):
    expected = nn.CrossEntropyLoss(label_smoothing=eps)(ZR, YR).item()
    assert loss_of("label_smoothing", ZR, YR, smoothing=eps) == pytest.approx(expected, rel=1e-12)


def test_logit_adjusted_equals_ce_of_shifted_logits():
    log_prior = torch.log(torch.tensor(COUNTS_R, dtype=torch.float64) / sum(COUNTS_R))
    expected = F.cross_entropy(ZR + 0.7 * log_prior, YR).item()
    assert loss_of("logit_adjusted", ZR, YR, COUNTS_R, tau=0.7) == pytest.approx(expected, rel=1e-6)


def test_ldam_equals_ce_of_margin_shifted_scaled_logits():
    m = np.array(COUNTS_R, dtype=float) ** -0.25
    delta = torch.tensor(m * 0.3 / m.max())
    expected = F.cross_entropy(10.0 * (ZR - delta[YR][:, None] * onehot(YR)), YR).item()
    got = loss_of("ldam", ZR, YR, COUNTS_R, max_margin=0.3, scale=10)
    assert got == pytest.approx(expected, rel=1e-6)


def test_focal_equals_naive_formula_values_and_gradients():
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4, 2.0], dtype=torch.float64)
    z1 = ZR.clone().requires_grad_(True)
    z2 = ZR.clone().requires_grad_(True)
    got = build_loss("focal", num_classes=C, gamma=1.5, alpha=alpha.tolist())(z1, YR)
    p_y = F.softmax(z2, dim=1).gather(1, YR[:, None]).squeeze(1)
    expected = (-alpha[YR] * (1 - p_y) ** 1.5 * torch.log(p_y)).mean()
    got.backward()
    expected.backward()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)  # alpha is a float32 buffer
    assert torch.allclose(z1.grad, z2.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("margin", [1.0, 0.4])
@pytest.mark.parametrize(("name", "p"), [("hinge", 1), ("squared_hinge", 2)])
def test_weston_watkins_equals_multimarginloss(name, p, margin):
    expected = nn.MultiMarginLoss(p=p, margin=margin)(ZR, YR).item()
    assert loss_of(name, ZR, YR, margin=margin) == pytest.approx(expected, rel=1e-12)


def test_crammer_singer_equals_sklearn_hinge_loss():
    expected = hinge_loss(YR.numpy(), ZR.numpy(), labels=np.arange(C))
    assert loss_of("hinge", ZR, YR, variant="crammer_singer") == pytest.approx(expected, rel=1e-12)


def test_mse_equals_torch_mse_loss_on_onehot():
    expected = F.mse_loss(ZR, onehot(YR)).item()
    assert loss_of("mse", ZR, YR) == pytest.approx(expected, rel=1e-12)


def test_mae_is_the_l1_distance_of_probabilities_to_the_one_hot_target():
    proba = F.softmax(ZR, dim=1)
    expected = (proba - onehot(YR)).abs().sum(dim=1).mean().item()
    assert loss_of("mae", ZR, YR) == pytest.approx(expected, rel=1e-12)


def test_gce_spans_ce_and_mae():
    # Zhang & Sabuncu 2018: q -> 0 is cross-entropy, q = 1 is 1 - p_y = MAE / 2
    ce = nn.CrossEntropyLoss()(ZR, YR).item()
    assert loss_of("gce", ZR, YR, q=1e-7) == pytest.approx(ce, rel=1e-5)
    assert loss_of("gce", ZR, YR, q=1.0) == pytest.approx(loss_of("mae", ZR, YR) / 2, rel=1e-12)
    # between the two, monotone in q (p_y^q grows with q for p_y < 1, so the loss falls)
    values = [loss_of("gce", ZR, YR, q=q) for q in (0.1, 0.4, 0.7, 1.0)]
    assert values == sorted(values, reverse=True) and values[0] < ce


def test_gce_is_stable_for_huge_logits():
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=torch.float32, requires_grad=True)
    loss = build_loss("gce", num_classes=3)(z, torch.tensor([0, 0]))
    loss.backward()
    assert loss.item() == pytest.approx((0 + 1 / 0.7) / 2) and torch.isfinite(z.grad).all()


def test_each_loss_owns_its_map_from_logits_to_probabilities():
    z = ZR.numpy()
    softmax = np.exp(z - z.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    assert np.allclose(LOSSES["ce"].probability(z), softmax, rtol=1e-12)
    # LDAM trains softmax(scale (z - margin)); its model's probabilities are softmax(scale z), not softmax(z)
    scaled = np.exp(30 * z - (30 * z).max(1, keepdims=True))
    scaled /= scaled.sum(1, keepdims=True)
    assert np.allclose(LOSSES["ldam"].probability(z), scaled, rtol=1e-12)  # default scale 30
    assert np.allclose(LOSSES["ldam"].probability(z, {"scale": 1.0}), softmax, rtol=1e-12)
    assert LOSSES["hinge"].probability(z) is None and LOSSES["mse"].probability(z) is None
    assert np.allclose(LOSSES["ldam"].probability(z).sum(1), 1.0)


def test_brier_equals_sklearn_multiclass_brier():
    proba = F.softmax(ZR, dim=1).numpy()
    expected = brier_score_loss(YR.numpy(), proba, labels=np.arange(C))
    assert loss_of("brier", ZR, YR) == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------------------------ degenerate equivalences
def ce_r(z=ZR):
    return F.cross_entropy(z, YR).item()


@pytest.mark.parametrize(
    ("name", "params", "counts"),
    [
        ("focal", {"gamma": 0.0}, None),
        ("logit_adjusted", {"tau": 0.0}, COUNTS_R),
        ("class_balanced", {"beta": 0.0}, COUNTS_R),
        ("class_balanced", {"beta": 1e-12}, COUNTS_R),
        ("class_balanced", {"beta": 0.9999}, [7] * C),  # equal counts: equal weights
        ("weighted_ce", {"weights": [2.5] * C}, None),
        ("weighted_ce", {"weights": "balanced"}, [40] * C),
        ("label_smoothing", {"smoothing": 0.0}, None),
        ("logit_adjusted", {"tau": 1.0}, [3] * C),  # uniform prior shifts all logits equally
    ],
)
def test_degenerate_cases_equal_ce(name, params, counts):
    zf = ZR.float()  # float32, the training dtype
    got = build_loss(name, num_classes=C, class_counts=counts, **params)(zf, YR).item()
    assert got == pytest.approx(F.cross_entropy(zf, YR).item(), rel=1e-6)


def test_class_balanced_tends_to_ce_as_beta_to_zero():
    betas = (0.9, 0.5, 0.1, 0.01)
    losses = [build_loss("class_balanced", num_classes=C, class_counts=COUNTS_R, beta=b) for b in betas]
    assert all(loss_fn.weight.sum().item() == pytest.approx(C) for loss_fn in losses)  # sum(alpha) = C
    dist = [(loss_fn.weight - 1).abs().max().item() for loss_fn in losses]
    assert dist == sorted(dist, reverse=True) and dist[0] > 1 and dist[-1] < 1e-3
    assert losses[-1](ZR, YR).item() == pytest.approx(ce_r(), rel=1e-4)


def test_ldam_zero_margin_scale_one_is_ce():
    assert ldam_loss(ZR, YR, torch.zeros(C), scale=1.0).item() == pytest.approx(ce_r(), rel=1e-12)
    # and with scale s it is CE of s * z
    assert ldam_loss(ZR, YR, torch.zeros(C), scale=3.0).item() == pytest.approx(ce_r(3 * ZR), rel=1e-12)


# --------------------------------------------------------------------------------- numerical stability
EXTREME_CASES = [(name, {}) for name in available_losses()] + [
    ("focal", {"gamma": 0.5, "alpha": [1.0, 0.0, 2.0]}),
    ("focal", {"gamma": 0.2}),
    ("hinge", {"variant": "crammer_singer"}),
    ("squared_hinge", {"variant": "crammer_singer"}),
    ("hinge", {"variant": "one_vs_rest"}),
    ("ldam", {"drw_start": 0.5}),
    ("label_smoothing", {"smoothing": 0.9}),
]


@pytest.mark.parametrize(("name", "params"), EXTREME_CASES)
def test_finite_loss_and_gradients_at_extreme_logits(name, params):
    # right and confidently wrong rows, float32; p_y rounds to exactly 1 or 0.
    logits = torch.tensor(
        [[100.0, -100.0, -100.0], [-100.0, 100.0, -100.0], [100.0, 100.0, -100.0], [-100.0, 100.0, 100.0]],
        requires_grad=True,
    )
    target = torch.tensor([0, 0, 1, 0])
    loss_fn = build_loss(name, num_classes=3, class_counts=COUNTS, **params)
    loss_fn.on_epoch_start(9, 10)
    loss = loss_fn(logits, target)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", available_losses())
def test_every_loss_is_a_module_returning_a_scalar(name):
    loss_fn = build_loss(name, num_classes=C, class_counts=COUNTS_R)
    assert isinstance(loss_fn, nn.Module)
    loss_fn.on_epoch_start(0, 3)  # every loss accepts the hook
    out = loss_fn(ZR.float(), YR)
    assert out.shape == () and out.dtype == torch.float32
    with pytest.raises(ValueError, match="built for 5"):
        loss_fn(ZR[:, :3].float(), YR.clamp(max=2))


# ------------------------------------------------------------------------------------------ validation
FLOAT_0_INF = "a float in the range [0, inf)"
FLOAT_POS = "a float in the range (0, inf)"
FLOAT_0_1 = "a float in the range [0, 1)"


def must(loss, param, allowed, got):
    """The full sklearn-shaped message."""
    return f"The {param!r} parameter of loss {loss!r} must be {allowed}. Got {got} instead."


ALPHA = "None or an array-like of 3 non-negative floats (one per class)"
WEIGHTS = "a str among {'balanced'} or an array-like of 3 positive floats (one per class)"
DRW = "None or a float in the range (0, 1]"
VARIANT = "a str among {'crammer_singer', 'one_vs_rest', 'weston_watkins'}"
BAD_PARAMS = [
    ("focal", {"gamma": -1.0}, must("focal", "gamma", FLOAT_0_INF, "-1.0")),
    ("focal", {"gamma": "2"}, must("focal", "gamma", FLOAT_0_INF, "'2'")),
    ("focal", {"gamma": True}, must("focal", "gamma", FLOAT_0_INF, "True")),
    ("focal", {"gamma": float("nan")}, must("focal", "gamma", FLOAT_0_INF, "nan")),
    ("focal", {"gamma": float("inf")}, must("focal", "gamma", FLOAT_0_INF, "inf")),
    ("focal", {"alpha": [1.0, 1.0]}, must("focal", "alpha", ALPHA, "[1.0, 1.0]")),
    ("focal", {"alpha": [1.0, -1.0, 1.0]}, must("focal", "alpha", ALPHA, "[1.0, -1.0, 1.0]")),
    ("focal", {"alpha": "balanced"}, must("focal", "alpha", ALPHA, "'balanced'")),
    ("focal", {"alpha": [1, "a", 2]}, must("focal", "alpha", ALPHA, "[1, 'a', 2]")),
    ("weighted_ce", {"weights": "inverse"}, must("weighted_ce", "weights", WEIGHTS, "'inverse'")),
    ("weighted_ce", {"weights": [1.0, 0.0, 2.0]}, must("weighted_ce", "weights", WEIGHTS, "[1.0, 0.0, 2.0]")),
    ("weighted_ce", {"weights": None}, must("weighted_ce", "weights", WEIGHTS, "None")),
    ("class_balanced", {"beta": 1.0}, must("class_balanced", "beta", FLOAT_0_1, "1.0")),
    ("class_balanced", {"beta": -0.1}, must("class_balanced", "beta", FLOAT_0_1, "-0.1")),
    ("label_smoothing", {"smoothing": 1}, must("label_smoothing", "smoothing", FLOAT_0_1, "1")),
    ("label_smoothing", {"smoothing": -0.1}, must("label_smoothing", "smoothing", FLOAT_0_1, "-0.1")),
    ("logit_adjusted", {"tau": -1}, must("logit_adjusted", "tau", FLOAT_0_INF, "-1")),
    ("ldam", {"max_margin": 0}, must("ldam", "max_margin", FLOAT_POS, "0")),
    ("ldam", {"scale": -1.0}, must("ldam", "scale", FLOAT_POS, "-1.0")),
    ("ldam", {"drw_start": 0.0}, must("ldam", "drw_start", DRW, "0.0")),
    ("ldam", {"drw_start": 1.5}, must("ldam", "drw_start", DRW, "1.5")),
    ("ldam", {"drw_start": "0.8"}, must("ldam", "drw_start", DRW, "'0.8'")),
    ("hinge", {"variant": "ovr"}, must("hinge", "variant", VARIANT, "'ovr'")),
    ("hinge", {"margin": 0.0}, must("hinge", "margin", FLOAT_POS, "0.0")),
    ("squared_hinge", {"margin": -1}, must("squared_hinge", "margin", FLOAT_POS, "-1")),
    ("squared_hinge", {"variant": None}, must("squared_hinge", "variant", VARIANT, "None")),
    ("mse", {"rescale_k": 0}, must("mse", "rescale_k", FLOAT_POS, "0")),
    ("mse", {"rescale_m": -2.0}, must("mse", "rescale_m", FLOAT_POS, "-2.0")),
    (
        "focal",
        {"gama": 1.0},
        "Unknown parameter 'gama' for loss 'focal'. Allowed parameters: 'gamma', 'alpha'. "
        "Did you mean 'gamma'?",
    ),
    ("ce", {"weights": "balanced"}, "Unknown parameter 'weights' for loss 'ce'. Allowed parameters: none"),
    ("brier", {"smoothing": 0.1}, "Unknown parameter 'smoothing' for loss 'brier'"),
]


def test_message_shape_literally():
    message = "The 'gamma' parameter of loss 'focal' must be a float in the range [0, inf). Got -1.0 instead."
    with pytest.raises(ValueError) as info:
        build_loss("focal", num_classes=3, gamma=-1.0)
    assert str(info.value) == message


@pytest.mark.parametrize("entry", ["build_loss", "validate_loss_params"])
@pytest.mark.parametrize(("name", "params", "message"), BAD_PARAMS)
def test_bad_parameters_are_reported(name, params, message, entry):
    with pytest.raises(ValueError, match=re.escape(message)):
        if entry == "build_loss":
            build_loss(name, num_classes=3, class_counts=COUNTS, **params)
        else:
            validate_loss_params(name, num_classes=3, **params)


def test_bad_types_are_also_type_errors():
    with pytest.raises(TypeError, match="'gamma'"):
        validate_loss_params("focal", gamma="2")
    with pytest.raises(TypeError, match="Unknown parameter 'gama'"):
        validate_loss_params("focal", gama=2)
    assert issubclass(InvalidLossParameterError, ValueError)


def test_validate_needs_no_counts_and_fills_defaults():
    assert validate_loss_params("focal", gamma=1) == {"gamma": 1.0, "alpha": None}
    assert isinstance(validate_loss_params("focal", gamma=1)["gamma"], float)
    assert validate_loss_params("ldam") == {
        "max_margin": 0.5,
        "scale": 30.0,
        "drw_start": None,
        "logits": "cosine",
    }
    # without num_classes the per-class length cannot be checked yet; build_loss checks it.
    assert validate_loss_params("weighted_ce", weights=(1, 2)) == {"weights": [1.0, 2.0]}
    with pytest.raises(ValueError, match="array-like of 3 positive floats"):
        build_loss("weighted_ce", num_classes=3, weights=(1, 2))


def test_unknown_loss_lists_available_names():
    message = f"Unknown loss 'focl'. Available losses: {', '.join(available_losses())}. Did you mean 'focal'?"
    with pytest.raises(ValueError, match=re.escape(message)):
        build_loss("focl", num_classes=3)
    with pytest.raises(ValueError, match="Available losses: brier, ce, "):
        validate_loss_params("cross_entropy")


@pytest.mark.parametrize("num_classes", [1, True, 2.0, None])
def test_bad_num_classes(num_classes):
    with pytest.raises(
        ValueError, match=re.escape("'num_classes' argument of build_loss must be an int in the")
    ):
        build_loss("ce", num_classes=num_classes)


COUNT_LOSSES = ["class_balanced", "ldam", "logit_adjusted", "weighted_ce"]


def test_needs_class_counts_metadata():
    assert sorted(n for n, spec in LOSSES.items() if spec.needs_class_counts) == COUNT_LOSSES
    assert LOSSES["weighted_ce"].requires_class_counts({"weights": [1.0, 2.0]}) is False


@pytest.mark.parametrize("name", COUNT_LOSSES)
@pytest.mark.parametrize(
    ("counts", "message"),
    [
        (None, "needs class_counts, the training count of each of the 3 classes; got None"),
        ([5, 3], "'class_counts' argument of build_loss (loss '{name}') must be an array-like of 3 positive"),
        (
            [5, -1, 3],
            "'class_counts' argument of build_loss (loss '{name}') must be an array-like of 3 positive",
        ),
        (
            [5, 0, 3],
            "'class_counts' argument of build_loss (loss '{name}') has a zero count for class(es) [1]",
        ),
        ("5,1,3", "'class_counts' argument of build_loss (loss '{name}') must be an array-like"),
    ],
)
def test_missing_or_bad_class_counts(name, counts, message):
    with pytest.raises(ValueError, match=re.escape(message.format(name=name))):
        build_loss(name, num_classes=3, class_counts=counts)


def test_class_counts_only_required_when_used():
    build_loss("weighted_ce", num_classes=3, weights=[1, 2, 3])  # explicit weights: no counts needed
    build_loss("focal", num_classes=3, class_counts=[5, 0, 3])  # a zero count is fine where counts are unused
    with pytest.raises(ValueError, match="must be an array-like of 3 non-negative numbers"):
        build_loss("ce", num_classes=3, class_counts=[5, 3])  # wrong length is always a caller bug


def test_probabilistic_metadata():
    assert sorted(n for n, spec in LOSSES.items() if not spec.probabilistic) == [
        "hinge",
        "mse",
        "squared_hinge",
    ]


# ------------------------------------------------------------------------ registry: torch only on build
TMP_LOSS = """
from lossbench.losses._registry import register_loss
from lossbench.losses._validation import Real, StrOptions

KINDS = ("a", "b")


@register_loss("tmp_loss", summary="s", probabilistic=False, needs_class_counts=lambda p: p["kind"] == "b",
               params={"kind": ("a", (StrOptions(set(KINDS)),)), "scale": (2, (Real(0.0, None),))})
def _build(*, num_classes, class_counts, kind, scale):
    import torch

    return ("built", num_classes, class_counts, kind, scale, torch.__name__)
"""


def _loss_package(root: Path) -> tuple[str, Path]:
    """A package ``lbtmp_<root>`` under ``root`` with the loss module ``mod.py`` (``TMP_LOSS``) and a private
    ``_helper.py`` that fails when imported (discovery skips private modules); returns (name, folder)."""
    package = f"lbtmp_{root.name.replace('-', '_')}"
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    (root / package / "mod.py").write_text(TMP_LOSS)
    (root / package / "_helper.py").write_text("raise ImportError('a private module was imported')\n")
    return package, root / package


def test_registry_imports_torch_only_when_a_loss_is_built(tmp_path):
    """In a fresh process: importing the registry (every loss module), listing, validating and the config's
    float params leave torch unimported, as does discovering a module added at runtime; building a loss
    imports it, and the loss equals the hand value: z = 0, C = 3, gamma = 1 -> (1 - 1/3) log 3."""
    package, folder = _loss_package(tmp_path)
    code = f"""
import json, sys
sys.path.insert(0, {str(tmp_path)!r})
import lossbench.config, lossbench.losses as L
from lossbench.losses._registry import discover
out = {{"names": L.available_losses(), "focal": L.validate_loss_params("focal", gamma=1),
       "floats": lossbench.config.loss_float_params("focal"),
       "modules": sorted(m for m in sys.modules if m.startswith("lossbench.losses.") and "._" not in m)}}
out["discovered"] = discover({package!r}, [{str(folder)!r}])
out["tmp"] = L.validate_loss_params("tmp_loss", kind="b")
out["torch_before_build"] = "torch" in sys.modules
loss_fn = L.build_loss("focal", num_classes=3, gamma=1)
out["torch_after_build"] = "torch" in sys.modules
import torch
out["value"] = loss_fn(torch.zeros(2, 3), torch.tensor([0, 2])).item()
print(json.dumps(out))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["names"] == available_losses() and len(out["names"]) == len(list(CONF_LOSS.glob("*.yaml")))
    assert out["focal"] == {"gamma": 1.0, "alpha": None} and out["floats"] == ["gamma"]
    package_dir = ROOT / "lossbench" / "losses"
    assert out["modules"] == sorted(f"lossbench.losses.{p.stem}" for p in package_dir.glob("[!_]*.py"))
    assert out["discovered"] == [f"{package}.mod"]
    assert out["tmp"] == {"kind": "b", "scale": 2.0}
    assert out["torch_before_build"] is False
    assert out["torch_after_build"] is True
    assert out["value"] == pytest.approx(2 / 3 * math.log(3), rel=1e-6)


def test_losses_validate_and_sklearn_runs_go_without_importing_torch():
    """Validating every loss and whole scikit-learn runs (class weights from weighted_ce and class_balanced
    included) never import torch (~2 s)."""
    code = """
import sys
from tests.conftest import compose_cfg
import lossbench.losses as L
from lossbench.pipeline import run
for name in L.available_losses():
    L.validate_loss_params(name, num_classes=3)
results = [
    run(compose_cfg(["model=logreg", f"loss={loss}", "data=synthetic", "data.n_samples=300",
                     "data.n_classes=3", "imbalance.ratio=5"]))
    for loss in ("logit_adjusted", "weighted_ce", "class_balanced")
]
print("torch" in sys.modules)
print(" ".join(str(round(r.metrics["test/accuracy"], 6)) for r in results))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    torch_imported, accuracy = proc.stdout.splitlines()[-2:]
    assert torch_imported == "False"
    assert all(0.5 < float(a) <= 1.0 for a in accuracy.split()) and len(accuracy.split()) == 3


@pytest.fixture
def registry():
    from lossbench.losses import _registry

    before = dict(_registry._REGISTRY)
    yield _registry
    _registry._REGISTRY.clear()
    _registry._REGISTRY.update(before)
    for module in [m for m in sys.modules if m.startswith("lbtmp_")]:
        del sys.modules[module]


def test_discover_registers_a_module_added_at_runtime(tmp_path, monkeypatch, registry):
    package, folder = _loss_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tmp_loss" not in LOSSES
    assert registry.discover(package, [str(folder)]) == [f"{package}.mod"]  # _helper.py is not imported
    spec = LOSSES["tmp_loss"]
    assert (spec.name, dict(spec.params), spec.probabilistic, spec.needs_class_counts) == (
        "tmp_loss",
        {"kind": "a", "scale": 2.0},
        False,
        False,
    )
    assert spec.factory is sys.modules[f"{package}.mod"]._build
    assert spec.requires_class_counts({"kind": "b", "scale": 1.0}) is True
    assert "tmp_loss" in available_losses()
    with pytest.raises(InvalidLossParameterError, match="The 'kind' parameter of loss 'tmp_loss' must be"):
        validate_loss_params("tmp_loss", kind="c")
    with pytest.raises(ValueError, match=r"'tmp_loss' with parameters .* needs class_counts"):
        build_loss("tmp_loss", num_classes=2, kind="b")
    built = build_loss("tmp_loss", num_classes=2, class_counts=[1, 3], kind="b", scale=1)
    assert built == ("built", 2, [1.0, 3.0], "b", 1.0, "torch")


def test_duplicate_registration_is_refused():
    with pytest.raises(RuntimeError, match=r"'ce' is registered twice: by .*cross_entropy\._build_ce and by"):
        register_loss("ce", summary="x", params={}, probabilistic=True)(lambda **kw: None)


def test_a_bad_default_is_refused_at_registration(registry):
    with pytest.raises(InvalidLossParameterError, match="The 'gamma' parameter of loss 'tmp_bad' must be"):
        register_loss(
            "tmp_bad", summary="x", params={"gamma": (-1.0, (Real(0.0, None),))}, probabilistic=True
        )
    assert "tmp_bad" not in LOSSES


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("brier", "BrierLoss"),
        ("cross_entropy", "CrossEntropy"),
        ("focal", "FocalLoss"),
        ("hinge", "MulticlassHingeLoss"),
        ("ldam", "LDAMLoss"),
        ("logit_adjusted", "LogitAdjustedLoss"),
        ("mse", "SquareLoss"),
        ("robust", "MAELoss"),
        ("robust", "GeneralizedCrossEntropy"),
    ],
)
def test_loss_classes_defined_on_first_access_are_plain_module_classes(module, name):
    mod = importlib.import_module(f"lossbench.losses.{module}")
    cls = getattr(mod, name)
    assert issubclass(cls, LossModule) and getattr(mod, name) is cls
    assert (cls.__module__, cls.__qualname__) == (mod.__name__, name)  # so pickle finds it
    assert name in mod.__all__ and all(hasattr(mod, n) for n in mod.__all__)
    with pytest.raises(AttributeError, match=f"module 'lossbench.losses.{module}' has no attribute 'Nope'"):
        mod.Nope  # noqa: B018


def test_a_built_loss_pickles_with_its_buffers_and_state():
    loss_fn = build_loss("ldam", num_classes=3, class_counts=COUNTS, drw_start=0.5)
    loss_fn.on_epoch_start(1, 2)
    copy = pickle.loads(pickle.dumps(loss_fn))
    assert type(copy) is type(loss_fn) and copy.drw_active is True
    assert torch.equal(copy.drw_weights, loss_fn.drw_weights) and torch.equal(copy.margins, loss_fn.margins)
    assert copy(Z, Y).item() == loss_fn(Z, Y).item()


# --------------------------------------------------------------------------------------------- configs
def test_one_yaml_per_registered_loss():
    assert sorted(p.stem for p in CONF_LOSS.glob("*.yaml")) == available_losses()


@pytest.mark.parametrize("name", available_losses())
def test_yaml_matches_registry_and_builds(name):
    path = CONF_LOSS / f"{name}.yaml"
    assert path.read_text().startswith("# "), "first line: a comment saying what the loss is"
    cfg = OmegaConf.load(path)
    assert cfg.name == name
    params = {k: v for k, v in cfg.items() if k not in ("name", "tune")}
    defaults = dict(LOSSES[name].params)
    # its search space for tuned sweeps (lossbench.tune) names only its own parameters
    assert set(cfg.get("tune") or {}) <= set(defaults), f"{path.name}: tune: {list(cfg.get('tune') or {})}"
    # same keys in the same order, same values of the same types (2 would pass for 2.0 otherwise)
    assert list(params) == list(defaults), f"{path.name}: keys {list(params)}, registered {list(defaults)}"
    assert {k: (type(v), v) for k, v in params.items()} == {k: (type(v), v) for k, v in defaults.items()}
    loss_fn = build_loss(cfg.name, num_classes=C, class_counts=COUNTS_R, **params)
    assert torch.isfinite(loss_fn(ZR.float(), YR))


def test_real_valued_params_of_a_loss():
    """config.to_container turns these into floats (an int from the command line, 1 -> 1.0)."""
    from lossbench.config import loss_float_params

    assert loss_float_params("focal") == ("gamma",)
    assert loss_float_params("ldam") == ("max_margin", "scale")
    assert loss_float_params("weighted_ce") == ()
    assert loss_float_params("no_such_loss") == loss_float_params(None) == ()


def test_list_params_accept_listconfig_and_ints():
    cfg = OmegaConf.create({"name": "focal", "gamma": 1, "alpha": [1, 2, 3]})
    assert isinstance(cfg.alpha, ListConfig)
    loss_fn = build_loss(cfg.name, num_classes=3, **{k: v for k, v in cfg.items() if k != "name"})
    expected = (1 - 0.6652409557748219) * NLL[0] * 1 + (1 - 0.10650697891920075) * NLL[1] * 3
    assert loss_fn(Z, Y).item() == pytest.approx(expected / 2, rel=1e-9)


# ------------------------------------------------------------------------------------ post-hoc and DRW
def test_posthoc_logit_adjust_by_hand():
    scores = np.array([[0.5, 0.0], [2.0, 0.0]])
    # log pi = [log 0.75, log 0.25] = [-0.2877, -1.3863]
    out = posthoc_logit_adjust(scores, [3, 1])
    np.testing.assert_allclose(
        out, [[0.5 - math.log(0.75), -math.log(0.25)], [2 - math.log(0.75), 1.3862944]]
    )
    assert out.argmax(1).tolist() == [1, 0]  # the close call flips to the rare class
    np.testing.assert_allclose(posthoc_logit_adjust(scores, [3, 1], tau=0), scores)
    np.testing.assert_allclose(
        posthoc_logit_adjust(scores, [3, 1], tau=2.0)[0], [0.5 + 2 * 0.2876821, 2.7725887]
    )
    with pytest.raises(
        ValueError, match=re.escape("The 'tau' parameter of posthoc_logit_adjust must be a float")
    ):
        posthoc_logit_adjust(scores, [3, 1], tau=-1)
    with pytest.raises(ValueError, match="must be an array-like of 2 positive numbers"):
        posthoc_logit_adjust(scores, [3, 1, 1])


def test_ldam_drw_switches_weights_at_the_right_epoch():
    loss_fn = build_loss("ldam", num_classes=C, class_counts=COUNTS_R, drw_start=0.8, scale=1.0)
    plain = ldam_loss(ZR, YR, loss_fn.margins, scale=1.0).item()
    counts = np.array(COUNTS_R, dtype=float)
    cb = (1 - 0.9999) / (1 - 0.9999**counts)
    cb = torch.tensor(cb / cb.sum() * C)
    weighted = ldam_loss(ZR, YR, loss_fn.margins, scale=1.0, weight=cb).item()
    assert abs(plain - weighted) > 1e-3
    assert loss_fn(ZR, YR).item() == pytest.approx(plain)  # before any hook call: no re-weighting
    seen = []
    for epoch in range(10):
        loss_fn.on_epoch_start(epoch, 10)
        seen.append(loss_fn(ZR, YR).item())
    assert seen[:8] == pytest.approx([plain] * 8, rel=1e-6)
    assert seen[8:] == pytest.approx([weighted] * 2, rel=1e-6)
    loss_fn.on_epoch_start(0, 10)  # e.g. a restarted run: back off
    assert loss_fn(ZR, YR).item() == pytest.approx(plain)


@pytest.mark.parametrize(
    ("drw_start", "num_epochs", "first"), [(0.29, 100, 29), (1.0, 5, None), (0.01, 10, 0)]
)
def test_ldam_drw_first_epoch(drw_start, num_epochs, first):
    loss_fn = build_loss("ldam", num_classes=C, class_counts=COUNTS_R, drw_start=drw_start)
    active = []
    for epoch in range(num_epochs):
        loss_fn.on_epoch_start(epoch, num_epochs)
        active.append(loss_fn.drw_active)
    assert (active.index(True) if any(active) else None) == first
    assert active == sorted(active)


def test_ldam_without_drw_never_reweights_and_rejects_bad_epochs():
    loss_fn = build_loss("ldam", num_classes=C, class_counts=COUNTS_R)
    loss_fn.on_epoch_start(4, 5)
    assert not loss_fn.drw_active
    with pytest.raises(ValueError, match=re.escape("epoch must be an int in [0, num_epochs=5)")):
        loss_fn.on_epoch_start(5, 5)


# ------------------------------------------------------------------------------------------------ misc
def test_import_is_light():
    # Statically, so lazy imports count too: the subpackage uses the standard library, numpy and torch only
    # (no mlflow / sklearn / pandas / hydra), and is imported before any data or tracking is set up.
    allowed = set(sys.stdlib_module_names) | {"numpy", "torch"}
    package = Path(__file__).resolve().parents[1] / "lossbench" / "losses"
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert "torch" in imported and imported <= allowed, sorted(imported - allowed)


def test_one_vs_rest_hinge_is_the_sum_of_binary_hinges():
    """Hand-computed: z = [2, -0.5, 0.3], y = 0: binary hinges max(0, 1 - 2), max(0, 1 - 0.5), max(0, 1.3)."""
    logits = torch.tensor([[2.0, -0.5, 0.3]])
    target = torch.tensor([0])
    hinge = build_loss("hinge", num_classes=3, variant="one_vs_rest")
    assert hinge(logits, target).item() == pytest.approx(0.0 + 0.5 + 1.3)
    squared = build_loss("squared_hinge", num_classes=3, variant="one_vs_rest")
    assert squared(logits, target).item() == pytest.approx(0.25 + 1.69)
    # sklearn's binary hinge_loss, summed over the C one-vs-rest problems, on a random batch
    from sklearn.metrics import hinge_loss

    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    expected = sum(hinge_loss((y == k).long().numpy() * 2 - 1, z[:, k].numpy()) for k in range(3))
    assert hinge(z, y).item() == pytest.approx(expected)
