"""Datasets: Fashion-MNIST from local IDX files, the user's own CSV / Parquet table, their config checks."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossbench.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    IMAGE_DATASETS,
    NUM_CLASSES,
    check_data_config,
    load_dataset,
    read_idx,
)
from lossbench.errors import ConfigError
from tests.conftest import compose_cfg

FMNIST = Path("/usr/share/datasets/fashion-mnist")
HAS_FMNIST = all((FMNIST / name).is_file() for pair in FASHION_MNIST_FILES for name in pair)
needs_fmnist = pytest.mark.skipif(not HAS_FMNIST, reason="apt-get install dataset-fashion-mnist")
INSTALL = r"Install them with: sudo apt-get install dataset-fashion-mnist \(Debian/Ubuntu\)"


def fmnist_cfg(root=FMNIST, subsample=None, data_seed=0) -> dict:
    return {"name": "fashion_mnist", "root": str(root), "subsample": subsample, "data_seed": data_seed}


def write_idx(path: Path, array: np.ndarray) -> None:
    """A gzipped uint8 IDX file: 0x00 0x00 0x08 ndim, big-endian uint32 sizes, data."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def fake_fmnist(root: Path, per_class=(3, 1)) -> tuple[np.ndarray, np.ndarray]:
    """A 4x4 'Fashion-MNIST': per_class[i] images of each class in part i; returns all images and labels."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for (image_file, label_file), n in zip(FASHION_MNIST_FILES, per_class, strict=True):
        y = np.tile(np.arange(10), n).astype(np.uint8)
        x = rng.integers(0, 256, size=(len(y), 4, 4)).astype(np.uint8)
        write_idx(root / image_file, x)
        write_idx(root / label_file, y)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


# -------------------------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_is_registered_and_its_config_composes():
    assert "fashion_mnist" in IMAGE_DATASETS and NUM_CLASSES["fashion_mnist"]({}) == 10
    data = compose_cfg(["data=fashion_mnist"])["data"]
    assert data == {
        "name": "fashion_mnist",
        "root": str(FMNIST),
        "subsample": None,
        "data_seed": 0,
        "label": None,
    }


def test_read_idx_parses_header_and_data(tmp_path):
    images = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    write_idx(tmp_path / "i.gz", images)
    write_idx(tmp_path / "l.gz", np.array([7, 1, 200]))
    np.testing.assert_array_equal(read_idx(tmp_path / "i.gz"), images)  # data from offset 16
    np.testing.assert_array_equal(read_idx(tmp_path / "l.gz"), [7, 1, 200])  # data from offset 8


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00"), "is not a uint8 IDX file"),
        (gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02"), r"holds 2 values after its header"),
        (b"not gzip at all", "is not a readable gzip file"),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path, content, message):
    (tmp_path / "x.gz").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_idx(tmp_path / "x.gz")


def test_fashion_mnist_loader_on_tiny_idx_files(tmp_path):
    images, labels = fake_fmnist(tmp_path, per_class=(3, 1))
    d = load_dataset(fmnist_cfg(tmp_path))
    assert d.X.shape == (40, 1, 4, 4) and d.X.dtype == np.float32 and d.y.dtype == np.int64
    np.testing.assert_array_equal(d.X[:, 0], images)  # official train first, then test
    np.testing.assert_array_equal(d.y, labels)
    assert d.class_names == list(FASHION_MNIST_CLASSES) and d.class_names[0] == "T-shirt/top"
    assert (d.kind, d.pixel_max) == ("image", 255.0)
    assert d.meta["parts"] == "official train (30) and test (10) concatenated, in that order"


def test_fashion_mnist_dataset_does_not_alias_the_cache(tmp_path):
    fake_fmnist(tmp_path)
    first = load_dataset(fmnist_cfg(tmp_path))
    first.X[:] = -1
    first.y[:] = 0
    again = load_dataset(fmnist_cfg(tmp_path))
    assert again.X.min() >= 0 and len(np.unique(again.y)) == 10


def test_fashion_mnist_subsample_larger_than_the_data(tmp_path):
    fake_fmnist(tmp_path)
    with pytest.raises(ConfigError, match=r"data\.subsample=100 is invalid: must be at most 40 \(the number"):
        load_dataset(fmnist_cfg(tmp_path, subsample=100))


def test_fashion_mnist_corrupt_file_names_the_file(tmp_path):
    fake_fmnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09"))
    with pytest.raises(ConfigError, match=r"must hold valid Fashion-MNIST IDX files\. .*t10k-labels-idx1"):
        load_dataset(fmnist_cfg(tmp_path))


def test_fashion_mnist_missing_files(tmp_path):
    all_four = r"train-images-idx3-ubyte\.gz, train-labels-idx1-ubyte\.gz, t10k-images-idx3-ubyte\.gz, " + (
        r"t10k-labels-idx1-ubyte\.gz"
    )
    expected = (
        rf"data\.root='{tmp_path}' is invalid: must be a folder with the Fashion-MNIST IDX files; "
        rf"looked in {tmp_path} for {all_four} and found none of them\. {INSTALL}$"
    )
    with pytest.raises(ConfigError, match=expected):
        load_dataset(fmnist_cfg(tmp_path))
    with pytest.raises(ConfigError, match=expected):
        check_data_config({"data": fmnist_cfg(tmp_path)})
    fake_fmnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(ConfigError, match=r"and did not find t10k-images-idx3-ubyte\.gz\. Install"):
        load_dataset(fmnist_cfg(tmp_path))


@needs_fmnist
def test_fashion_mnist_full_load():
    d = load_dataset(fmnist_cfg())
    assert d.X.shape == (70000, 1, 28, 28) and d.X.dtype == np.float32
    np.testing.assert_array_equal(np.bincount(d.y), [7000] * 10)
    assert d.X.min() == 0.0 and d.X.max() == 255.0
    assert d.meta["parts"] == "official train (60000) and test (10000) concatenated, in that order"
    assert d.num_classes == 10 and d.feature_shape == (1, 28, 28)


@needs_fmnist
def test_fashion_mnist_subsample_is_stratified_and_seeded():
    full = load_dataset(fmnist_cfg())
    a = load_dataset(fmnist_cfg(subsample=1000, data_seed=0))
    b = load_dataset(fmnist_cfg(subsample=1000, data_seed=0))
    other = load_dataset(fmnist_cfg(subsample=1000, data_seed=1))
    assert a.X.shape == (1000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(a.y), [100] * 10)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, other.X)
    # the subsample is made of real rows of the full set, with their own labels
    row = {full.X[i].tobytes(): full.y[i] for i in range(len(full.y))}
    assert all(row[x.tobytes()] == y for x, y in zip(a.X, a.y, strict=True))


@needs_fmnist
def test_fashion_mnist_through_the_real_config():
    from lossbench.pipeline import prepare

    p = prepare(compose_cfg(["data=fashion_mnist", "data.subsample=1000", "imbalance.ratio=1"]))
    assert p.dataset.X.shape == (1000, 1, 28, 28) and p.class_counts["val"] == [15] * 10


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("subsample", 50, r"data\.subsample=50 is invalid: must be an integer >= 100 \(or null"),
        ("subsample", True, r"data\.subsample=True is invalid"),
        ("subsample", 1000.0, r"data\.subsample=1000\.0 is invalid"),
        ("data_seed", -1, r"data\.data_seed=-1 is invalid: must be an integer >= 0"),
        ("root", None, r"data\.root=None is invalid: must be the folder of the Fashion-MNIST IDX files"),
    ],
)
def test_check_data_config_fashion_mnist(tmp_path, key, value, message):
    fake_fmnist(tmp_path)
    check_data_config(fmnist_cfg(tmp_path, subsample=100))
    with pytest.raises(ConfigError, match=message):
        check_data_config({**fmnist_cfg(tmp_path), key: value})


# --------------------------------------------------------------------------------------------- CSV / Parquet


def csv_cfg(path, target="label", features=None, missing="reject", max_categories=50) -> dict:
    return {
        "name": "csv",
        "path": str(path),
        "target": target,
        "features": features,
        "missing": missing,
        "max_categories": max_categories,
    }


def animals() -> pd.DataFrame:
    """9 rows: numeric x1, categorical color, numeric x2, string label (3 classes of 3)."""
    return pd.DataFrame(
        {
            "x1": [1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            "color": ["red", "green", "blue", "red", "red", "green", "blue", "blue", "green"],
            "x2": [10, 20, 30, 40, 50, 60, 70, 80, 90],
            "label": ["dog", "cat", "bird", "dog", "cat", "bird", "dog", "cat", "bird"],
        }
    )


ANIMAL_FEATURES = ["x1", "color=blue", "color=green", "color=red", "x2"]


def write(tmp_path: Path, df: pd.DataFrame, name: str = "t.csv") -> Path:
    path = tmp_path / name
    if name.endswith((".parquet", ".pq")):
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return path


def check_animals(d) -> None:
    assert d.name == "csv" and d.kind == "tabular" and d.X.dtype == np.float32 and d.y.dtype == np.int64
    assert d.class_names == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(d.y, [2, 1, 0, 2, 1, 0, 2, 1, 0])
    assert d.meta["feature_names"] == ANIMAL_FEATURES
    assert d.X.shape == (9, 5)
    np.testing.assert_array_equal(d.X[0], [1.5, 0, 0, 1, 10])  # red
    np.testing.assert_array_equal(d.X[1], [2.0, 0, 1, 0, 20])  # green
    np.testing.assert_array_equal(d.X[2], [3.0, 1, 0, 0, 30])  # blue
    np.testing.assert_array_equal(d.X[:, 1:4].sum(axis=1), np.ones(9))


def test_csv_string_labels_categorical_and_numeric_columns(tmp_path):
    check_animals(load_dataset(csv_cfg(write(tmp_path, animals()))))


@pytest.mark.parametrize("name", ["t.parquet", "t.pq"])
def test_parquet_gives_the_same_dataset(tmp_path, name):
    check_animals(load_dataset(csv_cfg(write(tmp_path, animals(), name))))


def test_relative_path_is_relative_to_the_working_folder(tmp_path, monkeypatch):
    write(tmp_path, animals())
    monkeypatch.chdir(tmp_path)
    check_animals(load_dataset(csv_cfg("t.csv")))


def test_features_subset_in_the_given_order(tmp_path):
    d = load_dataset(csv_cfg(write(tmp_path, animals()), features=["x2", "color"]))
    assert d.meta["feature_names"] == ["x2", "color=blue", "color=green", "color=red"]
    np.testing.assert_array_equal(d.X[0], [10, 0, 0, 1])


def test_integer_labels_keep_their_meaning_and_numeric_order(tmp_path):
    df = animals().assign(label=[2, 0, 1] * 3)
    d = load_dataset(csv_cfg(write(tmp_path, df)))
    np.testing.assert_array_equal(d.y, [2, 0, 1] * 3)
    assert d.class_names == ["0", "1", "2"]
    d = load_dataset(csv_cfg(write(tmp_path, df.assign(label=[10, 2, 1] * 3))))
    assert d.class_names == ["1", "2", "10"]  # numeric order, not string order
    np.testing.assert_array_equal(d.y, [2, 1, 0] * 3)


def test_integer_column_name_from_hydra(tmp_path):
    path = write(tmp_path, animals().rename(columns={"label": "2020"}))
    d = load_dataset(csv_cfg(path, target=2020))  # Hydra parses data.target=2020 as an int
    assert d.class_names == ["bird", "cat", "dog"]


def test_missing_label_rows_are_always_dropped(tmp_path):
    df = animals()
    df = pd.concat([df, pd.DataFrame({"x1": [0.5], "color": ["red"], "x2": [0], "label": [None]})])
    d = load_dataset(csv_cfg(write(tmp_path, df)))  # missing=reject concerns features only
    check_animals(d)
    assert d.meta["rows_read"] == 10 and d.meta["rows_dropped_missing_target"] == 1


def with_gaps() -> pd.DataFrame:
    df = animals()
    df["x1"] = df["x1"].astype(float)
    df.loc[0, "x1"] = np.nan
    df.loc[[1, 4], "color"] = None
    return pd.concat(
        [
            df,
            pd.DataFrame(
                {"x1": [1.0, 2.0, 3.0], "color": ["green"] * 3, "x2": [1, 2, 3], "label": ["owl"] * 3}
            ),
        ]
    ).reset_index(drop=True)


def test_missing_reject_names_columns_and_counts(tmp_path):
    expected = (
        r"^data\.missing='reject' is invalid: feature columns have missing values: 'x1' \(1 missing\), "
        r"'color' \(2 missing\)\. Set data\.missing=drop_rows or data\.missing=impute\.$"
    )
    with pytest.raises(ConfigError, match=expected):
        load_dataset(csv_cfg(write(tmp_path, with_gaps())))


def test_missing_drop_rows(tmp_path):
    df = with_gaps()
    for row in ([4.0, "red", 4, "cat"], [5.0, "red", 5, "cat"], [6.0, "red", 6, "dog"]):
        df.loc[len(df)] = row  # 3 cats and 3 dogs remain once rows 0, 1 and 4 are dropped
    d = load_dataset(csv_cfg(write(tmp_path, df), missing="drop_rows"))
    assert d.meta["rows_dropped_missing_features"] == 3
    np.testing.assert_array_equal(d.X[:, 0], [3, 4, 6, 7, 8, 9, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(d.X[:, 4], [30, 40, 60, 70, 80, 90, 1, 2, 3, 4, 5, 6])
    assert d.class_names == ["bird", "cat", "dog", "owl"]
    np.testing.assert_array_equal(d.y, [0, 2, 0, 2, 1, 0, 3, 3, 3, 1, 1, 2])


def test_missing_drop_rows_checks_class_counts_after_dropping(tmp_path):
    with pytest.raises(ConfigError, match=r"too few: 'cat' \(1 row\), 'dog' \(2 rows\)\.$"):
        load_dataset(csv_cfg(write(tmp_path, with_gaps()), missing="drop_rows"))


def test_missing_impute(tmp_path):
    d = load_dataset(csv_cfg(write(tmp_path, with_gaps()), missing="impute"))
    # x1 without row 0: [2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3] -> median 4; color: green appears 5 times
    assert d.meta["imputed"] == {"x1": 4.0, "color": "green"}
    assert d.X[0, 0] == 4.0
    np.testing.assert_array_equal(d.X[[1, 4], 1:4], [[0, 1, 0], [0, 1, 0]])
    assert d.X.shape == (12, 5) and not np.isnan(d.X).any()


def test_impute_most_frequent_tie_takes_the_smallest(tmp_path):
    df = animals().assign(color=["b", "a", "b", "a", None, "c", "c", "d", "d"])
    d = load_dataset(csv_cfg(write(tmp_path, df), missing="impute"))
    assert d.meta["imputed"] == {"color": "a"}


def _rows(n_per_class: dict[str, int]) -> pd.DataFrame:
    labels = [k for k, n in n_per_class.items() for _ in range(n)]
    return pd.DataFrame({"x": np.arange(len(labels), dtype=float), "label": labels})


@pytest.mark.parametrize(
    ("make", "cfg", "message"),
    [
        (
            lambda p: None,
            {},
            r"^data\.path='.*nope\.csv' is invalid: must be an existing CSV or Parquet file; .*nope\.csv "
            r"does not exist\.$",
        ),
        (lambda p: (p / "nope.csv").mkdir(), {}, r"nope\.csv is a folder\.$"),
        (
            lambda p: (p / "nope.csv").write_text(""),
            {},
            r"data\.path='.*' is invalid: must be a readable CSV file\. Reading it failed: EmptyDataError",
        ),
        (
            lambda p: (p / "nope.csv").write_text("x,label\n"),
            {},
            r"must be a table with a header and at least one data row\. The file has none\.$",
        ),
        (
            lambda p: (p / "nope.csv").write_text('x,label\n1,"a\n'),
            {},
            r"must be a readable CSV file\. Reading it failed: ParserError",
        ),
        (
            lambda p: (p / "nope.parquet").write_text("x,label\n1,a\n"),
            {"path": "nope.parquet"},
            r"data\.path='.*nope\.parquet' is invalid: must be a readable Parquet file\. Reading it failed",
        ),
        (
            lambda p: write(p, animals(), "nope.csv"),
            {"target": "klass"},
            r"^data\.target='klass' is invalid: must be a column of .*nope\.csv; "
            r"its columns are 'x1', 'color', 'x2', 'label'\.$",
        ),
        (
            lambda p: write(p, animals(), "nope.csv"),
            {"features": ["x1", "nose", "x2"]},
            r"^data\.features=\['x1', 'nose', 'x2'\] is invalid: must name columns of .*nope\.csv; "
            r"not found: 'nose'; its columns are 'x1', 'color', 'x2', 'label'\.$",
        ),
        (
            lambda p: write(p, animals()[["label"]], "nope.csv"),
            {},
            r"^data\.features=None is invalid: needs at least one feature column; "
            r".* has only the target 'label'",
        ),
        (
            lambda p: write(p, _rows({"x": 5}), "nope.csv"),
            {},
            r"^data\.target='label' is invalid: needs at least 2 classes; found only 'x'\.$",
        ),
        (
            lambda p: write(p, _rows({"a": 5, "rare": 2, "b": 3}), "nope.csv"),
            {},
            r"^data\.target='label' is invalid: needs at least 3 rows of every class "
            r"\(the stratified train / val / test split puts one in each\); too few: 'rare' \(2 rows\)\.$",
        ),
        (
            lambda p: write(p, animals().assign(color=list("abcdabcda")), "nope.csv"),
            {"max_categories": 3},
            r"^data\.max_categories=3 is invalid: column 'color' is non-numeric with 4 distinct values "
            r"\(one-hot encoded, a feature per value\)\. "
            r"Leave it out with data\.features=\[\.\.\.\] or raise",
        ),
        (
            lambda p: write(p, animals().assign(x1=[1, 2, np.inf, 4, 5, 6, 7, 8, 9]), "nope.csv"),
            {},
            r"data\.features=None is invalid: column 'x1' has infinite values",
        ),
        (
            lambda p: write(p, animals().assign(x1=np.nan), "nope.csv"),
            {"missing": "impute"},
            r"data\.missing='impute' is invalid: cannot impute column 'x1': it has no values",
        ),
    ],
)
def test_csv_errors(tmp_path, make, cfg, message):
    make(tmp_path)
    full = {**csv_cfg(tmp_path / "nope.csv"), **cfg, "path": str(tmp_path / cfg.get("path", "nope.csv"))}
    with pytest.raises(ConfigError, match=message):
        load_dataset(full)


def test_max_categories_counts_distinct_values(tmp_path):
    path = write(tmp_path, animals().assign(color=list("abcdabcda")))
    assert load_dataset(csv_cfg(path, max_categories=4)).X.shape == (9, 2 + 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "???"}, r"^data\.path='\?\?\?' is invalid: must be the path of a CSV or Parquet file"),
        ({"path": ""}, r"^data\.path='' is invalid"),
        ({"path": 3}, r"^data\.path=3 is invalid"),
        (
            {"path": "missing.csv"},
            r"^data\.path='missing\.csv' is invalid: must be an existing CSV or Parquet",
        ),
        ({"target": "???"}, r"^data\.target='\?\?\?' is invalid: must be the name of the label column"),
        ({"target": ""}, r"^data\.target='' is invalid"),
        ({"target": 1.5}, r"^data\.target=1\.5 is invalid"),
        (
            {"features": "x1"},
            r"^data\.features='x1' is invalid: must be null \(every column but the target\)",
        ),
        ({"features": []}, r"^data\.features=\[\] is invalid"),
        ({"features": ["x1", 2.5]}, r"^data\.features=\['x1', 2\.5\] is invalid"),
        ({"features": ["x1", "x1"]}, r"must name each column once; repeated: \['x1'\]"),
        ({"features": ["x1", "label"]}, r"must not include the target column 'label'"),
        (
            {"missing": "fill"},
            r"^data\.missing='fill' is invalid: must be one of reject, drop_rows, impute\.$",
        ),
        ({"max_categories": 1}, r"^data\.max_categories=1 is invalid: must be an integer >= 2\.$"),
        ({"max_categories": True}, r"^data\.max_categories=True is invalid"),
        ({"max_categories": "50"}, r"^data\.max_categories='50' is invalid"),
        ({"name": "csvv"}, r"^data\.name='csvv' is invalid: must be one of .*csv, digits, fashion_mnist"),
    ],
)
def test_check_data_config_csv(tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, animals())
    good = csv_cfg("t.csv", features=["x1", "color"])
    check_data_config(good)
    check_data_config({"seed": 0, "data": good})  # a whole run config works too
    with pytest.raises(ConfigError, match=message):
        check_data_config({**good, **change})
    with pytest.raises(ConfigError, match=message):
        check_data_config({"data": {**good, **change}})


def test_csv_config_composes_with_mandatory_path_and_target():
    from lossbench.pipeline import prepare
    from lossbench.validate import validate

    cfg = compose_cfg(["data=csv"])
    assert cfg["data"] == {
        "name": "csv",
        "path": "???",
        "target": "???",
        "features": None,
        "missing": "reject",
        "max_categories": 50,
        "label": None,
    }
    assert NUM_CLASSES["csv"](cfg["data"]) is None  # unknown until loaded
    # validation refuses the unset path before any data is read; prepare() would too
    with pytest.raises(ConfigError, match=r"^data\.path='\?\?\?' is invalid"):
        validate(cfg)
    with pytest.raises(ConfigError, match=r"^data\.path='\?\?\?' is invalid"):
        prepare(cfg)


def test_end_to_end_through_the_real_config(tmp_path):
    from lossbench.pipeline import run

    rng = np.random.default_rng(0)
    names = ["<script>alert(1)</script>", "apple", "banana"]
    centers = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    label = np.repeat(names, 60)
    xy = np.repeat(centers, 60, axis=0) + rng.normal(size=(180, 2))
    df = pd.DataFrame(
        {"a": xy[:, 0], "b": xy[:, 1], "shade": rng.choice(["dark", "light"], 180), "label": label}
    )
    path = write(tmp_path, df.sample(frac=1, random_state=0))
    result = run(compose_cfg(["data=csv", f"data.path={path}", "data.target=label", "model=logreg"]))
    assert result.class_names == names
    assert result.metrics["test/balanced_accuracy"] > 0.9
    assert result.class_counts["train"][0] > result.class_counts["train"][2]  # imbalance applied to the csv


def test_builtin_datasets_unchanged():
    wine = load_dataset({"name": "wine"})
    assert wine.X.shape == (178, 13) and wine.num_classes == 3 and wine.kind == "tabular"
    digits = load_dataset({"name": "digits"})
    assert digits.X.shape == (1797, 1, 8, 8) and digits.pixel_max == 16.0


def test_dataset_label_names_a_table_by_its_file_stem_unless_set():
    from lossbench.data import dataset_label

    assert dataset_label({"name": "digits", "label": None}) == "digits"
    assert dataset_label({"name": "csv", "path": "tables/glass.csv", "label": None}) == "glass"
    assert dataset_label({"name": "csv", "path": "/x/zoo.parquet", "label": "Zoo (UCI)"}) == "Zoo (UCI)"
