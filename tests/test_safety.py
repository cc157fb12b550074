"""Bad input as a careless or hostile user types it: one line, a non-zero exit, nothing recorded, nothing of the
user's touched. Each case is (command, expected exit, expected first line, files and MLflow runs after); the
same cases make the table in README.md's "Reliability" section."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli

ROOT = Path(__file__).resolve().parent.parent
E = "lossbench: error: "
R = "lossbench.report: error: "

# (module, arguments, exit code, the start of the one line on stderr)
CASES = [
    # keys and options Hydra does not know
    ("lossbench", ["modle=logreg"], 2, E + "modle='logreg' is invalid: no such key in the config. Did you mean 'model'?"),
    ("lossbench", ["loss=focl"], 2, E + "loss='focl' is invalid: no such option; the options of loss are brier, ce,"),
    ("lossbench", ["train.lrr=1"], 2, E + "train.lrr='1' is invalid: no such key in the config. Did you mean 'train.lr'"),
    ("lossbench", ["+experiment=smok"], 2, E + "experiment='smok' is invalid: no such option; the options of experiment"),
    ("lossbench", ["hydra/launcher=jobllib"], 2, E + "hydra/launcher='jobllib' is invalid: no such option"),
    ("lossbench", ["seed=[0"], 2, E + "no viable alternative at input '[0'"),
    # values
    ("lossbench", ["loss=focal", "loss.gamma=-1"], 2, E + "loss.gamma=-1.0 is invalid: must be a float in the range [0, inf) for loss 'focal'."),
    ("lossbench", ["loss=focal", "+loss.gama=1"], 2, E + "loss.gama=1 is invalid: loss 'focal' has no such parameter (its parameters: 'gamma', 'alpha'); did you mean 'gamma'?"),
    ("lossbench", ["imbalance.ratio=0.5"], 2, E + "imbalance.ratio=0.5 is invalid: must be a number >= 1."),
    ("lossbench", ["imbalance.ratio=inf"], 2, E + "imbalance.ratio=inf is invalid: must be a number >= 1."),
    ("lossbench", ["imbalance.ratio=nan"], 2, E + "imbalance.ratio=nan is invalid: must be a number >= 1."),
    ("lossbench", ["imbalance.ratio=1000"], 2, E + "imbalance.ratio=1000.0 is invalid: it would leave class 7 with no training samples"),
    ("lossbench", ["imbalance.profile=zipf"], 2, E + "imbalance.profile='zipf' is invalid: must be one of exponential, step, binary."),
    ("lossbench", ["seed=-1"], 2, E + "seed=-1 is invalid: must be an integer >= 0."),
    ("lossbench", ["seed=1.5"], 2, E + "seed=1.5 is invalid: must be an integer >= 0."),
    ("lossbench", ["split.test=1"], 2, E + "split.test=1.0 is invalid: must be a number > 0 and < 1."),
    ("lossbench", ["split.test=0.5", "split.val=0.6"], 2, E + "split.val=0.6 is invalid: must be a number > 0 and < 0.5."),
    ("lossbench", ["model=torch_mlp", "train.lr=0"], 2, E + "train.lr=0.0 is invalid: must be a number > 0."),
    ("lossbench", ["model=torch_mlp", "train.epochs=0"], 2, E + "train.epochs=0 is invalid: must be an integer >= 1."),
    ("lossbench", ["model=torch_mlp", "train.batch_size=0"], 2, E + "train.batch_size=0 is invalid: must be an integer >= 1."),
    ("lossbench", ["model=torch_mlp", "train.device=tpu"], 2, E + "train.device='tpu' is invalid: must be auto, cpu, cuda or cuda:N."),
    ("lossbench", ["model=torch_mlp", "train.optimizer=lbfgs"], 2, E + "train.optimizer='lbfgs' is invalid: must be one of adam, adamw, sgd."),
    ("lossbench", ["model=torch_mlp", "train.monitor=val_acc"], 2, E + "train.monitor='val_acc' is invalid: must be one of val_loss, val_balanced_accuracy."),
    ("lossbench", ["rebalance=smote", "rebalance.k_neighbors=50"], 2, E + "rebalance.k_neighbors=50 is invalid: SMOTE needs k_neighbors < the smallest training class count, which is 10 here."),
    ("lossbench", ["rebalance=smote", "rebalance.k_neighbors=0"], 2, E + "rebalance.k_neighbors=0 is invalid: must be an integer >= 1."),
    ("lossbench", ["regularization.strength=-1"], 2, E + "regularization.strength=-1.0 is invalid: must be a number >= 0."),
    ("lossbench", ["regularization=none", "regularization.strength=1"], 2, E + "regularization.strength=1.0 is invalid: must be 0 with regularization=none."),
    ("lossbench", ["model=ridge", "loss=focal"], 2, E + "loss='focal' is invalid: model=ridge supports the losses: mse."),
    ("lossbench", ["model=linear_svm", "loss=hinge", "loss.variant=one_vs_rest", "regularization=none"], 2, E + "regularization='none' is invalid: model=linear_svm supports the regularizations: l1, l2."),
    # the user's own data
    ("lossbench", ["data=csv"], 2, E + "data.path='???' is invalid: must be the path of a CSV or Parquet file"),
    ("lossbench", ["data=csv", "data.path=missing.csv", "data.target=label"], 2, E + "data.path='missing.csv' is invalid: must be an existing CSV or Parquet file;"),
    ("lossbench", ["data=csv", "data.path=dup.csv", "data.target=label"], 2, E + "data.path='dup.csv' is invalid: each column needs its own name; the header repeats 'f1'."),
    ("lossbench", ["data=csv", "data.path=one_class.csv", "data.target=label"], 2, E + "data.target='label' is invalid: needs at least 2 classes; found only 'a'."),
    ("lossbench", ["data=csv", "data.path=table.csv", "data.target=nosuch"], 2, E + "data.target='nosuch' is invalid: must be a column of table.csv; its columns are 'f1', 'f2', 'label'."),
    ("lossbench", ["data=csv", "data.path=empty.csv", "data.target=label"], 2, E + "data.path='empty.csv' is invalid: must be a table with a header and at least one data row."),
    # where runs are recorded
    ("lossbench", ["tracking.uri=garbage"], 2, E + "tracking.uri='garbage' is invalid: not a tracking store URI"),
    ("lossbench", ["tracking.uri=notascheme://x/y"], 2, E + "tracking.uri='notascheme://x/y' is invalid: MLflow has no tracking store for the scheme 'notascheme'."),
    ("lossbench", ["tracking.uri=sqlite:////nonexistent/dir/m.db"], 2, E + "tracking.uri='sqlite:////nonexistent/dir/m.db' is invalid: the folder /nonexistent/dir does not exist."),
    ("lossbench", ["tracking.uri=sqlite://"], 2, E + "tracking.uri='sqlite://' is invalid: an in-memory SQLite store keeps nothing after the process."),
    ("lossbench", ["tracking.uri=http://127.0.0.1:9"], 2, E + "tracking.uri='http://127.0.0.1:9' is invalid: the MLflow server cannot be reached"),
    ("lossbench", ["tracking.experiment=''"], 2, E + "tracking.experiment='' is invalid: must be a non-empty name without leading or trailing blanks"),
    ("lossbench", ["tracking.experiment=' spaced '"], 2, E + "tracking.experiment=' spaced ' is invalid: must be a non-empty name"),
    ("lossbench", ["tracking.wal=sometimes"], 2, E + "tracking.wal='sometimes' is invalid: must be auto, true or false."),
    # sweeps: every job checked before anything is recorded
    ("lossbench", ["-m", "imbalance.ratio=0.5,1"], 2, E + "job 1 (imbalance.ratio=0.5): imbalance.ratio=0.5 is invalid: must be a number >= 1."),
    ("lossbench", ["-m", "imbalance.ratio=1,1000"], 2, E + "job 2 (imbalance.ratio=1000): imbalance.ratio=1000.0 is invalid: it would leave class 7 with no training samples"),
    ("lossbench", ["-m", "rebalance=smote", "rebalance.k_neighbors=50", "seed=0,1"], 2, E + "job 1 (rebalance=smote rebalance.k_neighbors=50 seed=0): rebalance.k_neighbors=50 is invalid"),
    ("lossbench", ["-m", "loss=ce,focl"], 2, E + "job 2 (loss=focl): loss='focl' is invalid: no such option"),
    ("lossbench", ["-m", "loss=focal", "loss.gama=1,2"], 2, E + "loss.gama='1' is invalid: no such key in the config. Did you mean 'loss.gamma'"),
    ("lossbench", ["-m", "train.lr=interval(0.1,1)"], 2, E + "train.lr='interval(0.1,1)' is invalid: an interval sweep has no list of values to run."),
    ("lossbench", ["-m", "seed=0,1", "tracking.experiment=a,b"], 2, E + "tracking.experiment='b' is invalid: must be the same for every job of a sweep"),
    ("lossbench", ["-m", "seed=0,1", "hydra.launcher.n_jobs=0"], 2, E + "hydra.launcher.n_jobs=0 is invalid: must be a number of workers >= 1, or -1 for one per core."),
    ("lossbench", ["-m", "seed=0,1", "tracking.uri=garbage"], 2, E + "tracking.uri='garbage' is invalid: not a tracking store URI"),
    ("lossbench", ["-m", "seed=0,1", "tracking.experiment=''"], 2, E + "tracking.experiment='' is invalid"),
    ("lossbench", ["-m", "seed=0,1", "report.metric=foo"], 2, E + "report.metric='foo' is invalid: not a metric lossbench logs."),
    ("lossbench", ["-m", "seed=0,1", "report.rope=2"], 2, E + "report.rope=2 is invalid: must be a number in [0, 1), in the metric's units (0.01 = 1 point)."),
    ("lossbench", ["-m", "seed=0,1", "report.out=."], 2, E + "report.out='.' is invalid: a relative report folder must lie inside reports/ of the working folder"),
    ("lossbench", ["-m", "seed=0,1", "report.out=../elsewhere"], 2, E + "report.out='../elsewhere' is invalid: a relative report folder must lie inside reports/"),
    ("lossbench", ["-m", "seed=0,1", "report.out=/"], 2, E + "report.out='/' is invalid: the folder exists, is not empty and holds no lossbench report"),
    # the report command
    ("lossbench.report", ["--experiment", "x"], 2, R + "--tracking-uri='sqlite:///"),
    ("lossbench.report", ["--experiment", "x", "--tracking-uri", "sqlite:///absent.db"], 2, R + "--tracking-uri='sqlite:///absent.db' is invalid: there is no MLflow store at absent.db."),
    ("lossbench.report", ["--experiment", "x", "--out", "."], 2, R + "--out='.' is invalid: a relative report folder must lie inside reports/"),
    ("lossbench.report", ["--experiment", "x", "--metric", "foo"], 2, R + "--metric='foo' is invalid: not a metric lossbench logs."),
    ("lossbench.report", ["--experiment", "x", "--tracking-uri", "http://127.0.0.1:9"], 2, R + "--tracking-uri='http://127.0.0.1:9' is invalid: the MLflow server cannot be reached"),
    ("lossbench.report", ["--experiment", "x", "--tracking-uri", "garbage"], 2, R + "--tracking-uri='garbage' is invalid: not a tracking store URI"),
]  # fmt: skip


def _tables(folder: Path) -> None:
    """The user's own files a case may name: a table, one with a repeated column, one class, no rows."""
    rows = ["f1,f2,label", *(f"{i * 0.1:.1f},{(i * 7) % 5},{'abc'[i % 3]}" for i in range(120))]
    (folder / "table.csv").write_text("\n".join(rows) + "\n")
    (folder / "dup.csv").write_text("f1,f1,label\n1,2,a\n3,4,b\n")
    (folder / "one_class.csv").write_text("f1,label\n" + "".join(f"{i},a\n" for i in range(30)))
    (folder / "empty.csv").write_text("f1,label\n")
    (folder / "README.md").write_text("MINE\n")


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "module, args, code, first",
    CASES,
    ids=[" ".join([m.removeprefix("lossbench"), *a]) for m, a, _, _ in CASES],
)
def test_bad_input_gets_one_line_and_records_nothing(module, args, code, first, tmp_path):
    _tables(tmp_path)
    before = _snapshot(tmp_path)
    proc = run_cli(args, cwd=tmp_path, module=module, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(first), proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert _snapshot(tmp_path) == before  # nothing written, nothing of the user's changed


def test_every_case_is_in_the_readme_table():
    """README.md's reliability table lists these cases (command and exit code), so it stays what is tested."""
    readme = (ROOT / "README.md").read_text()
    for module, args, code, _ in CASES:
        command = " ".join(["python -m " + module, *args])
        assert f"| `{command}` | {code} |" in readme, command


@pytest.mark.parametrize(
    "args",
    [["model=torch_mlp", "train.device=cuda"], ["-m", "model=torch_mlp", "seed=0,1", "train.device=cuda:1"]],
)
def test_cuda_without_cuda_is_refused_before_any_run(args, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    start = time.time()
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 2 and time.time() - start < 60
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("is invalid: CUDA is not available on this machine. Use train.device=auto or cpu.")
    )
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


def test_a_run_that_fails_ends_in_one_line_with_its_traceback_kept(tmp_path):
    """A single run whose loss diverges: FAILED in MLflow with its reason, exit 1, one line on the console,
    the traceback in the run's traceback.txt artifact and in its run folder."""
    from mlflow.tracking import MlflowClient

    proc = run_cli(
        ["model=torch_mlp", "data=wine", "train.optimizer=sgd", "train.lr=1e30", "train.epochs=3"],
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("  epoch")]
    assert len(lines) == 1 and re.match(
        r"lossbench: error: run [0-9a-f]{32} FAILED: NonFiniteLossError: ", lines[0]
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    kept = list(tmp_path.glob("experiments/lossbench/*/traceback.txt"))
    assert len(kept) == 1 and "NonFiniteLossError" in kept[0].read_text() and str(kept[0].parent) in lines[0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("lossbench").experiment_id])
    assert run.info.status == "FAILED" and run.info.run_id in lines[0]
    assert run.data.tags["lossbench.failure_reason"].startswith("NonFiniteLossError: non-finite loss")
    assert "traceback.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_a_sweep_named_outside_its_folders_writes_only_inside_them_and_deletes_nothing(tmp_path):
    """The reported case: ``tracking.experiment=..`` once replaced the user's README.md with the report,
    deleted figures/f.png and copied the working folder into MLflow recursively. The name becomes a safe folder
    name; the user's files stay byte-identical; the parent run holds the report's own files, nothing else."""
    from mlflow.tracking import MlflowClient

    from lossbench.paths import dirname

    work = tmp_path / "d"
    work.mkdir()
    (work / "README.md").write_text("MINE\n")
    (work / "figures").mkdir()
    (work / "figures" / "f.png").write_bytes(b"k")
    outside = sorted(p.name for p in tmp_path.iterdir())
    names = ["..", "../../x", str(tmp_path / "abs"), "team/study"]
    for name in names:
        proc = run_cli(
            [
                "+experiment=smoke",
                "model=logreg",
                "loss=ce",
                "seed=0",
                "imbalance.ratio=1",
                f"tracking.experiment='{name}'",
            ],
            cwd=work,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "README.md").read_text() == "MINE\n" and (work / "figures" / "f.png").read_bytes() == b"k"
    assert sorted(p.name for p in tmp_path.iterdir()) == outside  # nothing beside the working folder
    assert sorted(p.name for p in work.iterdir()) == [
        "README.md",
        "experiments",
        "figures",
        "mlflow.db",
        "mlflow.db-shm",  # SQLite's, beside a store in WAL mode (lossbench.journal)
        "mlflow.db-wal",
        "mlruns",
        "reports",
    ]
    assert (work / "mlflow.db-wal").stat().st_size == 0  # every run is in mlflow.db itself
    assert sorted(p.name for p in (work / "reports").iterdir()) == sorted(dirname(n) for n in names)
    assert sorted(p.name for p in (work / "experiments").iterdir()) == sorted(dirname(n) for n in names)
    for name in names:
        assert "/" not in dirname(name) and ".." not in dirname(name)
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("..")
    [parent] = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("lossbench.role") == "sweep"
    ]
    attached = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "report/figures")}
    report = work / "reports" / dirname("..")
    written = json.loads((report / ".lossbench-report.json").read_text())["files"]
    assert attached == {f"report/{f}" for f in written if "/" not in f} | {"report/figures"}
    assert figures == {f"report/{f}" for f in written if f.startswith("figures/")}


