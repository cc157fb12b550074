"""Tracker on a real SQLite store, through MLflow's public client: what runs store, lookups, interruptions."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from lossbench.config import fingerprint
from lossbench.tracking import TAG_FAILURE, Tracker
from tests.conftest import compose_cfg, tiny


def _cfg(seed: int) -> dict:
    return compose_cfg([f"seed={seed}", "tracking.experiment=t"])


def test_fingerprint_lookup_read_from_sqlite_equals_mlflows_search(tmp_path):
    """``runs_with_fingerprint`` reads a plain SQLite file of a tested schema directly; a URI with a query
    string (the same file) takes search_runs. Both must answer alike: RUNNING and FINISHED runs only, oldest
    first, deleted runs left out, with their identity tags."""
    db = tmp_path / "mlflow.db"
    direct = Tracker(f"sqlite:///{db}", "t")
    searched = Tracker(f"sqlite:///{db}?timeout=20", "t")
    client = MlflowClient(f"sqlite:///{db}")
    twin = _cfg(3)
    ids = {}
    for name, cfg in (("finished", _cfg(0)), ("failed", _cfg(1)), ("deleted", _cfg(2)), ("twin", twin)):
        ids[name] = direct.start(cfg)
        client.set_terminated(ids[name], "FAILED" if name == "failed" else "FINISHED")
    client.delete_run(ids["deleted"])
    time.sleep(0.01)  # a later start_time
    newer_twin = direct.start(twin)
    client.set_terminated(newer_twin, "FINISHED")
    running = direct.start(twin)  # never terminated

    def seen(tracker, cfg):
        return [
            (r.run_id, r.status, r.tags.get("lossbench.pid"))
            for r in tracker.runs_with_fingerprint(fingerprint(cfg))
        ]

    import os

    pid = str(os.getpid())
    assert seen(direct, twin) == [
        (ids["twin"], "FINISHED", pid),
        (newer_twin, "FINISHED", pid),
        (running, "RUNNING", pid),
    ]
    for name, seed in (("finished", 0), ("failed", 1), ("deleted", 2), ("twin", 3)):
        assert seen(direct, _cfg(seed)) == seen(searched, _cfg(seed)), name
    assert direct.finished_run(fingerprint(twin)) == searched.finished_run(fingerprint(twin)) == newer_twin
    assert direct.finished_run(fingerprint(_cfg(1))) is None  # FAILED only
    assert direct.finished_run("0" * 16) is None


def test_the_direct_reads_keep_one_connection_that_sees_every_commit_and_a_store_made_anew(tmp_path):
    """The read-only connection is opened once per thread and store (the second query uses it); a run
    stored between two queries is in the second; a store removed and made again under the same name is read
    as the new one, not through the old file's connection."""
    import shutil
    import threading

    from lossbench import store

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    sql = "SELECT count(*) FROM runs"
    tracker = Tracker(uri, "t")
    assert store.query(uri, sql) == [(0,)]
    first = store._reader(db)
    tracker.start(_cfg(0))
    assert store.query(uri, sql) == [(1,)] and store._reader(db) is first  # the same connection, fresh data
    other = []
    thread = threading.Thread(target=lambda: other.append((store.query(uri, sql), store._reader(db))))
    thread.start()
    thread.join()
    assert other[0][0] == [(1,)] and other[0][1] is not first  # a thread of its own
    other_store = Tracker(f"sqlite:///{tmp_path / 'other.db'}", "t")
    for seed in (1, 2):
        other_store.start(_cfg(seed))
    shutil.move(db, tmp_path / "old.db")
    shutil.copy(tmp_path / "other.db", db)  # another store under the same name
    assert store.query(uri, sql) == [(2,)] and store._reader(db) is not first


