"""Tuning with budget parity (lossbench.tune): real Hydra sweeps into real SQLite MLflow stores, real Optuna
studies in a journal file, real fits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from lossbench.tune import STORAGE_FILE, Knob, SealedSplit, SealedSplitTouched, shared_space
from tests.conftest import cli_env, compose_cfg, run_cli, tiny

# two models x two losses on wine: 4 cells, 2 seeds each; trials train in a second or less
GRID = ["-m", "data=wine", "imbalance.ratio=5", "seed=0,1", "train.threads=1", "tracking.experiment=tune"]
GRID += ["train.epochs=20", "train.min_steps=0", "train.patience=5", "train.lr=0.01"]


def _sweep(tmp_path: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    args = [*GRID, *extra]
    done = run_cli([*args, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"], tmp_path, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _runs(tmp_path: Path, experiment: str = "tune") -> list:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=5000)


def _role(run) -> str | None:
    return run.data.tags.get("lossbench.role")


def _studies(tmp_path: Path) -> dict[str, list]:
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / STORAGE_FILE)))
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).trials
        for s in optuna.get_all_study_summaries(storage)
    }


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One tuned sweep: logreg and torch_mlp x ce and logit_adjusted, 4 trials per cell."""
    tmp_path = tmp_path_factory.mktemp("tuned")
    done = _sweep(tmp_path, "model=logreg,torch_mlp", "loss=ce,logit_adjusted", "tune.trials=4")
    return tmp_path, done, _runs(tmp_path)


def test_the_test_split_is_sealed_during_tuning():
    sealed = SealedSplit()
    for use in (np.asarray, len, lambda a: a[0], lambda a: a.shape, lambda a: list(a), lambda a: a + 1):
        with pytest.raises(SealedSplitTouched):
            use(sealed)


def test_trials_see_only_train_and_val(tuned):
    _, _, runs = tuned
    trials = [r for r in runs if _role(r) == "trial"]
    assert trials and all(r.info.status == "FINISHED" for r in trials)
    assert {r.info.run_name.split("-", 1)[0] for r in trials} == {"trial0", "trial1", "trial2", "trial3"}
    for r in trials:
        keys = set(r.data.metrics)
        assert not any(k.startswith("test/") or "/test/" in k for k in keys), sorted(keys)
        assert "val/balanced_accuracy" in keys and r.data.metrics["tune/value"] == pytest.approx(
            r.data.metrics["val/balanced_accuracy"]
        )


def test_a_trial_fit_is_refused_when_it_reads_the_test_split():
    """The seal is what the trials get: a fit that read X_test would raise (here: the scoring path with the
    real test split swapped for the seal, then a read of it)."""
    from dataclasses import replace

    from lossbench.pipeline import evaluate, prepare

    p = prepare(compose_cfg(tiny(["data=wine", "model=logreg"])))
    sealed = replace(p, X_test=SealedSplit(), y_test=SealedSplit())
    from lossbench.tune import validation_score

    metrics, _ = validation_score(p.cfg, "balanced_accuracy")
    assert set(metrics) and all(k.startswith("val/") for k in metrics)
    from lossbench.pipeline import build

    model = build(sealed)
    model.fit(sealed.X_fit, sealed.y_fit, sealed.X_val, sealed.y_val)
    with pytest.raises(SealedSplitTouched):
        evaluate(model, sealed.X_test, sealed.y_test, 3, [], "test")


def test_every_cell_gets_the_same_number_of_trials(tuned):
    tmp_path, _, runs = tuned
    parents = [r for r in runs if _role(r) == "tuning"]
    assert len(parents) == 4  # 2 models x 2 losses
    per_parent = Counter(r.data.tags["mlflow.parentRunId"] for r in runs if _role(r) == "trial")
    assert sorted(per_parent.values()) == [4, 4, 4, 4]
    assert {p.info.run_id for p in parents} == set(per_parent)
    studies = _studies(tmp_path)
    assert len(studies) == 4
    complete = [sum(t.state == optuna.trial.TrialState.COMPLETE for t in ts) for ts in studies.values()]
    assert complete == [4, 4, 4, 4]
    # the first trial of every cell is its defaults: logreg's l2 strength 0.001, torch_mlp's lr 0.01 (tiny)
    for trials in studies.values():
        first = min(trials, key=lambda t: t.number).params
        assert first["regularization.strength"] == pytest.approx(0.001)
        if "train.lr" in first:
            assert first["train.lr"] == pytest.approx(0.01)
        if "loss.tau" in first:
            assert first["loss.tau"] == pytest.approx(1.0)


