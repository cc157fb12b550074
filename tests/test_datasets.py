"""Datasets as a first-class axis: every run records ``data.label`` and reports group by it, never pooling two
tables as if they were extra seeds; a user adds a dataset with one yaml in their own config folder."""

from __future__ import annotations

import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer, load_wine

from tests.conftest import run_cli


def _tables(folder):
    load_wine(as_frame=True).frame.to_csv(folder / "grapes.csv", index=False)
    load_breast_cancer(as_frame=True).frame.to_csv(folder / "tumours.csv", index=False)


def _children(folder, experiment="lossbench"):
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_two_csv_files_in_one_sweep_are_two_datasets_in_the_report(tmp_path):
    _tables(tmp_path)
    args = [
        "-m",
        "data=csv",
        "data.path=grapes.csv,tumours.csv",
        "data.target=target",
        "model=logreg",
        "loss=ce,weighted_ce",
        "seed=0,1",
        "imbalance.ratio=1,3",
        "report.rope=0.05",
    ]
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _children(tmp_path)
    assert len(runs) == 16
    labels = sorted(r.data.params["data.label"] for r in runs)
    assert labels == ["grapes"] * 8 + ["tumours"] * 8
    summary = pd.read_csv(tmp_path / "reports" / "lossbench" / "summary.csv")
    assert sorted(summary["data"].unique()) == ["grapes", "tumours"]
    # 2 tables x 2 ratios x (2 losses + CE's post-hoc logit adjustment baseline), 2 seeds
    assert len(summary) == 12 and (summary["n_seeds"] == 2).all()
    assert sorted(summary["loss"].unique()) == ["ce", "ce_posthoc_la", "weighted_ce"]
    # each table's numbers are its own runs' (not pooled): the ce mean at rho 1 on grapes, recomputed
    grapes_ce = [
        r.data.metrics["test/balanced_accuracy"]
        for r in runs
        if r.data.params["data.label"] == "grapes"
        and r.data.params["loss.name"] == "ce"
        and r.data.params["imbalance.ratio"] == "1.0"
    ]
    row = summary[(summary.data == "grapes") & (summary.loss == "ce") & (summary.ratio == 1.0)].iloc[0]
    assert row["mean"] == sum(grapes_ce) / 2
    readme = (tmp_path / "reports" / "lossbench" / "README.md").read_text()
    assert "grapes · logreg" in readme and "tumours · logreg" in readme
    # a regime finding that pools the tables names them (each table's runs are paired within it)
    assert "pooled over 2 datasets (grapes, tumours), logreg and seeds (4 paired runs" in readme
    assert "Bayesian signed-rank (ROPE ±5 points)" in readme  # report.rope reaches the sweep's report
    assert "data = csv" not in readme


def test_a_dataset_is_one_yaml_in_the_users_own_config_folder(tmp_path):
    _tables(tmp_path)
    (tmp_path / "myconf" / "data").mkdir(parents=True)
    (tmp_path / "myconf" / "data" / "grapes.yaml").write_text(
        "defaults:\n  - csv\n  - _self_\npath: grapes.csv\ntarget: target\nlabel: Grapes (UCI wine)\n"
    )
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'myconf'}]"
    proc = run_cli([searchpath, "data=grapes", "model=logreg"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("lossbench").experiment_id])  # one run
    assert run.data.params["data.label"] == "Grapes (UCI wine)"
    assert run.data.params["data.name"] == "csv" and run.data.params["data.path"] == "grapes.csv"
    # a typo'd option of the user's folder gets the same did-you-mean as a built-in one
    proc = run_cli([searchpath, "data=grapess", "model=logreg"], cwd=tmp_path)
    assert proc.returncode == 2 and "Did you mean 'grapes'?" in proc.stderr