def test_a_store_of_an_untested_schema_is_read_through_mlflow_with_a_warning(tmp_path, caplog, monkeypatch):
    """Direct reads only for the schema revisions they were tested on: with this store's revision taken off
    that list (as a newer MLflow's would be), the same lookups are answered by search_runs, with one
    warning."""
    from lossbench import store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "t")
    run_id = tracker.start(_cfg(0))
    tracker.client.set_terminated(run_id, "FINISHED")
    revision = store.revision(tmp_path / "mlflow.db")
    assert revision in store.TESTED_REVISIONS
    assert store.query(uri, "SELECT count(*) FROM runs") == [(1,)]
    monkeypatch.setattr(store, "TESTED_REVISIONS", frozenset({"feedfacecafe"}))
    store._warn_untested.cache_clear()
    caplog.set_level(logging.WARNING, logger="lossbench")
    assert store.query(uri, "SELECT count(*) FROM runs") is None
    assert f"schema revision {revision}, which lossbench's direct reads were not tested with" in caplog.text
    assert tracker.finished_run(fingerprint(_cfg(0))) == run_id  # through search_runs
    assert caplog.text.count("were not tested with") == 1


def _result(seed: int):
    """A real RunResult (a small torch run: curves included), with a NaN and infinities in its numbers."""
    from lossbench.pipeline import execute, prepare

    cfg = compose_cfg(tiny(["model=torch_mlp", f"seed={seed}", "tracking.experiment=t"]))
    result = execute(prepare(cfg))
    result.metrics |= {"extra/nan": float("nan"), "extra/inf": float("inf"), "extra/-inf": float("-inf")}
    result.curves["val_loss"] = [*result.curves["val_loss"][:-1], float("nan")]
    return cfg, result


def test_a_finished_run_has_every_value_and_file(tmp_path):
    """A torch run shows its params while it trains; once FINISHED, all its params, metrics (NaN and
    infinities as logged), per-epoch histories and files are there."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "t")
    client = MlflowClient(uri)
    cfg, result = _result(0)
    run_id = tracker.start(cfg)
    running = client.get_run(run_id)
    assert running.info.status == "RUNNING" and running.data.params["model.name"] == "torch_mlp"
    done = []
    tracker.finish(run_id, cfg, result, done=done.append)
    expected_metrics = set(result.metrics) | {
        f"train/{k}"
        for k in ("fit_seconds", "epochs_run", "best_epoch", "n_train", "n_fit", "imbalance_ratio")
    }
    files = {"config.yaml", "per_class_test.csv", "reliability_test.json", "confusion_matrix_test.png"}
    assert done == [None]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and expected_metrics | {"curve/val_loss"} <= set(run.data.metrics)
    assert run.data.metrics["extra/inf"] > 1e308 and run.data.metrics["extra/-inf"] < -1e308
    assert run.data.metrics["extra/nan"] != run.data.metrics["extra/nan"]
    history = client.get_metric_history(run_id, "curve/val_loss")
    assert [m.step for m in history] == list(range(1, len(result.curves["val_loss"]) + 1))
    assert history[-1].value != history[-1].value and history[0].value == result.curves["val_loss"][0]
    assert run.data.params["seed"] == "0" and run.data.params["class_counts.train"].startswith("[")
    assert {a.path for a in client.list_artifacts(run_id)} == files
    assert run.data.tags["lossbench.realisation"] == "native"


def test_a_scikit_learn_runs_params_come_with_its_end_in_one_batch(tmp_path):
    """A fast model's params are stored with its metrics (one log_batch fewer), all of them."""
    from lossbench.pipeline import execute, prepare

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "t")
    client = MlflowClient(uri)
    cfg = _cfg(0)
    assert cfg["model"]["name"] == "logreg"
    run_id = tracker.start(cfg)
    assert client.get_run(run_id).data.params == {}
    tracker.finish(run_id, cfg, execute(prepare(cfg)))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "logreg" and run.data.params["seed"] == "0"
    assert "class_counts.train" in run.data.params and "test/balanced_accuracy" in run.data.metrics


def test_a_failed_run_keeps_its_reason_traceback_and_config(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "t")
    client = MlflowClient(uri)
    cfg = _cfg(0)
    run_id = tracker.start(cfg)
    try:
        raise ValueError("diverged at epoch 3")
    except ValueError as e:
        tracker.fail(run_id, cfg, e)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.params["model.name"] == cfg["model"]["name"]
    assert run.data.tags[TAG_FAILURE] == "ValueError: diverged at epoch 3"
    assert {a.path for a in client.list_artifacts(run_id)} == {"config.yaml", "traceback.txt"}
    path = client.download_artifacts(run_id, "traceback.txt", str(tmp_path / "tb"))
    with open(path) as f:
        text = f.read()
    assert "Traceback (most recent call last)" in text and text.rstrip().endswith(
        "ValueError: diverged at epoch 3"
    )


