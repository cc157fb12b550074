"""Sweeps as users run them: Hydra multiruns in subprocesses, real SQLite MLflow stores in tmp folders."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import cli_env, run_cli
from tests.test_progress import check_progress

SMOKE_FINISHED, SMOKE_NA = 20, 4  # 2 models x 3 losses x 2 ratios x 2 seeds; focal on logreg is N/A


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _store(folder):
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
    parents = [r for r in runs if r.data.tags.get("lossbench.role") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def client_artifact_json(run, name):
    """A run's JSON artifact, read from its local artifact folder."""
    from lossbench.store import local_artifact_dir

    return json.loads((local_artifact_dir(run.info.artifact_uri) / name).read_text())


def test_smoke_sweep_nests_children_under_one_parent_and_resumes_without_duplicates(tmp_path):
    proc = run_cli(["+experiment=smoke"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        f"lossbench: {SMOKE_FINISHED} finished, 0 resumed, {SMOKE_NA} skipped (N/A), 0 failed" in proc.stderr
    )
    _, parents, children = _store(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert len(children) == SMOKE_FINISHED
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert (
        parent.data.metrics["sweep/finished"] == SMOKE_FINISHED
        and parent.data.metrics["sweep/skipped"] == SMOKE_NA
    )
    # the right params: each (model, loss, ratio, seed) of the grid once, focal never on logreg
    grid = Counter(
        (
            r.data.params["model.name"],
            r.data.params["loss.name"],
            r.data.params["imbalance.ratio"],
            r.data.params["seed"],
        )
        for r in children
    )
    assert max(grid.values()) == 1 and len(grid) == SMOKE_FINISHED
    assert ("logreg", "focal", "1.0", "0") not in grid and ("torch_mlp", "focal", "5.0", "1") in grid
    assert {r.data.params["data.name"] for r in children} == {"wine"}
    assert {r.data.params["train.epochs"] for r in children} == {"30"}
    # auto, one job at a time: the cores other work does not keep busy, read once by the sweep's process
    (threads,) = {r.data.params["train.threads"] for r in children}
    assert 1 <= int(threads) <= _cores()
    # job folders under experiments/smoke/<timestamp>/<job>/, for the jobs that ran (N/A ones need none)
    sweep_dirs = list((tmp_path / "experiments" / "smoke").iterdir())
    assert len(sweep_dirs) == 1 and len(list(sweep_dirs[0].glob("*/lossbench_status.json"))) == SMOKE_FINISHED
    jobs = client_artifact_json(parent, "sweep_jobs.json")
    assert Counter(j["status"] for j in jobs) == {"finished": SMOKE_FINISHED, "skipped": SMOKE_NA}

    # another thread count computes the same configs: the fingerprints match and the sweep resumes
    again = run_cli(["+experiment=smoke", "train.threads=1"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        f"lossbench: 0 finished, {SMOKE_FINISHED} resumed, {SMOKE_NA} skipped (N/A), 0 failed" in again.stderr
    )
    _, parents, children = _store(tmp_path)
    assert len(children) == SMOKE_FINISHED and len(parents) == 2

    # narrowing one swept axis on the command line, and forcing a re-run of what is left
    forced = run_cli(["+experiment=smoke", "model=logreg", "seed=0", "resume=false"], cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "lossbench: 4 finished, 0 resumed, 2 skipped (N/A), 0 failed" in forced.stderr
    assert len(_store(tmp_path)[2]) == SMOKE_FINISHED + 4


@pytest.mark.slow  # ~20 s: Hydra's joblib launcher, 2 workers (.ci/run's slow step)
def test_parallel_sweep_with_joblib_finishes_the_same_runs(tmp_path):
    proc = run_cli(["+experiment=smoke", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, parents, children = _store(tmp_path)
    assert len(parents) == 1 and len(children) == SMOKE_FINISHED
    assert all(r.info.status == "FINISHED" for r in children)
    # train.threads=auto shares the cores among joblib's 2 workers
    assert {int(r.data.params["train.threads"]) for r in children} <= set(range(1, max(1, _cores() // 2) + 1))


def test_the_lossbench_launcher_runs_jobs_on_worker_processes(tmp_path):
    proc = run_cli(["+experiment=smoke", "hydra.launcher.n_jobs=2"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"running {SMOKE_FINISHED} jobs on 2 worker processes" in proc.stdout + proc.stderr
    check_progress(proc.stdout, SMOKE_FINISHED)  # elapsed and ETA right with jobs completing out of order
    _, parents, children = _store(tmp_path)
    assert len(parents) == 1 and len(children) == SMOKE_FINISHED
    assert all(r.info.status == "FINISHED" for r in children)
    # worker processes trained them, never the launching one, at most two at a time (loky may replace a
    # worker between jobs, e.g. after its memory grew, so the count of distinct pids is not fixed)
    pids = {r.data.tags["lossbench.pid"] for r in children}
    assert parents[0].data.tags["lossbench.pid"] not in pids and len(pids) >= 2
    events = sorted([(r.info.start_time, 1) for r in children] + [(r.info.end_time, -1) for r in children])
    running = [sum(step for _, step in events[: i + 1]) for i in range(len(events))]
    assert max(running) <= 2
    assert {int(r.data.params["train.threads"]) for r in children} <= set(range(1, max(1, _cores() // 2) + 1))
    assert {r.data.tags["lossbench.pid"] for r in children}.isdisjoint(
        {parents[0].data.tags["lossbench.pid"]}
    )


def test_parallel_launchers_get_psutil_or_a_warning():
    """Without psutil, loky's workers run gc.collect() after every job (~0.3 s with torch and MLflow loaded);
    with it they only measure their memory. The `parallel` extra brings it; a sweep without it says so."""
    from joblib.externals.loky import process_executor

    from lossbench.sweep.run import launcher_advice

    assert process_executor._USE_PSUTIL  # this environment has the `parallel` extra installed
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    ours = "hydra_plugins.lossbench.launcher.LossbenchLauncher"
    advice = launcher_advice(joblib, psutil_installed=False)
    assert advice.startswith("psutil is not installed: joblib's workers will run a full garbage collection")
    assert launcher_advice(ours, psutil_installed=False) == advice
    assert launcher_advice(joblib) is None  # installed here
    assert launcher_advice("hydra._internal.core_plugins.basic_launcher.BasicLauncher", False) is None


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_parallel_sweep_on_a_fresh_store_loses_nothing(tmp_path, attempt):
    proc = run_cli(["+experiment=smoke", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, parents, children = _store(tmp_path)
    assert len(children) == SMOKE_FINISHED and all(r.info.status == "FINISHED" for r in children)
    assert parents[0].data.metrics["sweep/finished"] == SMOKE_FINISHED


def test_a_diverging_config_is_recorded_failed_and_the_others_finish(tmp_path):
    args = [
        "+experiment=smoke",
        "model=torch_mlp",
        "loss=ce",
        "imbalance.ratio=1",
        "seed=0",
        "train.optimizer=sgd",
        "train.lr=0.01,1e30",
    ]
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 1
    assert "lossbench: 1 finished, 0 resumed, 0 skipped (N/A), 1 failed" in proc.stderr
    client, parents, children = _store(tmp_path)
    assert parents[0].info.status == "FAILED"
    by_lr = {r.data.params["train.lr"]: r for r in children}
    assert by_lr["0.01"].info.status == "FINISHED"
    failed = by_lr["1e+30"]
    assert failed.info.status == "FAILED"
    assert "NonFiniteLossError: non-finite loss" in failed.data.tags["lossbench.failure_reason"]
    assert "traceback.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}


@pytest.mark.slow  # ~24 s: a sweep killed, then resumed (.ci/run's slow step)
def test_a_killed_sweep_resumes_to_exactly_one_finished_run_per_config(tmp_path):
    env = cli_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossbench", "+experiment=smoke"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and done < 8:
        time.sleep(0.5)
        statuses = list(tmp_path.glob("experiments/smoke/*/*/lossbench_status.json"))
        done = sum(json.loads(p.read_text())["status"] == "finished" for p in statuses)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 8 <= done < SMOKE_FINISHED, f"{done} finished before the kill"

    again = run_cli(["+experiment=smoke"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    _, parents, children = _store(tmp_path)
    finished = Counter(r.data.tags["lossbench.fingerprint"] for r in children if r.info.status == "FINISHED")
    assert len(finished) == SMOKE_FINISHED and set(finished.values()) == {1}
    # what the killed process left RUNNING (its parent run, the child it was training) is KILLED now
    runs = parents + children
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]
    for run in killed:
        assert run.data.tags["lossbench.failure_reason"].startswith("interrupted: process ")
    report = run_cli(["--experiment", "smoke", "--all"], cwd=tmp_path, module="lossbench.report")
    assert report.returncode == 0, report.stderr[-2000:]
    readme = (tmp_path / "reports" / "smoke" / "README.md").read_text()
    assert "still RUNNING" not in readme
    kids_killed = sum(1 for r in children if r.info.status == "KILLED")
    if kids_killed:
        assert f"interrupted (KILLED) {kids_killed}" in readme


def test_an_unreachable_tracking_server_fails_fast_naming_it(tmp_path):
    start = time.time()
    proc = run_cli(["+experiment=smoke", "tracking.uri=http://127.0.0.1:9"], cwd=tmp_path)
    assert time.time() - start < 30
    assert proc.returncode != 0
    assert "tracking.uri='http://127.0.0.1:9' is invalid: the MLflow server cannot be reached" in proc.stderr
    assert not list(tmp_path.glob("experiments/smoke/*/*/lossbench_status.json"))  # no job trained
    single = run_cli(["tracking.uri=http://127.0.0.1:9"], cwd=tmp_path)
    assert single.returncode != 0 and "cannot be reached" in single.stderr


@pytest.mark.slow  # ~17 s: submitit's local launcher (.ci/run's slow step)
def test_submitit_local_launcher_runs_jobs_as_separate_processes(tmp_path):
    """The scale-out path (Hydra's Submitit launcher) with its local executor: one process per job."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    args = [
        "+experiment=smoke",
        "model=logreg",
        "seed=0",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
    ]
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lossbench: 4 finished, 0 resumed, 2 skipped (N/A), 0 failed" in proc.stderr
    _, parents, children = _store(tmp_path)
    assert len(parents) == 1 and len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    # submitit wrote its own per-job logs: the jobs really ran in other processes
    assert list(tmp_path.glob("experiments/smoke/*/.submitit/*/*_log.out"))


@pytest.mark.slow
def test_vectorised_seed_groups_give_each_seed_its_own_run_with_the_sequential_numbers(tmp_path):
    narrowed = [
        "+experiment=smoke",
        "model=torch_mlp",
        "model.activation=tanh",
    ]  # 3 losses x 2 ratios x 2 seeds
    metrics = {}
    for mode in ("false", "true"):
        folder = tmp_path / mode
        folder.mkdir()
        proc = run_cli([*narrowed, f"vectorise_seeds={mode}"], cwd=folder)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "lossbench: 12 finished, 0 resumed, 0 skipped (N/A), 0 failed" in proc.stderr
        assert ("6 groups of jobs that differ only by seed" in proc.stdout + proc.stderr) == (mode == "true")
        _, parents, children = _store(folder)
        assert len(parents) == 1 and len(children) == 12
        metrics[mode] = {
            (
                r.data.params["loss.name"],
                r.data.params["imbalance.ratio"],
                r.data.params["seed"],
            ): r.data.metrics
            for r in children
        }
    assert metrics["true"].keys() == metrics["false"].keys()
    for key, sequential in metrics["false"].items():
        for name in ("test/balanced_accuracy", "test/log_loss", "val/balanced_accuracy", "train/best_epoch"):
            assert metrics["true"][key][name] == pytest.approx(sequential[name], abs=1e-5), (key, name)
