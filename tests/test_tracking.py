"""Tracker on a real SQLite store: the shortcuts it takes on local stores answer as MLflow's client does."""

from __future__ import annotations

import time

from conftest import compose_cfg, tiny
from mlflow.tracking import MlflowClient

from lossbench.config import fingerprint
from lossbench.tracking import TAG_FAILURE, Tracker


def _cfg(seed: int) -> dict:
    return compose_cfg([f"seed={seed}", "tracking.experiment=t"])


def test_resume_lookup_read_from_sqlite_equals_mlflows_search(tmp_path):
    """``finished_run`` reads a plain SQLite file directly; a URI with a query string (the same file) takes
    search_runs. Both must answer alike: FINISHED only, deleted runs ignored, the newest of twins."""
    db = tmp_path / "mlflow.db"
    direct = Tracker(f"sqlite:///{db}", "t")
    searched = Tracker(f"sqlite:///{db}?timeout=20", "t")
    client = MlflowClient(f"sqlite:///{db}")
    cfgs = {name: _cfg(seed) for name, seed in (("finished", 0), ("failed", 1), ("deleted", 2), ("twin", 3))}
    ids = {}
    for name, cfg in cfgs.items():
        ids[name] = direct.start(cfg)
        client.set_terminated(ids[name], "FAILED" if name == "failed" else "FINISHED")
    client.delete_run(ids["deleted"])
    time.sleep(0.01)  # a later start_time
    newer_twin = direct.start(cfgs["twin"])
    client.set_terminated(newer_twin, "FINISHED")
    running = direct.start(_cfg(4))  # never terminated

    want = {
        "finished": ids["finished"],
        "failed": None,
        "deleted": None,
        "twin": newer_twin,
        "running": None,
        "unknown": None,
    }
    prints = {name: fingerprint(cfg) for name, cfg in cfgs.items()}
    prints |= {"running": fingerprint(_cfg(4)), "unknown": "0" * 16}
    for name, fp in prints.items():
        assert direct.finished_run(fp) == want[name], name
        assert searched.finished_run(fp) == want[name], name
    assert running not in want.values()


