"""The MLflow helper process (lossbench.writer): a sweep's finished runs are stored by it while the next job
trains; stored whole before the launch returns; stored by the job's process when the helper dies; a write it
cannot make is a failed job, with the run's id in the log. Real processes, a real SQLite store."""

from __future__ import annotations

import json
import logging
import os
import sys
from functools import partial

import pytest
from mlflow.tracking import MlflowClient

from lossbench import writer
from lossbench.errors import ConfigError
from lossbench.pipeline import execute, prepare
from lossbench.runtime import busy_cores, cores, torch_threads
from lossbench.sweep.jobs import STATUS_FILE, _recorded, _tracker, store_finished, write_status
from tests.conftest import cli_env, compose_cfg, run_cli, stored_by_helper, terminal_sigint

FILES = {"config.yaml", "per_class_test.csv", "reliability_test.json", "confusion_matrix_test.png"}


def _die(parent: int) -> None:
    """Handed to the helper: it ends at once, as a killed process does (and does nothing when this process,
    the parent, runs it again in the helper's place)."""
    if os.getpid() != parent:
        os._exit(3)


def _started(uri: str, seed: int, folder):
    """A logreg run started by this process's tracker, its result, and what the helper needs to store it."""
    cfg = compose_cfg([f"seed={seed}", "tracking.experiment=w"])
    tracker = _tracker(uri, "w")
    run_id = tracker.start(cfg)
    result = execute(prepare(cfg))
    write = partial(write_status, folder / str(seed), fingerprint=f"fp{seed}", job={})
    record = partial(_recorded, write, run_id, "finished", {})
    args = (uri, "w", run_id, cfg, result, tracker.take_pending(run_id), record)
    return run_id, args


def _hand_over(helper, uri: str, seeds, folder) -> list[str]:
    """Start a run for each seed and hand its end to ``helper``; the run ids."""
    ids = []
    for seed in seeds:
        run_id, args = _started(uri, seed, folder)
        helper.store(store_finished, args, label=f"job {seed}", run_id=run_id)
        ids.append(run_id)
    return ids


def _group_gone(pgid: int, within: float) -> bool:
    import time

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _status(folder, seed: int) -> dict:
    return json.loads((folder / str(seed) / STATUS_FILE).read_text())


def test_runs_handed_to_the_helper_are_stored_whole_when_it_closes(tmp_path, caplog):
    """Three runs handed over: after close every one is FINISHED with its params, metrics and four files,
    and its job status says finished; the helper stored them, but for those it had not begun when close
    came (it is still starting), which this process stored meanwhile; the log line counts both."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    helper = writer.Writer()
    with caplog.at_level(logging.INFO, logger="lossbench"):
        ids = _hand_over(helper, uri, range(3), tmp_path)
        helper.close()
    assert helper.stored >= 1 and helper.stored + helper.stored_here == 3
    for seed, run_id in enumerate(ids):
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["seed"] == str(seed) and "class_counts.train" in run.data.params
        assert 0.5 < run.data.metrics["test/balanced_accuracy"] <= 1.0
        assert {a.path for a in client.list_artifacts(run_id)} == FILES
        assert _status(tmp_path, seed) == {
            "status": "finished",
            "run_id": run_id,
            "fingerprint": f"fp{seed}",
            "job": {},
        }
    assert stored_by_helper(caplog.text) == (helper.stored, helper.stored_here)


def _sleep(seconds: float) -> None:
    """Handed to the helper: keeps it busy (the runs handed over after it wait)."""
    import time

    time.sleep(seconds)


def test_a_helper_that_falls_behind_leaves_runs_to_this_process(tmp_path, caplog, monkeypatch):
    """The helper busy (a slow call first): once MAX_BEHIND runs wait for it, each next run is stored here at
    once; close waits for the rest. Every run FINISHED whole; the log line counts both processes' runs."""
    monkeypatch.setattr(writer, "MAX_BEHIND", 3)  # fewer runs to hand over than the default's 16
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    helper = writer.Writer()
    helper.store(_sleep, (6.0,), label="a slow call", run_id="none")  # waits as a run would
    with caplog.at_level(logging.INFO, logger="lossbench"):
        ids = _hand_over(helper, uri, range(writer.MAX_BEHIND + 1), tmp_path)
        assert helper.stored_here == 2  # the last one handed over, at once
        helper.close()
    assert helper.stored + helper.stored_here == writer.MAX_BEHIND + 2  # the slow call counts as one
    for seed, run_id in enumerate(ids):
        assert client.get_run(run_id).info.status == "FINISHED"
        assert {a.path for a in client.list_artifacts(run_id)} == FILES
        assert _status(tmp_path, seed)["status"] == "finished"
    assert stored_by_helper(caplog.text) == (helper.stored, helper.stored_here)


