"""Issue 19, the report part: statistics that say what they can.

Hand-computed checks of the smallest attainable signed-rank p and of the Bayesian signed-rank test
(baycomp), and real sweeps on a small Glass-like CSV table (6 classes, 9 rows in the smallest) into a real
SQLite store: a first sweep where every job at the largest rho fails (the test's model refuses a class with
a single training sample, injected through ``sitecustomize``), then the same sweep again, where they finish.
Every number the reports state is recomputed here from MLflow's own client."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from baycomp import SignedRankTest
from mlflow.tracking import MlflowClient

from lossbench.report import stats
from lossbench.report.sections.context import ReportContext
from lossbench.report.sections.formatting import Units
from tests.conftest import run_cli

EXPERIMENT = "glass"
LOSSES = ["ce", "weighted_ce", "logit_adjusted"]
CLASS_ROWS = [70, 76, 17, 13, 9, 29]  # Glass's class sizes
REFUSAL = "refused by the test's model: a class has 1 training sample(s)"

INJECT = """
import os

if os.environ.get("LB_TEST_FAIL_MIN_CLASS"):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    _fit = LogisticRegression.fit

    def fit(self, X, y, *args, **kwargs):
        fewest = int(np.bincount(np.asarray(y)).min())
        if fewest < int(os.environ["LB_TEST_FAIL_MIN_CLASS"]):
            raise ValueError(f"refused by the test's model: a class has {fewest} training sample(s)")
        return _fit(self, X, y, *args, **kwargs)

    LogisticRegression.fit = fit
"""


# ------------------------------------------------------------------ 3. significance that cannot be reached


def _verdict(comp: stats.Comparison, higher: bool = True) -> str:
    return ReportContext.verdict(SimpleNamespace(units=Units("balanced_accuracy", higher)), comp)


def _wide(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns, index=pd.RangeIndex(len(next(iter(columns.values()))), name="seed"))


def test_six_consistent_pairs_over_two_comparisons_are_too_few_not_insignificant():
    ce = np.array([0.50, 0.52, 0.48, 0.55, 0.51, 0.49])
    # +17 points on average, every pair better, distinct magnitudes: the exact test's most extreme outcome
    gains = np.array([0.11, 0.14, 0.17, 0.19, 0.21, 0.20])
    wide = _wide(ce=ce, a=ce + gains, b=ce + gains[::-1] + 0.005)
    comps = {c.loss: c for c in stats.against_baseline(wide, "ce")}
    assert stats.smallest_attainable_p(gains) == pytest.approx(2 / 2**6)  # 0.03125
    for c in comps.values():
        assert c.p_raw == pytest.approx(0.03125)
        assert c.p_holm == pytest.approx(0.0625)  # Holm over 2: 2 x 0.03125
        assert c.min_p == pytest.approx(0.0625)
        assert not c.significant and not c.attainable
        assert _verdict(c) == "too few pairs (smallest attainable p = 0.0625)"
    assert comps["a"].mean_diff == pytest.approx(gains.mean())


def test_seven_pairs_can_reach_significance_so_a_mixed_result_is_not_significant():
    ce = np.linspace(0.5, 0.56, 7)
    diff = np.array([0.03, -0.01, 0.05, 0.02, -0.04, 0.06, 0.07])
    wide = _wide(ce=ce, a=ce + diff, b=ce + 2 * diff)
    comps = stats.against_baseline(wide, "ce")
    for c in comps:
        assert c.min_p == pytest.approx(2 * 2 / 2**7)  # 0.03125 < 0.05: the test could have said yes
        assert c.attainable and not c.significant
        assert _verdict(c) == "not significant"


def test_a_floor_above_alpha_for_one_loss_uses_the_family_floor_of_holm():
    """Holm multiplies the family's smallest raw p by m: a loss with a tie has its own (higher) floor."""
    ce = np.full(6, 0.5)
    a = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
    b = np.array([0.01, 0.01, 0.03, 0.04, 0.05, 0.06])  # a tied magnitude: the approximation's floor
    comps = {c.loss: c for c in stats.against_baseline(_wide(ce=ce, a=ce + a, b=ce + b), "ce")}
    floor_b = stats.signed_rank_p(np.abs(b))
    assert floor_b > 2 / 2**6
    assert comps["a"].min_p == pytest.approx(2 * 2 / 2**6)
    assert comps["b"].min_p == pytest.approx(max(floor_b, 2 * 2 / 2**6))


def test_all_zero_differences_are_no_test():
    ce = np.full(4, 0.5)
    (c,) = stats.against_baseline(_wide(ce=ce, a=ce.copy()), "ce")
    assert _verdict(c) == "no test: all 4 paired differences are 0"