def test_report_folders_never_lose_a_file_lossbench_did_not_write(tmp_path):
    """write_report: a new folder appears whole; a rebuild replaces its own files, removes the ones it no
    longer writes and keeps everything else; a folder holding someone else's files is refused untouched."""
    from lossbench.errors import ConfigError
    from lossbench.paths import MANIFEST, report_files, write_report

    def build(files):
        def write(staging):
            for name, text in files.items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).write_text(text)

        return write

    out = tmp_path / "reports" / "x"
    assert write_report(out, build({"index.html": "1", "figures/a.png": "a", "figures/b.png": "b"})) == [
        "figures/a.png",
        "figures/b.png",
        "index.html",
    ]
    (out / "notes.txt").write_text("mine")  # the user's own file in the report folder
    write_report(out, build({"index.html": "2", "figures/a.png": "A"}))
    assert (out / "index.html").read_text() == "2" and (out / "figures" / "a.png").read_text() == "A"
    assert not (out / "figures" / "b.png").exists() and (out / "notes.txt").read_text() == "mine"
    assert report_files(out) == ["figures/a.png", "index.html"] and (out / MANIFEST).is_file()
    # the user's file where the next build would write: refused, nothing changed
    (out / "figures" / "c.png").write_text("user's")
    with pytest.raises(
        ConfigError, match=r"it holds files lossbench did not write where the report goes: figures/c.png"
    ):
        write_report(out, build({"index.html": "3", "figures/c.png": "C"}))
    assert (out / "index.html").read_text() == "2" and (out / "figures" / "c.png").read_text() == "user's"
    # a folder of someone else's: refused
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "README.md").write_text("THEIRS")
    with pytest.raises(ConfigError, match=r"is not empty and holds no lossbench report"):
        write_report(theirs, build({"README.md": "report"}))
    assert (theirs / "README.md").read_text() == "THEIRS" and sorted(p.name for p in tmp_path.iterdir()) == [
        "reports",
        "theirs",
    ]
    # a report written before manifests existed (the committed reference report) is recognised
    legacy = tmp_path / "legacy"
    (legacy / "figures").mkdir(parents=True)
    (legacy / "index.html").write_text("<html><head><title>lossbench report — experiment x</title>")
    (legacy / "figures" / "old.png").write_text("o")
    write_report(legacy, build({"index.html": "new"}))
    assert (legacy / "index.html").read_text() == "new" and not (legacy / "figures").exists()


