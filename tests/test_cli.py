"""The Hydra entry point as a user runs it: a real subprocess, a real SQLite MLflow store in a temp folder."""

import json
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from lossbench.config import fingerprint
from lossbench.pipeline import run
from tests.conftest import compose_cfg, run_cli, tiny


def _runs(uri: str, experiment: str = "lossbench"):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id]))


def test_one_run_is_logged_with_params_metrics_tags_and_artifacts(tmp_path):
    overrides = tiny(["data=digits", "model=torch_mlp", "imbalance.ratio=10", "seed=1"])
    proc = run_cli(overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # the default store: mlflow.db in the working folder
    client, runs = _runs(uri)
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED"
    p = r.data.params
    assert p["model.name"] == "torch_mlp" and p["data.name"] == "digits" and p["loss.name"] == "ce"
    assert p["imbalance.ratio"] == "10.0" and p["seed"] == "1" and p["train.epochs"] == "5"
    assert p["model.hidden_sizes"] == "[32]"
    assert "tracking.uri" in p and not any(k.startswith("hydra") for k in p)

    # the logged numbers are the numbers run(cfg) computes for the same config
    expected = run(compose_cfg(overrides))
    for key, value in expected.metrics.items():
        assert r.data.metrics[key] == pytest.approx(value, abs=1e-9), key
    assert json.loads(p["class_counts.train"]) == expected.class_counts["train"]
    assert json.loads(p["class_counts.test"]) == expected.class_counts["test"]

    # per-epoch curves, one value per epoch, in order
    history = client.get_metric_history(r.info.run_id, "curve/train_loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(
        range(1, expected.info["epochs_run"] + 1)
    )
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        expected.curves["train_loss"]
    )

    t = r.data.tags
    assert t["lossbench.fingerprint"] == fingerprint(compose_cfg(overrides))
    assert t["lossbench.version"] == __import__("lossbench").__version__
    assert t["mlflow.runName"] == "torch_mlp-ce-rho10-seed1"
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "per_class_test.csv", "confusion_matrix_test.png"} <= artifacts
    client.download_artifacts(r.info.run_id, "config.yaml", str(tmp_path))
    assert "ratio: 10.0" in (tmp_path / "config.yaml").read_text()
    # Hydra's job folder goes under experiments/<experiment>/
    assert list((tmp_path / "experiments" / "lossbench").glob("*/.hydra/config.yaml"))


def test_tracking_uri_and_experiment_are_honoured(tmp_path):
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    proc = run_cli(
        ["model=logreg", "data=wine", "tracking.experiment=mine"],
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "mlflow.db").exists()
    _, runs = _runs(uri, "mine")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    # tracking.uri wins over the environment variable
    other = f"sqlite:///{tmp_path / 'explicit.db'}"
    proc = run_cli(
        ["model=logreg", "data=wine", f"tracking.uri={other}"], cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri}
    )
    assert proc.returncode == 0, proc.stderr
    assert len(_runs(other)[1]) == 1 and len(_runs(uri, "mine")[1]) == 1