# -------------------------------------------------------------------------- 4. Bayesian signed-rank test


def test_bayesian_signed_rank_is_baycomps_with_a_fixed_seed():
    ce = np.array([0.61, 0.58, 0.64, 0.60, 0.57, 0.62, 0.59, 0.63])
    loss = ce + np.array([0.02, 0.015, -0.005, 0.03, 0.01, 0.025, 0.0, 0.012])
    draws = stats.bayes_samples(len(ce))
    assert draws == 4000
    expected = SignedRankTest.probs(ce, loss, rope=0.01, nsamples=draws, random_state=stats.BAYES_SEED)
    (c,) = stats.against_baseline(_wide(ce=ce, a=loss), "ce", rope=0.01)
    assert (c.p_below, c.p_rope, c.p_above) == tuple(float(p) for p in expected)
    assert c.bayes_draws == draws and c.rope == 0.01
    assert c.p_below + c.p_rope + c.p_above == pytest.approx(1.0)
    assert c.p_above > 0.5  # mostly more than a point better
    # reproducible: the same call gives the same probabilities
    (again,) = stats.against_baseline(_wide(ce=ce, a=loss), "ce", rope=0.01)
    assert (again.p_below, again.p_rope, again.p_above) == (c.p_below, c.p_rope, c.p_above)
    # better / equivalent / worse follow the metric's direction
    higher = SimpleNamespace(units=Units("balanced_accuracy", True))
    lower = SimpleNamespace(units=Units("ece", False))
    assert ReportContext.bayes_probs(higher, c) == (c.p_above, c.p_rope, c.p_below)
    assert ReportContext.bayes_probs(lower, c) == (c.p_below, c.p_rope, c.p_above)
    # a wider rope is baycomp's too
    wide_rope = SignedRankTest.probs(ce, loss, rope=0.05, nsamples=draws, random_state=stats.BAYES_SEED)
    assert stats.bayes_signed_rank(ce, loss, rope=0.05)[:3] == tuple(float(p) for p in wide_rope)


# --------------------------------------------------------------------------------- real small-table sweeps