def _smoke(folder: Path, *extra: str) -> subprocess.Popen:
    env = cli_env()
    # torch jobs (~0.5 s each here): long enough for the two sweeps to overlap
    args = ["+experiment=smoke", "model=torch_mlp", "train.patience=null", "report.enabled=false", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "lossbench", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow  # ~31 s: two sweeps at once (.ci/run's slow step)
def test_two_identical_sweeps_at_once_never_share_a_folder_nor_train_a_config_twice(tmp_path):
    """Two sweeps started together in one folder, with the same sweep folder (as two started in the same
    second get): each gets its own folder and parent run, both parents are closed, every config is FINISHED
    exactly once, and what one sweep trained the other counts as resumed or left to it."""
    from collections import Counter

    from mlflow.tracking import MlflowClient

    fixed = "hydra.sweep.dir=experiments/smoke/same-second"
    procs = [_smoke(tmp_path, fixed), _smoke(tmp_path, fixed)]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    folders = sorted(p.name for p in (tmp_path / "experiments" / "smoke").iterdir())
    assert folders == ["same-second", "same-second-2"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    parents = [r for r in runs if r.data.tags.get("lossbench.role") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and {p.info.status for p in parents} == {"FINISHED"}
    finished = Counter(r.data.tags["lossbench.fingerprint"] for r in children if r.info.status == "FINISHED")
    assert len(finished) == 12 and set(finished.values()) == {1}  # 3 losses x 2 ratios x 2 seeds
    totals = Counter()
    for _, err in outs:
        m = re.search(
            r"lossbench: (\d+) finished, (\d+) resumed, (\d+) skipped \(N/A\), 0 failed(?:, (\d+) left)?", err
        )
        totals.update(finished=int(m[1]), resumed=int(m[2]), claimed=int(m[4] or 0))
    assert totals["finished"] == 12 and totals["finished"] + totals["resumed"] + totals["claimed"] == 24


class _SilentServer:
    """A TCP server that accepts connections and never answers (a hung MLflow server)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


@pytest.mark.parametrize("module", ["lossbench.report", "lossbench"])
def test_a_silent_server_fails_within_seconds_naming_it(module, tmp_path):
    server = _SilentServer()
    uri = f"http://127.0.0.1:{server.port}"
    args = (
        ["--experiment", "x", "--tracking-uri", uri]
        if module == "lossbench.report"
        else [f"tracking.uri={uri}"]
    )
    start = time.time()
    proc = run_cli(args, cwd=tmp_path, module=module, timeout=120)
    assert time.time() - start < 30
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert f"='{uri}' is invalid: the MLflow server cannot be reached (timed out)" in line
    server.sock.close()