def test_runs_a_dead_helper_left_are_stored_by_the_jobs_process(tmp_path, caplog):
    """The helper ends (killed) before it stores anything: close stores every run here, FINISHED with its
    values, and says so (for the runs it had handed over; the newest, not begun there, close takes back
    first); nothing handed over is lost."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    helper = writer.Writer()
    helper.store(_die, (os.getpid(),), label="the killer", run_id="none")
    with caplog.at_level(logging.INFO, logger="lossbench"):
        ids = _hand_over(helper, uri, range(2), tmp_path)
        helper.close()
    assert helper.stored == 0
    for seed, run_id in enumerate(ids):
        assert client.get_run(run_id).info.status == "FINISHED"
        assert {a.path for a in client.list_artifacts(run_id)} == FILES
        assert _status(tmp_path, seed)["status"] == "finished"
    assert f"job 0: the MLflow helper process ended; storing run {ids[0]} here" in caplog.text


def test_a_write_the_helper_cannot_make_is_a_failed_job_named_in_the_log(tmp_path, caplog):
    """A run deleted before its end is stored: MLflow refuses the write; the job's status is failed with
    the reason, the error line names the job and the run, and the next run is stored all the same."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    gone, gone_args = _started(uri, 0, tmp_path)
    kept, kept_args = _started(uri, 1, tmp_path)
    client.delete_run(gone)
    helper = writer.Writer()
    with caplog.at_level(logging.INFO, logger="lossbench"):
        helper.store(store_finished, gone_args, label="job 0", run_id=gone)
        helper.store(store_finished, kept_args, label="job 1", run_id=kept)
        helper.close()
    status = _status(tmp_path, 0)
    assert status["status"] == "failed" and status["reason"].startswith("storing the run failed: ")
    assert f"job 0: storing run {gone} failed: " in caplog.text
    assert _status(tmp_path, 1)["status"] == "finished" and client.get_run(kept).info.status == "FINISHED"


def test_when_the_helper_is_used():
    assert writer.wanted("auto", 2, cores=2) and writer.wanted(True, 1, cores=1)
    assert not writer.wanted("auto", 1, cores=16)  # one job gains nothing
    assert not writer.wanted("auto", 50, cores=1)  # one core: the helper only competes
    assert not writer.wanted(False, 50, cores=16)
    with pytest.raises(ConfigError) as e:
        writer.wanted("sometimes", 2)
    assert "hydra.launcher.background_writes" in str(e.value) and "sometimes" in str(e.value)


def test_the_jobs_process_leaves_the_helper_a_core():
    """Inside background_writes: BLAS/OpenMP pools at most cores - 1 threads, and train.threads=auto one core
    fewer (at least 1); outside, as before."""
    from threadpoolctl import threadpool_info

    before = {(p["internal_api"], p["filepath"]): p["num_threads"] for p in threadpool_info()}
    with writer.background_writes(True) as helper:
        assert writer.current() is helper is not None
        limit = max(1, cores() - 1)
        assert all(p["num_threads"] <= limit for p in threadpool_info())
    assert writer.current() is None
    assert {(p["internal_api"], p["filepath"]): p["num_threads"] for p in threadpool_info()} == before
    assert torch_threads("auto", 1, reserved=1) == max(1, cores() - busy_cores() - 1)
    assert torch_threads(3, 1, reserved=1) == 3


