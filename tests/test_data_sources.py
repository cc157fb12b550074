"""Benchmark loaders for users with a network, tested offline: imbalanced-learn's collection and OpenML read
a cache the test builds, and ``data.download_if_missing=false`` never reaches for the network."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from lossbench.data import dataset_label, load_dataset, openml_cache
from lossbench.errors import ConfigError
from tests.conftest import compose_cfg, run_cli

RNG = np.random.default_rng(0)


def _imblearn_cache(home):
    """imbalanced-learn's cache of its collection: ``<data_home>/zenodo/x<ID>data.npz`` (arrays ``data`` and
    ``label`` in {-1, 1}); ecoli is table 1 of the 27."""
    X = RNG.normal(size=(120, 7)).astype(np.float64)
    label = np.where(np.arange(120) < 100, -1, 1)
    X[label == 1] += 2.0  # a learnable minority
    (home / "zenodo").mkdir(parents=True)
    np.savez(home / "zenodo" / "x1data.npz", data=X, label=label)
    return X, label


def _cfg(group, **data):
    cfg = compose_cfg([f"data={group}"])["data"]
    cfg.update(data)
    return cfg


def test_imblearn_reads_a_prepared_cache_offline(tmp_path):
    X, label = _imblearn_cache(tmp_path)
    cfg = _cfg("imblearn", dataset="ecoli", data_home=str(tmp_path), download_if_missing=False)
    data = load_dataset(cfg)
    assert np.array_equal(data.X, X.astype(np.float32)) and np.array_equal(data.y, (label == 1).astype(int))
    assert data.class_names == ["-1", "1"] and dataset_label(cfg) == "ecoli"
    # a table not in the cache, offline: refused, naming the folder, nothing downloaded
    offline = r"data.download_if_missing=False is invalid: data.dataset=satimage is not in the cache"
    with pytest.raises(ConfigError, match=offline):
        load_dataset({**cfg, "dataset": "satimage"})
    assert sorted(p.name for p in (tmp_path / "zenodo").iterdir()) == ["x1data.npz"]


def test_imblearn_dataset_in_a_sweep_offline(tmp_path):
    _imblearn_cache(tmp_path / "home")
    args = [
        "data=imblearn",
        "data.dataset=ecoli",
        f"data.data_home={tmp_path / 'home'}",
        "data.download_if_missing=false",
        "model=logreg",
        "imbalance.ratio=1",
    ]
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("lossbench").experiment_id])
    assert run.data.params["data.label"] == "ecoli" and run.data.metrics["test/balanced_accuracy"] >= 0.8
    bad = run_cli([*args[:1], "data.dataset=ecolli", *args[2:]], cwd=tmp_path)
    assert bad.returncode == 2 and "data.dataset='ecolli' is invalid: must be one of" in bad.stderr


def test_openml_reads_its_cache_offline(tmp_path):
    frame = pd.DataFrame(
        {
            "width": RNG.normal(size=90),
            "colour": pd.Categorical(RNG.choice(["red", "blue"], size=90)),
            "kind": pd.Categorical(np.repeat(["a", "b", "c"], 30)),
        }
    )
    cfg = _cfg("openml", data_id=41, data_home=str(tmp_path), download_if_missing=False)
    table, info = openml_cache(cfg)
    with pytest.raises(ConfigError, match=r"data.data_id=41 is not in the cache"):
        load_dataset(cfg)  # nothing there yet, and no network asked for
    table.parent.mkdir(parents=True)
    frame.to_parquet(table)
    info.write_text(json.dumps({"id": 41, "name": "glass", "version": 1, "target": ["kind"]}))
    data = load_dataset(cfg)
    assert data.class_names == ["a", "b", "c"] and np.bincount(data.y).tolist() == [30, 30, 30]
    assert data.X.shape == (90, 3)  # width + colour one-hot (blue, red)
    assert data.meta["openml_name"] == "glass" and dataset_label(cfg) == "openml-41"
    assert dataset_label(_cfg("openml", dataset="glass")) == "glass"


def test_openml_needs_exactly_one_of_name_and_id(tmp_path):
    proc = run_cli(["data=openml"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "data.dataset=None is invalid: set exactly one of data.dataset" in proc.stderr