def test_artifacts_written_in_place_or_uploaded_are_the_same_to_mlflow(tmp_path):
    """Runs this tracker started get their files written straight into their local artifact folder; a run it
    did not start (artifact URI unknown to it) gets them through log_artifacts. MLflow lists both alike."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "t")
    client = MlflowClient(uri)
    own = tracker.start(_cfg(0))
    foreign = client.create_run(tracker.experiment_id).info.run_id
    for run_id in (own, foreign):
        tracker.fail(run_id, ValueError("diverged at epoch 3"))
    for run_id in (own, foreign):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED"
        assert run.data.tags[TAG_FAILURE] == "ValueError: diverged at epoch 3"
        path = client.download_artifacts(run_id, "traceback.txt", str(tmp_path / run_id))
        with open(path) as f:
            assert f.read().rstrip().endswith("ValueError: diverged at epoch 3")
    assert {a.path for a in client.list_artifacts(own)} == {"config.yaml", "traceback.txt"}
    assert {a.path for a in client.list_artifacts(foreign)} == {"traceback.txt"}
    client.download_artifacts(own, "config.yaml", str(tmp_path / "cfg"))
    assert "seed: 0" in (tmp_path / "cfg" / "config.yaml").read_text()


def _result(seed: int):
    """A real RunResult (a small torch run: curves included), with a NaN and infinities in its numbers."""
    from lossbench.pipeline import execute, prepare

    cfg = compose_cfg(tiny(["model=torch_mlp", f"seed={seed}", "tracking.experiment=t"]))
    result = execute(prepare(cfg))
    result.metrics |= {"extra/nan": float("nan"), "extra/inf": float("inf"), "extra/-inf": float("-inf")}
    result.curves["val_loss"] = [*result.curves["val_loss"][:-1], float("nan")]
    return cfg, result


def _as_mlflow_reads_it(client: MlflowClient, run_id: str) -> dict:
    run = client.get_run(run_id)
    info = run.info
    nan_safe = {k: ("nan" if v != v else v) for k, v in run.data.metrics.items()}
    histories = {
        k: [(m.step, "nan" if m.value != m.value else m.value) for m in client.get_metric_history(run_id, k)]
        for k in run.data.metrics
    }
    artifacts = sorted(a.path for a in client.list_artifacts(run_id))
    return {
        "status": info.status,
        "lifecycle_stage": info.lifecycle_stage,
        "user_id": info.user_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "artifact_uri": info.artifact_uri.replace(run_id, "<id>"),
        "ended_after_start": info.end_time is not None and info.end_time >= info.start_time,
        "params": run.data.params,
        "tags": {k: v for k, v in run.data.tags.items() if k != "mlflow.parentRunId"},
        "metrics": nan_safe,
        "histories": histories,
        "artifacts": artifacts,
    }


def test_runs_written_in_place_read_back_as_the_clients_runs(tmp_path):
    """A plain SQLite store gets its child runs written straight into MLflow's run tables (one transaction);
    the same store behind a URI with a query string is written by MLflow's client. MLflow must read both runs
    back alike: info, params, tags, latest metrics (NaN, +-inf), per-step histories, artifacts; and find them
    with search_runs filters on params, tags, metrics and status."""
    db = tmp_path / "mlflow.db"
    direct = Tracker(f"sqlite:///{db}", "t")
    via_client = Tracker(f"sqlite:///{db}?timeout=20", "t")
    assert direct._writer is not None and via_client._writer is None
    client = MlflowClient(f"sqlite:///{db}")
    cfg, result = _result(0)
    ids = {}
    for name, tracker in (("direct", direct), ("client", via_client)):
        parent = client.create_run(tracker.experiment_id).info.run_id
        ids[name] = tracker.start(cfg, parent_run_id=parent, extra_tags={"lossbench.sweep_id": "s1"})
        tracker.finish(ids[name], result)
    read = {name: _as_mlflow_reads_it(client, run_id) for name, run_id in ids.items()}
    assert read["direct"] == read["client"]
    assert _rows(db, ids["direct"]) == _rows(db, ids["client"])  # what MLflow's entities do not show, too
    got = read["direct"]
    assert got["status"] == "FINISHED" and got["user_id"] == "unknown"
    assert got["metrics"]["extra/nan"] == "nan"
    assert got["metrics"]["extra/inf"] == 1.7976931348623157e308 == -got["metrics"]["extra/-inf"]
    assert got["metrics"]["curve/val_loss"] == "nan"  # the last step's value is the latest
    assert len(got["histories"]["curve/train_loss"]) == len(result.curves["train_loss"]) > 1
    assert got["params"]["seed"] == "0" and got["tags"]["mlflow.runName"] == run_name_of(cfg)
    assert "confusion_matrix_test.png" in got["artifacts"]

    for query in (
        "params.seed = '0'",
        "tags.`lossbench.sweep_id` = 's1'",
        "metrics.`test/balanced_accuracy` > 0.1",
        "attributes.status = 'FINISHED'",
    ):
        found = {r.info.run_id for r in client.search_runs([direct.experiment_id], filter_string=query)}
        assert set(ids.values()) <= found, query


def _rows(db, run_id: str) -> dict:
    """The run's rows in the five run tables, its id and times left out (they differ by construction)."""
    import sqlite3

    con = sqlite3.connect(db)
    out = {
        "runs": con.execute(
            "SELECT name, source_type, source_name, entry_point_name, user_id, status, source_version, "
            "lifecycle_stage, experiment_id, deleted_time FROM runs WHERE run_uuid = ?",
            (run_id,),
        ).fetchall()
    }
    for table, columns in (
        ("params", "key, value"),
        ("tags", "key, value"),
        ("metrics", "key, value, step, is_nan"),
        ("latest_metrics", "key, value, step, is_nan"),
    ):
        rows = con.execute(f"SELECT {columns} FROM {table} WHERE run_uuid = ?", (run_id,)).fetchall()
        out[table] = sorted(r for r in rows if r[0] != "mlflow.parentRunId")
    con.close()
    return out