def test_a_sweep_through_the_helper_records_what_it_records_without_it(tmp_path):
    """The same 3-job sweep with background_writes true and false: the same runs (params but train.threads,
    metrics but the fit's seconds, files), all FINISHED when the command returns; the helper stored the
    first's 3 runs, made its store and drew figures of its report; the two reports show the same figures,
    with the same panels."""
    import re

    from PIL import Image

    recorded, shown = {}, {}
    for setting in ("true", "false"):
        folder = tmp_path / setting
        folder.mkdir()
        out = run_cli(
            [
                "-m",
                "seed=0,1,2",
                "imbalance.ratio=1,10",
                f"hydra.launcher.background_writes={setting}",
                "hydra.launcher.helper_jobs=false",  # the helper only stores (test_share: it trains too)
                "hydra.sweep.dir=sweep",
            ],
            folder,
        )
        assert out.returncode == 0, out.stderr
        there, here = stored_by_helper(out.stdout)
        assert (there + here, there >= 1) == ((6, True) if setting == "true" else (0, False))
        assert "lossbench: 6 finished, 0 resumed, 0 skipped (N/A), 0 failed" in out.stdout
        drew = re.search(r"\((\d+) of (\d+) figures drawn by the helper process\)", out.stdout)
        assert (drew is not None and int(drew[1]) >= 1) == (setting == "true"), out.stdout
        report = folder / "reports" / "lossbench"
        srcs = re.findall(r'<img src="(figures/[^"]+)"', (report / "index.html").read_text())
        assert srcs and sorted(srcs) == sorted(f"figures/{p.name}" for p in (report / "figures").iterdir())
        shown[setting] = {src: Image.open(report / src).text["Panels"] for src in srcs}
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        exp = client.get_experiment_by_name("lossbench")
        runs = [r for r in client.search_runs([exp.experiment_id]) if "lossbench.role" not in r.data.tags]
        assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
        recorded[setting] = {
            (r.data.params["seed"], r.data.params["imbalance.ratio"]): (
                {k: v for k, v in r.data.params.items() if k != "train.threads"},  # one fewer with the helper
                {k: v for k, v in r.data.metrics.items() if k != "train/fit_seconds"},
                sorted(a.path for a in client.list_artifacts(r.info.run_id)),
            )
            for r in runs
        }
    # the same params and files; the same metrics up to BLAS's summation order (the helper leaves the fit one
    # thread fewer: lbfgs's probabilities then differ by ~1e-9 on the larger splits)
    assert recorded["true"].keys() == recorded["false"].keys()
    for key, (params, metrics, files) in recorded["true"].items():
        assert params == recorded["false"][key][0] and files == recorded["false"][key][2]
        assert metrics == pytest.approx(recorded["false"][key][1], rel=1e-6, abs=1e-9)
    assert sorted(next(iter(recorded["true"].values()))[2]) == sorted(FILES)
    assert shown["true"] == shown["false"] and len(shown["true"]) >= 4


