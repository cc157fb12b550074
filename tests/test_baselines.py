"""Post-hoc baselines of CE runs (lossbench.baselines): logit adjustment by hand, temperature recovered from
synthetic logits, and a real sweep into a real SQLite store whose report shows the baseline rows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy.special import softmax

from lossbench.baselines import expand_baselines, fit_temperature, logit_adjusted, temperature_scaled
from lossbench.errors import ConfigError
from tests.conftest import run_cli

LA = "baseline/ce_posthoc_la/test/balanced_accuracy"


def test_posthoc_logit_adjustment_of_a_hand_made_matrix():
    proba = np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1]])
    counts = [60, 30, 10]  # prior 0.6, 0.3, 0.1: p / prior = [.833 1 2], [1.167 .667 1], [.667 1.667 1], ...
    pred, adjusted = logit_adjusted(proba, counts)
    assert pred.tolist() == [2, 0, 1, 1]  # argmax p alone: [0, 0, 1, 1]
    ratio = np.array([0.5 / 0.6, 0.3 / 0.3, 0.2 / 0.1])
    np.testing.assert_allclose(adjusted[0], ratio / ratio.sum(), rtol=1e-12)  # [0.2174, 0.2609, 0.5217]
    np.testing.assert_allclose(adjusted.sum(1), 1.0, rtol=1e-12)
    assert logit_adjusted(proba, counts, tau=0.0)[0].tolist() == [0, 0, 1, 1]  # tau = 0: plain CE
    assert logit_adjusted(proba, [50, 50, 50])[0].tolist() == [0, 0, 1, 1]  # a uniform prior changes nothing
    # a class never fitted gets a finite adjustment (counted as one sample), not an infinite one
    pred, adjusted = logit_adjusted(np.array([[0.5, 0.5, 0.0]]), [60, 40, 0])
    assert pred.tolist() == [1] and np.isfinite(adjusted).all()


def test_temperature_fit_recovers_the_temperature_of_synthetic_logits():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(20_000, 4))
    true = softmax(z / 2.0, axis=1)
    y = np.array([rng.choice(4, p=row) for row in true])
    t = fit_temperature(softmax(z, axis=1), y)  # over-confident by a factor 2
    assert t == pytest.approx(2.0, abs=0.1)
    np.testing.assert_allclose(temperature_scaled(softmax(z, axis=1), 2.0), true, atol=1e-9)
    # already calibrated probabilities: T stays ~1
    assert fit_temperature(true, y) == pytest.approx(1.0, abs=0.05)


def test_expand_baselines_adds_one_row_per_baseline_of_a_ce_run():
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "run_name": ["ce", "focal"],
            "fingerprint": ["fa", "fb"],
            "loss": ["ce", "focal"],
            "realisation": ["native", "native"],
            "status": ["FINISHED", "FINISHED"],
            "test/balanced_accuracy": [0.7, 0.8],
            "test/ece": [0.1, 0.2],
            LA: [0.75, math.nan],
            "baseline/ce_temperature/test/ece": [0.05, math.nan],
        }
    )
    out = expand_baselines(runs).set_index("run_id")
    assert list(out.index) == ["a", "b", "a:ce_posthoc_la", "a:ce_temperature"]
    la, ts = out.loc["a:ce_posthoc_la"], out.loc["a:ce_temperature"]
    assert la["loss"] == "ce_posthoc_la" and la["test/balanced_accuracy"] == 0.75 and np.isnan(la["test/ece"])
    assert ts["test/ece"] == 0.05 and np.isnan(ts["test/balanced_accuracy"])  # what it lacks: NaN, not CE's
    assert la["baseline_of"] == ts["baseline_of"] == "a" and la["realisation"] == "post-hoc"
    assert la["fingerprint"] == "fa:ce_posthoc_la"
    assert out["baseline_of"].isna().sum() == 2


def test_report_baselines_must_be_a_bool():
    from lossbench.baselines import enabled

    assert enabled({"report": {"baselines": False}}) is False and enabled({}) is True
    with pytest.raises(ConfigError, match=r"report.baselines='yes' is invalid: must be true or false"):
        enabled({"report": {"baselines": "yes"}})


def _children(db: Path, experiment: str) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("lossbench.role") != "sweep"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("baselines")
    proc = run_cli(
        [
            "-m",
            "data=wine",
            "model=logreg",
            "loss=ce,logit_adjusted",
            "imbalance.ratio=5",
            "seed=0,1,2",
            "tracking.experiment=bl",
        ],
        cwd=folder,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


def test_a_sweep_logs_baselines_on_ce_runs_only_and_reports_them_as_rows(sweep):
    runs = _children(sweep / "mlflow.db", "bl")
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    by_loss: dict[str, dict[int, dict]] = {}
    for r in runs:
        by_loss.setdefault(r.data.params["loss.name"], {})[int(r.data.params["seed"])] = r.data.metrics
    for m in by_loss["ce"].values():
        assert LA in m and "baseline/ce_temperature/test/ece" in m
        # within the searched range (wine's 27 val rows are often all right: the NLL then falls towards T -> 0
        # and the fit stops at the bound)
        assert math.exp(-3) - 1e-6 <= m["baseline/ce_temperature/temperature"] <= math.exp(3) + 1e-6
        # temperature scaling keeps CE's predictions
        assert m["baseline/ce_temperature/test/balanced_accuracy"] == m["test/balanced_accuracy"]
    assert not any(k.startswith("baseline/") for m in by_loss["logit_adjusted"].values() for k in m)
    # on logreg, loss=logit_adjusted is realised post hoc with tau = 1 on the same fitted model: the baseline
    # computed inside the CE run is the same number, seed by seed (two code paths, one answer)
    for seed, m in by_loss["ce"].items():
        assert m[LA] == pytest.approx(by_loss["logit_adjusted"][seed]["test/balanced_accuracy"], abs=1e-12)

    out = sweep / "reports" / "bl"
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["loss"]) == ["ce", "ce_posthoc_la", "logit_adjusted"]  # no ce_temperature here
    row = summary[summary["loss"] == "ce_posthoc_la"].iloc[0]
    assert row["n_seeds"] == 3
    assert row["mean"] == pytest.approx(np.mean([m[LA] for m in by_loss["ce"].values()]), abs=1e-12)
    readme = (out / "README.md").read_text()

    def section(heading: str) -> str:
        return readme.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]

    # ce_temperature (CE's own predictions): explained, and compared on calibration only
    assert "**Baselines:**" in readme and "**ce\\_temperature** — CE + temperature scaling" in readme
    (calibration,) = [x for x in section("Findings").splitlines() if x.startswith("- Calibration at")]
    assert "ce\\_temperature" in calibration
    for heading in ("Best loss per setting", "Results per model and imbalance ratio", "Significance"):
        assert "ce\\_temperature" not in section(heading) and "ce\\_posthoc\\_la" in section(heading)
    assert "MLflow runs in scope, by status: FINISHED 6." in readme  # MLflow's runs, not the report's rows
    assert "6 finished runs with the metric (plus 3 rows of post-hoc baselines" in readme
    (cheap,) = [x for x in section("Findings").splitlines() if x.startswith("- **The cheap fix:**")]
    assert "on logreg, logit\\_adjusted +0.0 points" in cheap and cheap.endswith("does not beat it.")
    # the N/A matrix lists what was swept, not the baselines
    assert "ce\\_posthoc\\_la" not in section("N/A matrix")
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert "ce_posthoc_la" in set(comparisons["loss"]) and "ce_temperature" not in set(comparisons["loss"])


def test_report_baselines_false_logs_none_and_a_bad_value_is_refused(tmp_path):
    db = tmp_path / "mlflow.db"
    common = ["data=wine", "model=logreg", "tracking.experiment=off", f"tracking.uri=sqlite:///{db}"]
    proc = run_cli([*common, "report.baselines=false"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = _children(db, "off")
    assert run.data.params["loss.name"] == "ce" and "test/balanced_accuracy" in run.data.metrics
    assert not any(k.startswith("baseline/") for k in run.data.metrics)

    bad = run_cli([*common, "report.baselines=sometimes"], cwd=tmp_path)
    assert bad.returncode == 2
    assert "report.baselines='sometimes' is invalid: must be true or false" in bad.stderr


def test_a_report_ranked_by_a_calibration_metric_ranks_ce_temperature_too(sweep, tmp_path):
    proc = run_cli(
        ["--experiment", "bl", "--metric", "ece", "--out", str(tmp_path / "ece")],
        cwd=sweep,
        module="lossbench.report",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "ece" / "summary.csv")
    assert sorted(summary["loss"]) == ["ce", "ce_posthoc_la", "ce_temperature", "logit_adjusted"]
    by_seed = {
        int(r.data.params["seed"]): r.data.metrics["baseline/ce_temperature/test/ece"]
        for r in _children(sweep / "mlflow.db", "bl")
        if r.data.params["loss.name"] == "ce"
    }
    row = summary[summary["loss"] == "ce_temperature"].iloc[0]
    assert row["mean"] == pytest.approx(np.mean(list(by_seed.values())), abs=1e-12)