def run_name_of(cfg: dict) -> str:
    from lossbench.tracking import run_name

    return run_name(cfg)


def test_failed_runs_written_in_place_read_back_as_the_clients(tmp_path):
    db = tmp_path / "mlflow.db"
    trackers = {
        "direct": Tracker(f"sqlite:///{db}", "t"),
        "client": Tracker(f"sqlite:///{db}?timeout=20", "t"),
    }
    client = MlflowClient(f"sqlite:///{db}")
    read = {}
    for name, tracker in trackers.items():
        for error in (ValueError("diverged at epoch 3"), KeyboardInterrupt()):
            run_id = tracker.start(_cfg(1))
            tracker.fail(run_id, error)
            read[name, type(error).__name__] = _as_mlflow_reads_it(client, run_id)
    for error in ("ValueError", "KeyboardInterrupt"):
        assert read["direct", error] == read["client", error]
    assert read["direct", "ValueError"]["status"] == "FAILED"
    assert read["direct", "KeyboardInterrupt"]["status"] == "KILLED"
    assert read["direct", "ValueError"]["tags"][TAG_FAILURE] == "ValueError: diverged at epoch 3"
    assert read["direct", "ValueError"]["artifacts"] == ["config.yaml", "traceback.txt"]


def test_in_place_writes_refuse_what_mlflow_refuses_and_change_nothing(tmp_path):
    """A deleted run or experiment, a changed param, an invalid metric key: refused, as by MLflow's store, and
    the transaction leaves the run as it was."""
    import pytest
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    from lossbench.store import RunError

    db = tmp_path / "mlflow.db"
    tracker = Tracker(f"sqlite:///{db}", "t")
    client = MlflowClient(f"sqlite:///{db}")
    run_id = tracker.start(_cfg(2))
    before = _as_mlflow_reads_it(client, run_id)
    with pytest.raises(RunError, match=r"changing param values.*'seed': \('2', '3'\)"):
        tracker._log(run_id, metrics=[Metric("m", 1.0, 0, 0)], params=[Param("seed", "3")], status="FINISHED")
    with pytest.raises(MlflowException, match=r"metrics\[0\]\.name"):
        tracker._log(run_id, metrics=[Metric("bad//../key", 1.0, 0, 0)], status="FINISHED")
    assert _as_mlflow_reads_it(client, run_id) == before  # nothing of either batch was written
    tracker._log(run_id, params=[Param("seed", "2")])  # the same value again is fine, as with MLflow
    client.delete_run(run_id)
    with pytest.raises(RunError, match="must be in the 'active' state"):
        tracker._log(run_id, status="FINISHED")
    client.delete_experiment(tracker.experiment_id)
    with pytest.raises(RunError, match="must be 'active' to create a run"):
        tracker.start(_cfg(3))
    assert len(client.search_runs([tracker.experiment_id], run_view_type=3)) == 1


def test_stores_whose_run_tables_differ_are_left_to_mlflows_client(tmp_path):
    import sqlite3

    from lossbench.store import RunWriter

    db = tmp_path / "mlflow.db"
    Tracker(f"sqlite:///{db}", "t")
    assert RunWriter.open(f"sqlite:///{db}") is not None
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE metrics ADD COLUMN dataset_uuid VARCHAR(36)")
    con.commit()
    con.close()
    assert RunWriter.open(f"sqlite:///{db}") is None
    tracker = Tracker(f"sqlite:///{db}", "t")
    assert tracker._writer is None
    run_id = tracker.start(_cfg(0))
    assert MlflowClient(f"sqlite:///{db}").get_run(run_id).data.params["seed"] == "0"
    assert RunWriter.open(f"sqlite:///{tmp_path / 'absent.db'}") is None


def test_mlflow_and_alembic_are_quieted_once_in_code_not_by_the_job_logging_config(tmp_path, caplog):
    """A logger named in hydra.job_logging has all its child loggers reset at every job's start (MLflow has
    ~160: ~3 ms a job): the Tracker sets MLflow's and alembic's levels once instead, and a new store's schema
    creation logs no INFO lines."""
    import logging

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
