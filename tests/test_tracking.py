"""Tracker on a real SQLite store: the shortcuts it takes on local stores answer as MLflow's client does."""

from __future__ import annotations

import time

from conftest import compose_cfg
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
