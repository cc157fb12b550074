"""A SQLite store's journal (lossbench.journal, tracking.wal): a store lossbench creates is in WAL mode, its
file alone holds every run once the command ends; an existing store keeps its journal unless asked; the
file-system and launcher checks that keep WAL off shared folders. Real sweeps, real SQLite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lossbench import journal
from lossbench.errors import ConfigError
from tests.conftest import run_cli


def _runs(db: Path) -> list:
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("lossbench")
    return [r for r in client.search_runs([exp.experiment_id]) if "lossbench.role" not in r.data.tags]


def test_a_sweeps_new_store_is_in_wal_mode_and_its_file_alone_holds_every_run(tmp_path):
    """auto: the new store is in WAL mode and its log is empty at the end, so a copy of mlflow.db alone has
    all 2 runs FINISHED with their metrics; false: a new store keeps SQLite's rollback journal."""
    for setting, expected in (("auto", "wal"), ("false", "delete")):
        folder = tmp_path / setting
        folder.mkdir()
        out = run_cli(
            ["-m", "seed=0,1", "report.enabled=false", f"tracking.wal={setting}", "hydra.sweep.dir=sweep"],
            folder,
        )
        assert out.returncode == 0, out.stderr
        db = folder / "mlflow.db"
        assert journal.mode(db) == expected
        log = db.with_name("mlflow.db-wal")
        assert not log.exists() or log.stat().st_size == 0  # checkpointed: nothing only in the log
        alone = tmp_path / f"copy-{setting}"
        alone.mkdir()
        shutil.copy(db, alone / "mlflow.db")
        runs = _runs(alone / "mlflow.db")
        assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
        assert all(0 < r.data.metrics["test/balanced_accuracy"] <= 1 for r in runs)


def test_an_existing_store_keeps_its_journal_unless_wal_is_true(tmp_path):
    """A store made by MLflow itself (rollback journal): a single run with auto leaves it so; with true it is
    switched to WAL, and both runs are in the store."""
    db = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    assert journal.mode(db) == "delete"
    for seed, (setting, expected) in enumerate((("auto", "delete"), ("true", "wal"))):
        out = run_cli(["model=logreg", f"tracking.wal={setting}", f"seed={seed}"], tmp_path)
        assert out.returncode == 0, out.stderr
        assert journal.mode(db) == expected
    assert sorted(r.data.params["seed"] for r in _runs(db)) == ["0", "1"]


def test_a_bad_wal_value_is_refused_before_anything_is_recorded(tmp_path):
    out = run_cli(["-m", "seed=0,1", "tracking.wal=sometimes"], tmp_path)
    assert out.returncode == 2
    assert "tracking.wal='sometimes' is invalid: must be auto, true or false" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()
    with pytest.raises(ConfigError, match=r"tracking\.wal='yes' is invalid"):
        journal.check("yes")
    assert [journal.check(v) for v in ("auto", True, False)] == ["auto", True, False]


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
tmpfs /tmp tmpfs rw 0 0
server:/export /home/shared nfs4 rw,vers=4.2 0 0
//nas/data /mnt/my\\040data cifs rw 0 0
sshfs#me@host: /mnt/remote fuse.sshfs rw 0 0
/dev/vdb /home/shared/local ext4 rw 0 0
"""


@pytest.mark.parametrize(
    ("folder", "kind", "local"),
    [
        ("/", "ext4", True),
        ("/tmp/x", "tmpfs", True),
        ("/home/shared/project", "nfs4", False),
        ("/home/shared/local/project", "ext4", True),  # the longest mount point that holds the folder
        ("/home/sharedother", "ext4", True),  # a name that only starts like a mount point is not under it
        ("/mnt/my data/runs", "cifs", False),  # \040 in /proc/self/mounts is a space
        ("/mnt/remote", "fuse.sshfs", False),
    ],
)
def test_the_file_system_of_a_folder_is_read_from_the_mount_table(folder, kind, local):
    assert journal.filesystem(Path(folder), MOUNTS) == kind
    assert journal.local_folder(Path(folder), MOUNTS) is local


def test_wal_is_automatic_only_with_jobs_on_this_host():
    local = [
        "hydra_plugins.lossbench.launcher.LossbenchLauncher",
        "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
        "",
    ]
    remote = [
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
        "hydra_plugins.hydra_ray_launcher.ray_aws_launcher.RayAWSLauncher",
    ]
    assert [journal.local_launcher(t) for t in local + remote] == [True] * 4 + [False] * 2