def _sweep(folder: Path, env: dict | None = None):
    return run_cli(
        [
            "-m",
            "data=csv",
            "data.path=glass.csv",
            "data.target=kind",
            "model=logreg",
            f"loss={','.join(LOSSES)}",
            "imbalance.ratio=1,2,5",
            "seed=0,1,2",
            f"tracking.experiment={EXPERIMENT}",
        ],
        cwd=folder,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def glass(tmp_path_factory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("glass")
    rng = np.random.default_rng(0)
    rows = [[*rng.normal(k * 0.6, 1.0, 4), f"c{k}"] for k, n in enumerate(CLASS_ROWS) for _ in range(n)]
    pd.DataFrame(rows, columns=["a", "b", "c", "d", "kind"]).to_csv(folder / "glass.csv", index=False)
    inject = folder / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT)
    first = _sweep(folder, {"PYTHONPATH": str(inject), "LB_TEST_FAIL_MIN_CLASS": "2"})
    assert first.returncode == 1, first.stderr[-3000:]  # failed jobs: exit 1, the report is written
    assert "lossbench: 18 finished, 0 resumed, 0 skipped (N/A), 9 failed" in first.stderr
    shutil.copytree(folder / "reports" / EXPERIMENT, folder / "first")
    second = _sweep(folder)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "lossbench: 9 finished, 18 resumed, 0 skipped (N/A), 0 failed" in second.stderr
    every = run_cli(
        ["--experiment", EXPERIMENT, "--all", "--out", str(folder / "all")], folder, module="lossbench.report"
    )
    assert every.returncode == 0, every.stderr[-3000:]
    rope = run_cli(
        ["--experiment", EXPERIMENT, "--rope", "0.05", "--out", str(folder / "rope")],
        folder,
        module="lossbench.report",
    )
    assert rope.returncode == 0, rope.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = []
    for r in client.search_runs([exp.experiment_id], max_results=5000):
        if r.data.tags.get("lossbench.role") == "sweep":
            continue
        p, m = r.data.params, r.data.metrics
        runs.append(
            {
                "status": r.info.status,
                "sweep": r.data.tags.get("lossbench.sweep_id"),
                "loss": p["loss.name"],
                "ratio": float(p["imbalance.ratio"]),
                "seed": int(p["seed"]),
                "reason": r.data.tags.get("lossbench.failure_reason"),
                "bacc": m.get("test/balanced_accuracy"),
                # the post-hoc logit adjustment a CE run logs (lossbench.baselines), a row of the report
                "la_bacc": m.get("baseline/ce_posthoc_la/test/balanced_accuracy"),
                "realised": m.get("train/imbalance_ratio"),
                "test": json.loads(p["class_counts.test"]) if "class_counts.test" in p else None,
                "available": json.loads(p["class_counts.train_available"])
                if "class_counts.train_available" in p
                else None,
                "start": r.info.start_time,
            }
        )
    frame = pd.DataFrame(runs)
    first_sweep = frame.sort_values("start")["sweep"].iloc[0]
    return SimpleNamespace(
        folder=folder,
        runs=frame,
        first=frame[frame["sweep"] == first_sweep],
        readme={
            name: (folder / sub / "README.md").read_text().replace("\\_", "_")
            for name, sub in [("first", "first"), ("latest", f"reports/{EXPERIMENT}"), ("all", "all")]
        },
        comparisons={
            "first": pd.read_csv(folder / "first" / "comparisons.csv"),
            "rope": pd.read_csv(folder / "rope" / "comparisons.csv"),
        },
        rope_readme=(folder / "rope" / "README.md").read_text(),
    )


def _finding(readme: str, start: str) -> str:
    (line,) = [x for x in readme.splitlines() if x.startswith(start)]
    return line


def test_rho_1_on_an_unbalanced_table_is_named_natural_with_its_realised_ratio(glass):
    done = glass.first[(glass.first["status"] == "FINISHED") & (glass.first["ratio"] == 1.0)]
    realised = done["realised"].astype(float)
    assert realised.min() > 5  # the natural training split of a Glass-like table is far from balanced
    low, high = f"{realised.min():.1f}", f"{realised.max():.1f}"
    natural = f"natural ({low} : 1)" if low == high else f"natural ({low}–{high} : 1)"
    for readme in glass.readme.values():
        assert "balanced (ρ = 1)" not in readme.lower()
        line = _finding(readme, f"- Natural ({low}")
        assert line.startswith(
            f"- {natural[0].upper()}{natural[1:]} training split, ρ = 1, pooled over logreg"
        )
        assert f"| ρ = 1: {natural} | ρ = 2 | ρ = 5 |" in readme or f"| ρ = 1: {natural} | ρ = 2 |" in readme
        assert f"the training splits are {natural} (n_max / n_min" in readme


def test_a_test_split_of_a_few_rows_per_class_is_warned_and_gets_no_interval(glass):
    done = glass.first[glass.first["status"] == "FINISHED"]
    rows = {sum(c) for c in done["test"]}
    fewest = {min(c) for c in done["test"]}
    assert len(rows) == len(fewest) == 1  # the test split is the same in every run
    rows, fewest = rows.pop(), fewest.pop()
    assert fewest < 20
    readme = glass.readme["first"]
    assert (
        f"**Small test split:** ρ = 1, 2 (logreg): {rows} test rows, {fewest} of the smallest class — "
        "fewer than 20 test rows per class." in readme
    )
    assert f"interval not meaningful: {rows} test rows" in _finding(readme, "- Natural (")
    # no interval printed as if certain: not a zero-width one, and none at all in the findings
    assert not re.search(r"95% CI ([+-]\d+\.\d) to \1\b", readme)
    findings = readme.split("## Findings")[1].split("\n## ")[0]
    assert "95% CI" not in findings
    assert (
        "**The intervals here are not a measure of certainty:** every seed is scored on a test split of "
        f"as few as {rows} rows ({fewest} of the smallest class" in readme
    )
    # the results tables give those cells the mean and no interval, marked †
    tables = readme.split("## Results per model and imbalance ratio")[1].split("\n## ")[0]
    cells = [line for line in tables.splitlines() if line.startswith("| ") and "(" in line and "†" in line]
    assert len(cells) == len(LOSSES) + 1 and all(" ± " not in line for line in cells)  # + ce_posthoc_la
    assert "Cells marked † rest on such a split" in tables
    csv = glass.comparisons["first"]
    assert (csv["interval_note"] == f"interval not meaningful: {rows} test rows").all()
    assert (csv["test_rows_min"] == rows).all() and (csv["test_rows_per_class_min"] == fewest).all()


def _per_seed(done: pd.DataFrame) -> pd.DataFrame:
    """Balanced accuracy per seed (rows) and loss (columns), with the CE runs' post-hoc logit adjustment as
    the column ce_posthoc_la (the report compares it like a loss)."""
    wide = done.pivot_table(index="seed", columns="loss", values="bacc")
    return wide.assign(ce_posthoc_la=done[done["loss"] == "ce"].set_index("seed")["la_bacc"])


def test_an_unreachable_significance_is_too_few_pairs_with_its_floor(glass):
    csv = glass.comparisons["first"]
    regime = csv[csv["scope"].str.startswith("natural")]
    # weighted_ce, logit_adjusted and the ce_posthoc_la baseline against ce; 3 seeds on one model
    assert len(regime) == 3 and (regime["n_pairs"] == 3).all()
    done = glass.first[(glass.first["status"] == "FINISHED") & (glass.first["ratio"] == 1.0)]
    wide = _per_seed(done)
    others = ("weighted_ce", "logit_adjusted", "ce_posthoc_la")
    floors = {x: stats.signed_rank_p(np.abs(wide[x] - wide["ce"])) for x in others}
    for row in regime.itertuples():
        expected = min(1.0, max(floors[row.loss], 3 * min(floors.values())))  # Holm over 3 comparisons
        assert row.min_attainable_p == pytest.approx(expected)
        assert row.min_attainable_p >= 0.05
        if (wide[row.loss] != wide["ce"]).any():
            assert row.verdict == f"too few pairs (smallest attainable p = {row.min_attainable_p:.4g})"
    assert "not significant" not in set(csv["verdict"])
    line = _finding(glass.readme["first"], "- Natural (")
    assert "after Holm correction over 3 comparisons: too few pairs (smallest attainable p = " in line
    assert ": not significant" not in line


def test_the_bayesian_verdict_is_baycomps_on_the_pooled_pairs(glass):
    csv = glass.comparisons["first"]
    done = glass.first[(glass.first["status"] == "FINISHED") & (glass.first["ratio"] == 1.0)]
    wide = _per_seed(done).sort_index()
    line = _finding(glass.readme["first"], "- Natural (")
    for row in csv[csv["scope"].str.startswith("natural")].itertuples():
        worse, same, better = SignedRankTest.probs(
            wide["ce"].to_numpy(), wide[row.loss].to_numpy(), rope=0.01, nsamples=4000, random_state=0
        )
        assert (row.bayes_p_better, row.bayes_p_equivalent, row.bayes_p_worse) == pytest.approx(
            (better, same, worse), abs=1e-12
        )
        assert row.rope == 0.01 and row.bayes_draws == 4000
    best = csv[csv["scope"].str.startswith("natural")].sort_values("mean_diff").iloc[-1]
    assert (
        f"Bayesian signed-rank (ROPE ±1 point): P(better) {best.bayes_p_better:.2f}, "
        f"P(equivalent) {best.bayes_p_equivalent:.2f}, P(worse) {best.bayes_p_worse:.2f}" in line
    )
    rope = glass.comparisons["rope"]
    assert (rope["rope"] == 0.05).all() and "ROPE ±5 points" in glass.rope_readme


def test_a_largest_rho_without_finished_runs_is_named_with_its_reason(glass):
    failed = glass.first[glass.first["status"] == "FAILED"]
    assert set(failed["ratio"]) == {5.0} and len(failed) == 9
    assert {r.split(": ", 1)[1] for r in failed["reason"]} == {REFUSAL}
    readme = glass.readme["first"]
    assert (
        "- **Swept but not run:** 1 swept ratio has no finished runs — ρ = 5: 9 jobs failed (reason: "
        f"ValueError: {REFUSAL}). The largest ratio with results is ρ = 2." in readme
    )
    assert _finding(readme, "- At the largest ratio with finished runs (ρ = 2) on logreg")
    assert "At the largest imbalance (ρ = 2)" not in readme
    # the re-run finished them: its report speaks of rho = 5 as the largest imbalance
    assert "Swept but not run" not in glass.readme["latest"]
    assert _finding(glass.readme["latest"], "- At the largest imbalance (ρ = 5) on logreg")


def test_na_matrix_counts_agree_with_the_tables_after_a_re_run(glass):
    # the first sweep: 3 seeds x 2 ratios finished, 3 failed, all at rho = 5
    for loss in LOSSES:
        assert f"| {loss} | 6 runs, 3 failed (ρ = 5) |" in glass.readme["first"]
    # the re-run, latest sweep and every sweep: the failures it fixed are not counted again
    finished = glass.runs[glass.runs["status"] == "FINISHED"]
    for name in ("latest", "all"):
        for loss in LOSSES:
            n = int((finished["loss"] == loss).sum())
            assert n == 9
            assert f"| {loss} | {n} runs |" in glass.readme[name], name


def test_what_was_swept_states_the_largest_ratio_the_data_allows(glass):
    caps = {min(c) for c in glass.runs["available"].dropna()}
    assert len(caps) == 1
    cap = caps.pop()
    for readme in glass.readme.values():
        head = readme.split("## What was swept")[1].split("**Run accounting**")[0]
        assert (
            "ρ is capped by the smallest class's training count: the largest ρ this data allows is "
            f"{cap} (its smallest class has {cap} training samples)" in head
        )