def test_runs_left_running_by_a_dead_process_are_marked_killed_others_are_left(tmp_path):
    """A process killed mid-run (here: one that exits without closing its run) leaves it RUNNING; a later
    lookup of the same config marks it KILLED with the reason. A run of a live process (this one) and a run
    from another host stay RUNNING."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = _cfg(0)
    code = (
        "import os, sys; sys.path.insert(0, {tests!r}); from conftest import compose_cfg\n"
        "from lossbench.tracking import Tracker\n"
        "t = Tracker({uri!r}, 't'); print(t.start(compose_cfg(['seed=0', 'tracking.experiment=t'])))\n"
        "sys.stdout.flush(); os._exit(0)\n"
    ).format(tests=str(__import__("pathlib").Path(__file__).parent), uri=uri)
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    dead_id = dead.stdout.strip().splitlines()[-1]
    tracker = Tracker(uri, "t")
    alive = tracker.start(cfg)
    remote = tracker.start(cfg, extra_tags={"lossbench.host": "another-host", "lossbench.pid": "1"})
    settled = tracker.settle_interrupted(fingerprint(cfg))
    assert [run_id for run_id, _ in settled] == [dead_id]
    client = MlflowClient(uri)
    killed = client.get_run(dead_id)
    assert killed.info.status == "KILLED"
    assert killed.data.tags[TAG_FAILURE].startswith("interrupted: process ")
    assert "ended without closing the run" in killed.data.tags[TAG_FAILURE]
    assert client.get_run(alive).info.status == "RUNNING" and client.get_run(remote).info.status == "RUNNING"
    assert tracker.settle_interrupted(fingerprint(cfg)) == []  # once


def test_mlflow_and_alembic_are_quieted_once_in_code_not_by_the_job_logging_config(tmp_path, caplog):
    """A logger named in hydra.job_logging has all its child loggers reset at every job's start (MLflow has
    ~160: ~3 ms a job): the Tracker sets MLflow's and alembic's levels once instead, and a new store's schema
    creation logs no INFO lines."""
    from hydra import compose, initialize_config_dir

    from lossbench.config import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert not cfg.hydra.job_logging.get("loggers")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    caplog.set_level(logging.INFO)
    Tracker(f"sqlite:///{tmp_path / 'new.db'}", "quiet")  # a new store: MLflow creates its schema
    assert logging.getLogger("mlflow").level == logging.WARNING
    assert logging.getLogger("alembic").level == logging.WARNING
    assert [r for r in caplog.records if r.name.startswith(("alembic", "mlflow"))] == []


def test_a_run_handed_over_keeps_its_params_and_artifact_uri_for_whoever_stores_its_end(tmp_path):
    """take_pending hands over a fast model's params and the artifact URI create_run answered; another
    tracker of the store finishes the run with them: its files land where MLflow reads them back (the
    client's list_artifacts, from the run it reads), its params are stored, and nothing is kept behind."""
    from lossbench.pipeline import execute, prepare
    from lossbench.tracking import Pending

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = _cfg(0)
    starter = Tracker(uri, "handover")
    run_id = starter.start(cfg)
    pending = starter.take_pending(run_id)
    client = MlflowClient(uri)
    assert isinstance(pending, Pending) and pending.artifact_uri == client.get_run(run_id).info.artifact_uri
    assert {p.key for p in pending.params} >= {"seed", "model.name", "loss.name"}
    assert starter.take_pending(run_id) == Pending([], None)  # handed over once
    Tracker(uri, "handover").finish(run_id, cfg, execute(prepare(cfg)), pending=pending)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["seed"] == "0"
    assert {a.path for a in client.list_artifacts(run_id)} == {
        "config.yaml",
        "per_class_test.csv",
        "reliability_test.json",
        "confusion_matrix_test.png",
    }