def test_final_runs_are_the_defaults_and_the_chosen_config_over_the_seeds(tuned):
    _, done, runs = tuned
    finals = [r for r in runs if _role(r) is None]
    variants = Counter(r.data.tags.get("lossbench.variant") for r in finals)
    # each cell: 2 default runs and 2 tuned ones, or 2 runs serving as both when the defaults won
    assert variants["default"] == variants["tuned"]
    assert variants["default"] + variants["default tuned"] == 8 and variants["tuned"] >= 2
    cells = Counter(r.data.tags["lossbench.tune.cell"] for r in finals)
    assert len(cells) == 4
    for r in finals:
        if "tuned" in r.data.tags["lossbench.variant"]:
            assert "lossbench.tune.trial_run" in r.data.tags
            assert "test/balanced_accuracy" in r.data.metrics
    assert "lossbench: " in done.stdout and "0 failed" in done.stdout


def test_chosen_knobs_reproduce_their_trials_val_metric(tuned):
    """A tuned run at the trial seed (the cell's first, 0) retrains the chosen trial's config exactly."""
    _, _, runs = tuned
    by_id = {r.info.run_id: r for r in runs}
    checked = 0
    for r in runs:
        tags = r.data.tags
        if _role(r) is None and "tuned" in tags.get("lossbench.variant", "") and r.data.params["seed"] == "0":
            trial = by_id[tags["lossbench.tune.trial_run"]]
            knobs = json.loads(tags["lossbench.tune.knobs"])
            for key, value in knobs.items():
                assert float(r.data.params[key]) == pytest.approx(float(value), rel=1e-12)
            assert r.data.metrics["val/balanced_accuracy"] == pytest.approx(trial.data.metrics["tune/value"])
            checked += 1
    assert checked == 4


def test_a_second_run_resumes_everything(tuned, tmp_path):
    tmp, _, runs = tuned
    again = _sweep(tmp, "model=logreg,torch_mlp", "loss=ce,logit_adjusted", "tune.trials=4")
    finals = sum(1 for r in runs if _role(r) is None)
    assert finals >= 8 and f"0 finished, {finals} resumed" in again.stdout
    assert "stored)" not in again.stdout + again.stderr  # no cell had a trial left to run
    assert sum(1 for r in _runs(tmp) if _role(r) == "trial") == 16