def test_invalid_value_is_one_line_nonzero_exit_and_no_run(tmp_path):
    proc = run_cli(["imbalance.ratio=0.5"], cwd=tmp_path)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["lossbench: error: imbalance.ratio=0.5 is invalid: must be a number >= 1."]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_config_errors_and_help_do_not_wait_for_torch(tmp_path):
    """torch takes ~1.5 s to import: a config error or --help must not import it (they must return fast)."""
    probe = (
        "import atexit, sys; atexit.register(lambda: print('torch imported:', 'torch' in sys.modules)); "
        "from lossbench.cli import main; sys.argv = ['lossbench', *sys.argv[1:]]; main()"
    )
    cases = ((["imbalance.ratio=0.5"], 2), (["model=torch_mlp", "train.lr=-1"], 2), (["--help"], 0))
    for args, code in cases:
        proc = subprocess.run(
            [sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == code, proc.stderr
        assert proc.stdout.strip().endswith("torch imported: False"), (args, proc.stdout[-500:])


def test_exit_leaves_the_objects_to_the_process_end_and_loses_nothing(tmp_path):
    """The interpreter's exit would run the garbage collector over all torch, MLflow and pandas hold (1.5-2.5
    s): the entry points freeze those objects at exit instead; every record still reaches its file."""
    probe = (
        "import atexit, gc, sys; atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count())); "
        "from lossbench.cli import main; sys.argv = ['lossbench', *sys.argv[1:]]; main()"
    )
    args = tiny(["data=digits", "model=torch_mlp", "loss=focal"])
    proc = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    frozen = int(proc.stdout.strip().splitlines()[-1].removeprefix("frozen at exit: "))
    assert frozen > 100_000  # torch and MLflow alone hold several hundred thousand objects
    client, runs = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert {"config.yaml", "per_class_test.csv", "confusion_matrix_test.png"} <= {
        a.path for a in client.list_artifacts(runs[0].info.run_id)
    }
    # the job's log file is flushed and closed at exit: its last line is the run's last message
    (job_log,) = (tmp_path / "experiments" / "lossbench").glob("*/lossbench.log")
    assert "(browse: mlflow ui)" in job_log.read_text().splitlines()[-1]

    # the report command does the same
    probe = probe.split("from lossbench.cli")[0] + (
        "from lossbench.report.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    report = subprocess.run(
        [sys.executable, "-c", probe, "--experiment", "lossbench"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert int(report.stdout.strip().splitlines()[-1].removeprefix("frozen at exit: ")) > 100_000
    assert "focal" in (tmp_path / "reports" / "lossbench" / "README.md").read_text()


def test_data_dependent_limit_fails_before_a_run_exists(tmp_path):
    proc = run_cli(["data=wine", "imbalance.ratio=1000"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "imbalance.ratio=1000.0 is invalid" in proc.stderr and "largest ratio" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_unknown_option_lists_the_available_ones(tmp_path):
    proc = run_cli(["loss=nope"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lossbench: error: loss='nope' is invalid: no such option; the options of loss are brier, ce, "
        "class_balanced, focal, gce, hinge, label_smoothing, ldam, logit_adjusted, mae, mse, squared_hinge, "
        "weighted_ce."
    ]
    assert list(tmp_path.iterdir()) == []


def test_unknown_key_is_rejected_with_the_closest_key(tmp_path):
    proc = run_cli(["imbalance.ratoi=3"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lossbench: error: imbalance.ratoi='3' is invalid: no such key in the config. Did you mean "
        "'imbalance.ratio'? To add a new key use +imbalance.ratoi=..."
    ]


def test_help_lists_the_config_groups(tmp_path):
    proc = run_cli(["--help"], cwd=tmp_path)
    assert proc.returncode == 0
    for group in ("data:", "model:", "loss:", "regularization:", "imbalance:"):
        assert group in proc.stdout
    assert (
        "breast_cancer, csv, digits, fashion_mnist, fashion_mnist_small, imblearn, openml, synthetic, "
        "synthetic_hard, wine" in proc.stdout
    )
    assert "torch_mlp" in proc.stdout


def test_margin_loss_logs_no_probability_metrics_and_says_so(tmp_path):
    proc = run_cli(tiny(["data=wine", "model=torch_mlp", "loss=hinge"]), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _, runs = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    metrics, tags = runs[0].data.metrics, runs[0].data.tags
    assert "test/balanced_accuracy" in metrics
    for name in ("log_loss", "brier", "ece", "adaptive_ece", "pr_auc", "roc_auc"):
        assert f"test/{name}" not in metrics and f"val/{name}" not in metrics
    assert tags["lossbench.probability_metrics"].startswith("not available")


def test_invalid_pair_names_the_losses_the_model_supports(tmp_path):
    proc = run_cli(["model=linear_svm", "loss=focal"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "model=linear_svm supports the losses: hinge, squared_hinge" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_logreg_with_label_smoothing_runs_by_expansion(tmp_path):
    proc = run_cli(["model=logreg", "loss=label_smoothing", "data=wine"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _, runs = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert runs[0].data.tags["lossbench.realisation"] == "expansion"
    assert runs[0].data.params["loss.smoothing"] == "0.1"


def test_fashion_mnist_with_the_cnn_on_a_small_subsample(tmp_path):
    from lossbench.data import load_dataset

    try:
        load_dataset(
            {
                "name": "fashion_mnist",
                "root": "/usr/share/datasets/fashion-mnist",
                "subsample": 100,
                "data_seed": 0,
            }
        )
    except Exception as e:  # CI installs the Debian package; say clearly when it is absent elsewhere
        pytest.skip(f"Fashion-MNIST files not installed: {e}")
    args = [
        "data=fashion_mnist",
        "data.subsample=1500",
        "model=torch_cnn",
        "imbalance.ratio=10",
        "train.epochs=10",
        "train.min_steps=0",
        "train.lr=0.003",
        "seed=0",
    ]
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, runs = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    r = runs[0]
    counts = json.loads(r.data.params["class_counts.train"])
    assert len(counts) == 10 and counts[0] / counts[-1] == pytest.approx(10, rel=0.15)
    assert json.loads(r.data.params["data.class_names"])[0] == "T-shirt/top"
    assert r.data.metrics["test/balanced_accuracy"] > 0.5  # 10 classes: chance is 0.1; 0.74 seen here
