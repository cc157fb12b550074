"""The sweep's MLflow helper trains jobs too (lossbench.sweep.share, ``hydra.launcher.helper_jobs``): the jobs
it trains are recorded as the launching process records them; Ctrl-C stops the job it trains and the same
command resumes the rest; its settings are checked. Real processes, a real SQLite store."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from lossbench.errors import ConfigError
from lossbench.sweep import share
from tests.conftest import cli_env, run_cli, stored_by_helper, terminal_sigint
from tests.test_writer import FILES, _group_gone

# torch jobs of ~1 s each: long enough for the helper to take some (share.LONG_JOB_SECONDS) while the
# launching process trains
TORCH = ["model=torch_mlp", "train.epochs=150", "train.min_steps=0", "train.patience=null"]
TORCH += ["model.hidden_sizes=[32]", "report.enabled=false"]


def _children(folder) -> list:
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lossbench")
    return [r for r in client.search_runs([exp.experiment_id]) if "lossbench.role" not in r.data.tags], client


def _started(args: list[str], folder):
    """``python -m lossbench ARGS`` started in ``folder``, in a process group of its own, its output (stdout
    and stderr) read line by line."""
    return subprocess.Popen(
        [sys.executable, "-m", "lossbench", *args],
        cwd=folder,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=terminal_sigint,
    )


@pytest.mark.slow  # ~35 s: two 8-job torch sweeps (.ci/run's slow step)
def test_jobs_the_helper_trains_are_recorded_as_the_launching_process_records_them(tmp_path):
    """The same 8 torch jobs with helper_jobs true and false: the helper trained some (their runs carry its
    process id), and every job has the same params (but train.threads), metrics (but the fit's seconds),
    files, job folder files and log line either way."""
    recorded, folders = {}, {}
    for setting in ("true", "false"):
        folder = tmp_path / setting
        folder.mkdir()
        args = ["-m", "seed=0,1,2,3", "imbalance.ratio=1,10", f"hydra.launcher.helper_jobs={setting}"]
        out = run_cli([*args, *TORCH, "hydra.sweep.dir=sweep"], folder)
        assert out.returncode == 0, out.stderr
        assert "lossbench: 8 finished, 0 resumed, 0 skipped (N/A), 0 failed" in out.stdout
        trained = re.search(r"the MLflow helper process trained (\d+) of the 8 jobs", out.stdout)
        assert (trained is not None) == (setting == "true"), out.stdout
        for k in range(1, 9):
            assert re.search(rf"\[{k}/8\] model=torch_mlp .* finished: test balanced accuracy", out.stdout)
        runs, client = _children(folder)
        assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
        pids = {r.data.tags["lossbench.pid"] for r in runs}
        if setting == "true":
            assert 1 <= int(trained[1]) <= 5 and len(pids) == 2  # the two processes trained (3 first here)
            assert int(trained[1]) + stored_by_helper(out.stdout)[0] <= 8
        else:
            assert len(pids) == 1
        recorded[setting] = {
            (r.data.params["seed"], r.data.params["imbalance.ratio"]): (
                {k: v for k, v in r.data.params.items() if k != "train.threads"},
                {k: v for k, v in r.data.metrics.items() if k != "train/fit_seconds"},
                sorted(a.path for a in client.list_artifacts(r.info.run_id)),
            )
            for r in runs
        }
        folders[setting] = {
            str(p.relative_to(folder / "sweep")): p.read_text()
            for p in sorted((folder / "sweep").glob("*/.hydra/*.yaml"))
            if p.name != "hydra.yaml"  # it holds the run's own folder paths
        }
    assert recorded["true"].keys() == recorded["false"].keys() and len(recorded["true"]) == 8
    for key, (params, metrics, files) in recorded["true"].items():
        assert params == recorded["false"][key][0]
        assert sorted(files) == sorted(FILES) == sorted(recorded["false"][key][2])
        assert metrics == pytest.approx(recorded["false"][key][1], rel=1e-5, abs=1e-7)
    assert folders["true"] == folders["false"] and len(folders["true"]) == 16  # config + overrides, 8 jobs


@pytest.mark.slow  # ~30 s: a torch sweep interrupted, then resumed (.ci/run's slow step)
def test_ctrl_c_stops_the_job_the_helper_trains_and_the_same_command_resumes_the_rest(tmp_path):
    """Ctrl-C (SIGINT to the process group) while the helper trains a job: exit 130 at once; no process left;
    every FINISHED run has its files; the same command again resumes exactly those, marks the interrupted
    runs KILLED (their processes, the helper's among them, are gone) and trains the rest."""
    args = ["-m", "seed=range(0,8)", *TORCH, "train.epochs=400", "hydra.launcher.helper_jobs=true"]
    proc = _started(args, tmp_path)
    seen = []
    for line in proc.stdout:  # the helper takes the last job once three are done
        seen.append(line)
        text = "".join(seen)
        started, done = text.count(" running\n"), text.count(" finished: ")
        # two jobs in flight, the helper's among them, and both runs exist (a job logs its data line after
        # create_run)
        if "[8/8] model=torch_mlp" in text and started - done == 2 and text.count("data=") == started:
            os.killpg(proc.pid, signal.SIGINT)
            break
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted (Ctrl-C)" in out
    assert _group_gone(proc.pid, within=10.0)  # the helper ended with it
    runs, client = _children(tmp_path)
    finished = {r.data.tags["lossbench.fingerprint"] for r in runs if r.info.status == "FINISHED"}
    stopped = [r for r in runs if r.info.status == "RUNNING"]
    # the helper's job was stopped (the launching process's too, unless Python swallowed its interrupt in a
    # finalizer: then that job ends and the launch stops before the next, launch.noting_ctrl_c)
    exp = client.get_experiment_by_name("lossbench")
    parent = client.search_runs([exp.experiment_id], "tags.`lossbench.role` = 'sweep'")[0]
    assert parent.info.status == "KILLED"
    assert [r for r in stopped if r.data.tags["lossbench.pid"] != parent.data.tags["lossbench.pid"]]
    assert len(finished) + len(stopped) == len(runs) <= 5  # 3 done before the helper took a job
    assert all(
        {a.path for a in client.list_artifacts(r.info.run_id)} == FILES
        for r in runs
        if r.info.status == "FINISHED"
    )
    again = run_cli(args, tmp_path)
    assert again.returncode == 0, again.stderr
    text = again.stdout + again.stderr
    assert f"{8 - len(finished)} finished, {len(finished)} resumed" in text
    for run in stopped:
        assert f"run {run.info.run_id} was left RUNNING by a process that is gone: marked KILLED" in text
    runs, _ = _children(tmp_path)
    assert {r.info.run_id for r in runs if r.info.status == "KILLED"} == {r.info.run_id for r in stopped}
    assert len({r.data.tags["lossbench.fingerprint"] for r in runs if r.info.status == "FINISHED"}) == 8


def test_helper_jobs_settings():
    assert share.wanted("auto") == "auto" and share.wanted(True) is True and share.wanted(False) is False
    with pytest.raises(ConfigError) as e:
        share.wanted("sometimes")
    assert "hydra.launcher.helper_jobs" in str(e.value) and "auto, true or false" in str(e.value)


def test_which_jobs_the_helper_may_train():
    """auto: every scikit-learn job and torch jobs on the CPU; cuda jobs stay here; auto devices are asked
    in the helper (this process does not import torch for it)."""
    from omegaconf import OmegaConf

    def cfg(model: str, device: str = "auto"):
        return OmegaConf.create({"model": {"name": model}, "train": {"device": device}})

    assert share.helper_may_run(cfg("logreg"), "auto") is True
    assert share.helper_may_run(cfg("torch_mlp", "cpu"), "auto") is True
    assert share.helper_may_run(cfg("torch_mlp", "cuda:1"), "auto") is False
    assert share.helper_may_run(cfg("torch_mlp"), "auto") is None
    assert share.helper_may_run(cfg("torch_mlp", "cuda"), True) is True
    assert share.helper_may_run(cfg("logreg"), False) is False


def test_a_bad_helper_jobs_value_is_refused_before_anything_is_recorded(tmp_path):
    out = run_cli(["-m", "seed=0,1", "hydra.launcher.helper_jobs=maybe"], tmp_path)
    assert out.returncode == 2
    assert "hydra.launcher.helper_jobs" in out.stderr and "'maybe'" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow  # ~20 s: a torch sweep whose helper is killed (.ci/run's slow step)
def test_a_helper_that_dies_while_it_trains_leaves_its_job_to_the_launching_process(tmp_path):
    """The helper is killed (SIGKILL) while it trains a job: the launching process trains that job again (its
    run, left RUNNING by a process that is gone, is marked KILLED) and the rest; every job is FINISHED and
    the sweep exits 0."""
    import psutil

    args = ["-m", "seed=range(0,8)", *TORCH, "train.epochs=300", "hydra.launcher.helper_jobs=true"]
    proc = _started(args, tmp_path)
    seen, killed = [], None
    for line in proc.stdout:
        seen.append(line)
        # job 8 starts before job 7 is done: the helper took it
        if killed is None and "[8/8] model=torch_mlp" in line and " running" in line:
            assert not [x for x in seen if "[7/8] model=torch_mlp" in x and " finished: " in x]
            helpers = [
                p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())
            ]
            assert len(helpers) == 1, helpers
            killed = helpers[0].pid
            os.kill(killed, signal.SIGKILL)
    proc.wait(timeout=60)
    out = "".join(seen)
    assert proc.returncode == 0, out
    assert killed is not None
    assert "lossbench: 8 finished, 0 resumed, 0 skipped (N/A), 0 failed" in out
    assert "the MLflow helper process ended while it trained job 8; it runs here" in out
    runs, _ = _children(tmp_path)
    assert len({r.data.tags["lossbench.fingerprint"] for r in runs if r.info.status == "FINISHED"}) == 8
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}
    assert all(r.data.tags["lossbench.pid"] != str(killed) for r in runs if r.info.status == "FINISHED")