def _finished_trials(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        (n,) = con.execute(
            "SELECT count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'lossbench.role' AND t.value = 'trial' AND r.status = 'FINISHED'"
        ).fetchone()
    except sqlite3.OperationalError:  # the store is being created
        return 0
    finally:
        con.close()
    return n


def _kill_mid_tuning(args: list[str], cwd: Path, after: int) -> int:
    """Start ``python -m lossbench *args``, SIGKILL its process group once ``after`` trials finished; the
    number of trials finished by then."""
    env = cli_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossbench", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while _finished_trials(cwd / "mlflow.db") < after and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return _finished_trials(cwd / "mlflow.db")


def test_an_interrupted_tuning_resumes_without_repeating_finished_trials(tmp_path):
    """One study (torch_mlp, focal), killed with SIGKILL mid-study, then run again: it ends with exactly its
    budget of complete trials, and no finished trial was trained twice."""
    args = [*GRID, "model=torch_mlp", "loss=focal", "tune.trials=8", "train.epochs=60"]
    args += [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    before = _kill_mid_tuning(args, tmp_path, after=3)
    assert 3 <= before < 8, "the sweep was not stopped mid-study"

    done = run_cli(args, tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # what MLflow holds as finished is what the study counts complete (a trial killed between the two writes
    # is recovered from its MLflow run)
    assert f"({before} stored)" in done.stdout + done.stderr
    (trials,) = _studies(tmp_path).values()
    assert Counter(t.state for t in trials)[optuna.trial.TrialState.COMPLETE] == 8
    runs = _runs(tmp_path)
    finished = [r for r in runs if _role(r) == "trial" and r.info.status == "FINISHED"]
    assert len(finished) == 8
    assert len({r.data.tags["lossbench.tune.trial"] for r in finished}) == 8  # no trial trained twice
    assert not [r for r in runs if r.info.status == "RUNNING"]  # the killed ones are marked KILLED


@pytest.mark.slow  # ~2 minutes: the whole tuned_smoke, twice (the default run kills a smaller study)
def test_an_interrupted_tuned_smoke_resumes_without_repeating_finished_trials(tmp_path):
    """``+experiment=tuned_smoke`` killed (SIGKILL, the launching process and its 2 tuning workers) once a
    few trials finished, then run again: every study ends with exactly its 6 complete trials, no finished
    trial was trained twice, and the sweep ends with its final runs and the report's Tuning section."""
    args = ["+experiment=tuned_smoke", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    before = _kill_mid_tuning(args, tmp_path, after=5)
    assert 5 <= before < 60, "the sweep was not stopped mid-tuning"

    done = run_cli(args, tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    studies = _studies(tmp_path)
    assert len(studies) == 10  # 2 models x 3 losses x 2 ratios, less focal on logreg
    for trials in studies.values():
        assert Counter(t.state for t in trials)[optuna.trial.TrialState.COMPLETE] == 6
    runs = _runs(tmp_path, "tuned_smoke")
    finished = [r for r in runs if _role(r) == "trial" and r.info.status == "FINISHED"]
    assert len(finished) == 60
    per_cell = Counter(
        (r.data.tags["lossbench.tune.cell"], r.data.tags["lossbench.tune.trial"]) for r in finished
    )
    assert set(per_cell.values()) == {1}  # no trial trained twice
    assert not [r for r in runs if r.info.status == "RUNNING"]  # the killed ones are marked KILLED
    finals = [r for r in runs if _role(r) is None and r.info.status == "FINISHED"]
    variants = Counter(r.data.tags["lossbench.variant"] for r in finals)
    assert variants["default"] + variants["default tuned"] == 20 and variants["tuned"] == variants["default"]
    assert "4 skipped (N/A), 0 failed" in done.stdout
    report = tmp_path / "reports" / "tuned_smoke"
    assert "## Tuning" in (report / "README.md").read_text()
    import pandas as pd

    table = pd.read_csv(report / "tuning.csv")
    trained = table[~table["loss"].isin(["ce_posthoc_la", "ce_temperature"])]
    assert len(trained) == 10 and set(trained["loss"]) == {"ce", "focal", "logit_adjusted"}


def test_knob_specs():
    assert shared_space({"train": {"lr": {"low": 1e-4, "high": 0.1, "log": True}}, "model": None}) == {
        "train.lr": {"low": 1e-4, "high": 0.1, "log": True}
    }
    knob = Knob("train.lr", 1e-4, 0.1, log=True)
    assert knob.contains(0.001) and not knob.contains(0.2) and not knob.contains(True)
    assert Knob("loss.drw_start", choices=(None, 0.5)).contains(None)


def test_a_chosen_float_reaches_the_run_unchanged():
    """The chosen values travel as overrides: a float Optuna suggested composes back to the same float."""
    from lossbench.tune import Chosen, _override

    value = 0.000123456789012345678
    cfg = compose_cfg(["loss=ldam", _override("train.lr", value), _override("loss.drw_start", None)])
    assert cfg["train"]["lr"] == value and Chosen("x", {}).values == {}


@pytest.mark.parametrize(
    "args, message",
    [
        (["tune.trials=3"], "tune.trials=3 is invalid: tuning chooses knobs across the trials of a sweep"),
        (["-m", "seed=0,1", "tune.trials=2", "tune.metric=foo"], "tune.metric='foo' is invalid"),
        (["-m", "seed=0,1", "tune.trials=-1"], "tune.trials=-1 is invalid: must be an integer >= 0"),
        (
            ["-m", "seed=0,1", "tune.trials=2", "regularization.strength=0.1,0.01"],
            "regularization.strength='0.1,0.01' is invalid: it is swept and tuned at once",
        ),
        (
            ["-m", "seed=0,1", "tune.trials=2", "model=torch_mlp", "tune.space.train.lr.low=-1"],
            "a log-scaled range needs low > 0",
        ),
        (
            ["-m", "seed=0,1", "tune.trials=2", "+loss.tune.gamma={low:0,high:1}"],
            "loss 'ce' has no parameter 'gamma' to tune",
        ),
        (
            ["-m", "seed=0,1", "tune.trials=2", "+tune.space.model.max_iter={low:1}"],
            "tune.space.model.max_iter={'low': 1} is invalid: must be {low: number, high: number",
        ),
        (
            ["-m", "seed=0,1", "tune.trials=2", "+tune.space.model.dropout={low:0,high:0.5}"],
            "tune.space.model.dropout={'low': 0, 'high': 0.5} is invalid: names a key that no job",
        ),
        (
            [
                "-m",
                "seed=0,1",
                "tune.trials=2",
                "model=torch_mlp",
                "+tune.space.model.hidden_sizes={choices:[[8],[16]]}",
            ],
            "choices must be numbers, strings, true/false or null",
        ),
    ],
)
def test_bad_tuning_settings_are_refused_before_anything_is_recorded(tmp_path, args, message):
    done = run_cli([*args, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"], tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / STORAGE_FILE).exists()