def test_a_bad_background_writes_value_is_refused_before_anything_is_recorded(tmp_path):
    out = run_cli(["-m", "seed=0,1", "hydra.launcher.background_writes=sometimes"], tmp_path)
    assert out.returncode == 2
    assert "hydra.launcher.background_writes" in out.stderr and "'sometimes'" in out.stderr
    assert "auto, true or false" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_ctrl_c_keeps_every_run_handed_to_the_helper_and_the_same_command_resumes_them(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the helper holds runs: exit
    130; the runs it was handed are FINISHED with their files; no helper process is left; the same command
    again resumes exactly those."""
    import signal
    import subprocess
    import sys

    args = [
        "-m",
        "seed=range(0,30)",
        "report.enabled=false",
        "hydra.launcher.background_writes=true",
        "hydra.launcher.helper_jobs=false",  # every run but the interrupted one is handed to the helper
    ]
    env = cli_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossbench", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=terminal_sigint,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "[6/30]" in line and "finished:" in line:
            os.killpg(proc.pid, signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    text = "".join(seen) + out
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C)" in err
    stored = sum(stored_by_helper(text))
    assert stored >= 5
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lossbench")
    children = [r for r in client.search_runs([exp.experiment_id]) if "lossbench.role" not in r.data.tags]
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert len(finished) == stored
    assert all({a.path for a in client.list_artifacts(r.info.run_id)} == FILES for r in finished)
    assert _group_gone(proc.pid, within=10.0)  # the helper (and multiprocessing's tracker) ended with it
    again = run_cli([*args, "seed=range(0,8)"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{8 - stored} finished, {stored} resumed" in again.stdout


def test_a_ctrl_c_during_a_hand_over_waits_for_the_hand_over_to_complete():
    """The pool's bookkeeping in submit must not be cut in half by Ctrl-C (a half-submitted item made the
    pool's shutdown wait forever): inside the block SIGINT is held back, the block runs to its end, and the
    KeyboardInterrupt comes right after it; the previous handler is back."""
    import signal

    from lossbench.writer import _interrupt_deferred

    started = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's, were it ignored (nohup &)
    try:
        before = signal.getsignal(signal.SIGINT)
        steps = []
        with pytest.raises(KeyboardInterrupt):
            with _interrupt_deferred():
                signal.raise_signal(signal.SIGINT)
                steps.append("after the signal")
            steps.append("after the block")  # not reached: the interrupt is raised at the block's end
        assert steps == ["after the signal"]
        assert signal.getsignal(signal.SIGINT) is before
        with _interrupt_deferred():
            steps.append("quiet")
        assert steps[-1] == "quiet" and signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGINT, started)


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_helper_makes_the_new_store_a_sweep_then_writes_to(tmp_path):
    """create_store while the sweep is planned, adopt_store once it is accepted: a store MLflow made, under
    the store's name, nothing else left in the folder, and MLflow reads and writes it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    helper = writer.Writer()
    try:
        helper.create_store(uri)
        assert not (tmp_path / "mlflow.db").exists()  # nothing under the store's name before it is accepted
        assert helper.adopt_store(uri)
        assert not helper.adopt_store(uri)  # once
    finally:
        helper.close()
    assert _names(tmp_path) == ["mlflow.db"]
    client = MlflowClient(uri)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    run = client.create_run(client.create_experiment("mine"))
    client.log_metric(run.info.run_id, "m", 0.5)
    client.set_terminated(run.info.run_id)
    assert MlflowClient(uri).get_run(run.info.run_id).data.metrics == {"m": 0.5}


def test_a_store_the_helper_made_for_a_refused_or_overtaken_sweep_is_removed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    helper = writer.Writer()
    helper.create_store(uri)
    helper.close()  # the sweep was refused: never adopted
    assert _names(tmp_path) == []
    # another process creates the store meanwhile: it is left as that process made it
    helper = writer.Writer()
    try:
        helper.create_store(uri)
        theirs = MlflowClient(uri).create_experiment("theirs")
        assert not helper.adopt_store(uri)
    finally:
        helper.close()
    assert _names(tmp_path) == ["mlflow.db"]
    assert MlflowClient(uri).get_experiment_by_name("theirs").experiment_id == theirs
    # a store that exists is never made again
    helper = writer.Writer()
    try:
        helper.create_store(uri)
        assert not helper.adopt_store(uri)
    finally:
        helper.close()
    assert _names(tmp_path) == ["mlflow.db"]


def test_stores_left_unfinished_by_ended_sweeps_are_removed_when_a_helper_makes_one(tmp_path):
    """A sweep killed (SIGKILL) while its helper made the store leaves the hidden file: the next helper that
    makes a store there removes those of ended processes on this host, and no other."""
    import socket
    import subprocess

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host = socket.gethostname()
    dead = [
        f".mlflow.db.lossbench-new-{host}-{ended.pid}",
        f".mlflow.db.lossbench-new-{host}-{ended.pid}-journal",
    ]
    kept = [
        f".mlflow.db.lossbench-new-{host}-{os.getppid()}",  # a live process: its sweep may still adopt it
        f".mlflow.db.lossbench-new-other-host.example-{ended.pid}",  # a shared folder: not ours to judge
        f".other.db.lossbench-new-{host}-{ended.pid}",  # beside another store
    ]
    for name in dead + kept:
        (tmp_path / name).write_bytes(b"partial")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    helper = writer.Writer()
    try:
        assert helper.create_store(uri)
        assert helper.adopt_store(uri)
    finally:
        helper.close()
    assert _names(tmp_path) == sorted(["mlflow.db", *kept])
    assert all((tmp_path / name).read_bytes() == b"partial" for name in kept)


def test_a_sweep_refused_while_the_helper_made_its_store_leaves_no_store(tmp_path):
    refused = ["-m", "seed=0,1", "imbalance.ratio=0.5", "hydra.launcher.background_writes=true"]
    out = run_cli(refused, tmp_path)
    assert out.returncode == 2, out.stderr
    assert "imbalance.ratio=0.5 is invalid" in out.stderr
    assert [n for n in _names(tmp_path) if "mlflow" in n] == []
