"""Splits and imbalance profiles: counts follow the formula, the test split never moves."""

import numpy as np
import pytest

from lossbench.data import load_dataset
from lossbench.errors import ConfigError
from lossbench.imbalance import apply_imbalance, minority_classes, stratified_split, target_counts


def test_exponential_counts_follow_the_formula():
    available = np.array([100, 120, 110, 105, 130])
    counts = target_counts(available, ratio=10, profile="exponential")
    # n_max = 100 (smallest available class), n_i = floor(100 * 10^(-i/4))
    assert counts.tolist() == [100, 56, 31, 17, 10]


def test_ratio_one_leaves_the_training_split_untouched():
    y = np.repeat(np.arange(3), [50, 40, 30])
    keep = apply_imbalance(y, ratio=1.0, profile="exponential", num_classes=3, seed=0)
    assert keep.tolist() == list(range(120))


def test_too_large_ratio_names_the_largest_allowed():
    with pytest.raises(
        ConfigError, match=r"imbalance\.ratio=500\.0.*largest ratio this training split allows is 40"
    ):
        target_counts(np.array([40, 45, 50]), ratio=500.0, profile="exponential")


def test_imbalance_is_seeded_and_samples_within_each_class():
    y = np.repeat(np.arange(4), 60)
    a = apply_imbalance(y, ratio=20, profile="exponential", num_classes=4, seed=3)
    b = apply_imbalance(y, ratio=20, profile="exponential", num_classes=4, seed=3)
    c = apply_imbalance(y, ratio=20, profile="exponential", num_classes=4, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(y[a]).tolist() == [60, 22, 8, 3]


def test_test_split_is_identical_across_ratios_for_a_seed():
    from lossbench.pipeline import prepare
    from tests.conftest import compose_cfg

    tests = []
    for ratio in (1, 10, 50):
        p = prepare(compose_cfg(["data=digits", f"imbalance.ratio={ratio}", "seed=7"]))
        tests.append((p.X_test.tobytes(), p.y_test.tobytes(), p.class_counts["train"]))
    assert tests[0][0] == tests[1][0] == tests[2][0]
    assert tests[0][1] == tests[1][1] == tests[2][1]
    assert tests[0][2] != tests[1][2] != tests[2][2]
    other_seed = prepare(compose_cfg(["data=digits", "imbalance.ratio=10", "seed=8"]))
    assert other_seed.y_test.tobytes() != tests[0][1]  # the seed does move it
    # balanced by default: every class has the smallest natural test count
    assert np.bincount(other_seed.y_test).tolist() == [43] * 10


def test_stratified_split_fractions_and_disjointness():
    y = load_dataset({"name": "digits"}).y
    s = stratified_split(y, test=0.25, val=0.15, seed=0)
    assert len(set(s.train) | set(s.val) | set(s.test)) == len(y) == len(s.train) + len(s.val) + len(s.test)
    assert abs(len(s.test) / len(y) - 0.25) < 0.01 and abs(len(s.val) / len(y) - 0.15) < 0.01
    # stratified: every class keeps its share in the test split within one sample
    share = np.bincount(y[s.test]) / np.bincount(y)
    assert np.all(np.abs(share - 0.25) < 0.02)


def test_minority_classes_are_the_tail_half():
    assert minority_classes(10, "exponential") == [5, 6, 7, 8, 9]
    assert minority_classes(2, "exponential") == [1]
    assert minority_classes(3, "exponential") == [2]


def test_step_profile_and_minority_classes():
    counts = target_counts(np.array([100, 90, 95, 120]), ratio=10, profile="step", minority_fraction=0.5)
    assert counts.tolist() == [90, 90, 9, 9]
    assert minority_classes(4, "step", 0.5) == [2, 3]
    assert minority_classes(10, "step", 0.3) == [7, 8, 9]


def test_binary_profile_uses_the_minority_fraction():
    counts = target_counts(np.array([200, 150]), ratio=1.0, profile="binary", minority_fraction=0.1)
    assert counts.tolist() == [150, 16]  # 16 / (150 + 16) ~ 0.1
    with pytest.raises(ConfigError, match="binary needs 2 classes"):
        target_counts(np.array([10, 10, 10]), ratio=1.0, profile="binary", minority_fraction=0.1)


def test_oversample_and_undersample_equalise_the_fit_counts():
    from lossbench.pipeline import prepare
    from tests.conftest import compose_cfg

    over = prepare(compose_cfg(["data=digits", "imbalance.ratio=10", "rebalance=oversample"]))
    under = prepare(compose_cfg(["data=digits", "imbalance.ratio=10", "rebalance=undersample"]))
    train = over.class_counts["train"]
    assert over.class_counts["fit"] == [max(train)] * 10
    assert under.class_counts["fit"] == [min(train)] * 10
    assert over.class_counts["train"] == under.class_counts["train"]  # rebalancing after imbalance
    assert over.y_test.tobytes() == under.y_test.tobytes()  # test split untouched


def test_smote_neighbours_are_checked_against_the_smallest_class():
    from lossbench.pipeline import prepare
    from tests.conftest import compose_cfg

    with pytest.raises(
        ConfigError, match=r"rebalance\.k_neighbors=5 is invalid: SMOTE needs k_neighbors < .* is 4 here"
    ):
        prepare(compose_cfg(["data=wine", "imbalance.ratio=7", "rebalance=smote"]))
    ok = prepare(
        compose_cfg(["data=wine", "imbalance.ratio=7", "rebalance=smote", "rebalance.k_neighbors=3"])
    )
    assert len(set(ok.class_counts["fit"])) == 1 and ok.class_counts["fit"][0] == max(
        ok.class_counts["train"]
    )
