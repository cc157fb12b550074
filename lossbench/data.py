"""Datasets: each loader returns a :class:`Dataset` with integer labels 0..C-1.

Images keep their shape (N, channels, H, W) so convolutional models can use it; tabular data is (N, features).

- ``digits``, ``breast_cancer``, ``wine``: scikit-learn built-ins; ``synthetic``: make_classification.
- ``fashion_mnist``: the 70,000 Fashion-MNIST images read from local IDX files (no download).
- ``csv``: the user's own table, CSV or Parquet (:func:`load_table`).

:func:`check_data_config` checks a ``data`` node without loading anything.
"""

from __future__ import annotations

import functools
import gzip
import logging
import math
import numbers
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lossbench.errors import ConfigError

log = logging.getLogger("lossbench")


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray  # float32, (N, F) or (N, C, H, W)
    y: np.ndarray  # int64 in 0..C-1
    class_names: list[str]
    kind: str = "tabular"  # "tabular" (standardised on the training split) | "image" (scaled by pixel_max)
    pixel_max: float = 1.0
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])


@functools.cache
def _sklearn_arrays(loader_name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A scikit-learn built-in's (X float32, y int64, class names), read once per process (load_digits parses
    its CSV for ~25 ms; a sweep loads it for every job). The arrays are read-only: they are shared."""
    from sklearn import datasets

    bunch = getattr(datasets, loader_name)()
    X = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    names = tuple(str(n) for n in getattr(bunch, "target_names", np.unique(bunch.target)))
    return X, y, names


def _sklearn(loader_name: str, kind: str = "tabular") -> Callable[[Mapping], Dataset]:
    def load(cfg: Mapping) -> Dataset:
        X, y, names = _sklearn_arrays(loader_name)
        pixel_max = 1.0
        if kind == "image":
            side = round(np.sqrt(X.shape[1]))
            X = X.reshape(len(X), 1, side, side)
            pixel_max = 16.0  # digits pixels are counts 0..16
        return Dataset(cfg["name"], X, y, list(names), kind, pixel_max)

    return load


def _synthetic(cfg: Mapping) -> Dataset:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=cfg["n_samples"],
        n_features=cfg["n_features"],
        n_informative=cfg["n_informative"],
        n_redundant=0,
        n_classes=cfg["n_classes"],
        n_clusters_per_class=1,
        class_sep=cfg["class_sep"],
        random_state=cfg["data_seed"],
    )
    names = [f"class_{k}" for k in range(cfg["n_classes"])]
    return Dataset("synthetic", X.astype(np.float32), y.astype(np.int64), names)


# ---------------------------------------------------------------------------------------------- Fashion-MNIST

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# The official parts, in the order they are concatenated: (images, labels).
FASHION_MNIST_FILES = (
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
)
FASHION_MNIST_INSTALL = "Install them with: sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu)"
MIN_SUBSAMPLE = 100


def read_idx(path: str | Path) -> np.ndarray:
    """Parse a gzipped IDX file (the MNIST format) into a uint8 array of the shape its header gives.

    Header: two zero bytes, the type byte 0x08 (unsigned byte), the number of dimensions d, then d big-endian
    uint32 sizes; the data follows at offset 4 + 4·d (16 for images N×H×W, 8 for labels N).

    Raises ValueError for a file that is not a gzipped uint8 IDX file or whose size disagrees with its header.
    """
    try:
        raw = gzip.decompress(Path(path).read_bytes())
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; a truncated stream raises EOFError
        raise ValueError(f"{path} is not a readable gzip file ({e})") from e
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] == 0:
        raise ValueError(f"{path} is not a uint8 IDX file (header bytes {raw[:4].hex() or 'missing'})")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(f"{path} is truncated inside its IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != math.prod(shape):
        raise ValueError(f"{path} holds {data.size} values after its header, but the header says {shape}")
    return data.reshape(shape)


def _fashion_mnist_folder(root: object) -> Path:
    """The folder of the four IDX files; ConfigError on data.root naming the folder and the missing files."""
    if not isinstance(root, str) or not root.strip():
        raise ConfigError(
            "data.root", root, "must be the folder of the Fashion-MNIST IDX files", FASHION_MNIST_INSTALL
        )
    folder = Path(root).expanduser()
    wanted = [name for pair in FASHION_MNIST_FILES for name in pair]
    missing = [name for name in wanted if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            "data.root",
            root,
            f"must be a folder with the Fashion-MNIST IDX files; looked in {folder.resolve()} for "
            f"{', '.join(wanted)} and "
            + ("found none of them" if missing == wanted else f"did not find {', '.join(missing)}"),
            FASHION_MNIST_INSTALL,
        )
    return folder


@functools.cache
def _fashion_mnist_arrays(folder: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """All images (N, H, W) uint8 and labels (N,) int64, official parts concatenated; cached per folder
    (read-only arrays) so a sweep parses the files once per process."""
    images, labels, sizes = [], [], []
    for image_file, label_file in FASHION_MNIST_FILES:
        try:
            x, y = read_idx(Path(folder) / image_file), read_idx(Path(folder) / label_file)
        except ValueError as e:
            raise ConfigError("data.root", folder, "must hold valid Fashion-MNIST IDX files", str(e)) from e
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ConfigError(
                "data.root",
                folder,
                "must hold valid Fashion-MNIST IDX files",
                f"{image_file} has shape {x.shape} and {label_file} has shape {y.shape}; expected (N, H, W) "
                "images and N labels.",
            )
        if y.size and y.max() >= len(FASHION_MNIST_CLASSES):
            raise ConfigError(
                "data.root",
                folder,
                "must hold valid Fashion-MNIST IDX files",
                f"{label_file} has label {y.max()}",
            )
        images.append(x)
        labels.append(y)
        sizes.append(len(y))
    X, y = np.concatenate(images), np.concatenate(labels).astype(np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y, tuple(sizes)


def _stratified_subsample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded, stratified subsample of n rows."""
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(idx)


def _fashion_mnist(cfg: Mapping) -> Dataset:
    folder = _fashion_mnist_folder(cfg.get("root"))
    images, labels, sizes = _fashion_mnist_arrays(str(folder.resolve()))
    n = cfg.get("subsample")
    seed = int(cfg.get("data_seed", 0))
    if n is None or n == len(labels):
        X, y = images, labels
    elif n > len(labels):
        raise ConfigError(
            "data.subsample",
            n,
            f"must be at most {len(labels)} (the number of images), or null for all of them",
        )
    else:
        idx = _stratified_subsample(labels, int(n), seed)
        X, y = images[idx], labels[idx]
    meta = {
        "root": str(folder.resolve()),
        # lossbench draws its own stratified train/val/test split, so the official parts are pooled.
        "parts": f"official train ({sizes[0]}) and test ({sizes[1]}) concatenated, in that order",
        "subsample": n,
        "data_seed": seed,
    }
    X = X.astype(np.float32)[:, None, :, :]
    return Dataset(
        "fashion_mnist", X, np.array(y, dtype=np.int64), list(FASHION_MNIST_CLASSES), "image", 255.0, meta
    )


# ------------------------------------------------------------------------------------------ CSV and Parquet

MISSING = ("reject", "drop_rows", "impute")
PARQUET_SUFFIXES = (".parquet", ".pq")
MIN_PER_CLASS = 3  # the stratified train / val / test split puts at least one row of every class in each


def _set(value: object) -> bool:
    """Whether a Hydra value was given: not None and not the mandatory marker ``???``."""
    return value is not None and value != "???"


def _column_key(value: object) -> str | None:
    """A column name as given in the config: a non-empty string, or an int (Hydra parses data.target=2020
    as an int; CSV headers are strings). None when it is neither."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    return None


def _check_csv(data: Mapping) -> None:
    path = data.get("path")
    if not _set(path) or not isinstance(path, str) or not path.strip():
        raise ConfigError(
            "data.path",
            path,
            "must be the path of a CSV or Parquet file (.parquet / .pq are read as Parquet, others as CSV)",
            "Set it with data.path=my_table.csv data.target=<label column>.",
        )
    file = Path(path).expanduser()
    if not file.is_file():
        where = "is a folder" if file.is_dir() else "does not exist"
        raise ConfigError(
            "data.path", path, f"must be an existing CSV or Parquet file; {file.resolve()} {where}"
        )
    target = data.get("target")
    if not _set(target) or _column_key(target) is None:
        raise ConfigError(
            "data.target", target, "must be the name of the label column", "Set it with data.target=<column>."
        )
    features = data.get("features")
    if features is not None:
        allowed = "must be null (every column but the target) or a non-empty list of column names"
        if not isinstance(features, (list, tuple)) or not features:
            raise ConfigError("data.features", features, allowed)
        keys = [_column_key(f) for f in features]
        if any(k is None for k in keys):
            raise ConfigError("data.features", features, allowed)
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ConfigError("data.features", features, f"must name each column once; repeated: {repeated}")
        if _column_key(target) in keys:
            raise ConfigError(
                "data.features", features, f"must not include the target column {_column_key(target)!r}"
            )
    if data.get("missing") not in MISSING:
        raise ConfigError("data.missing", data.get("missing"), f"must be one of {', '.join(MISSING)}")
    max_categories = data.get("max_categories")
    if (
        isinstance(max_categories, bool)
        or not isinstance(max_categories, numbers.Integral)
        or max_categories < 2
    ):
        raise ConfigError("data.max_categories", max_categories, "must be an integer >= 2")


def _check_fashion_mnist(data: Mapping) -> None:
    n = data.get("subsample")
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < MIN_SUBSAMPLE):
        raise ConfigError(
            "data.subsample", n, f"must be an integer >= {MIN_SUBSAMPLE} (or null for all 70,000 images)"
        )
    seed = data.get("data_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError("data.data_seed", seed, "must be an integer >= 0")
    _fashion_mnist_folder(data.get("root"))


def check_data_config(cfg: Mapping) -> None:
    """Static checks of the ``data`` node that need no loading; raises ConfigError.

    ``cfg`` is a whole run config (its ``data`` node is checked) or the ``data`` node itself.
    csv: data.path names an existing file, data.target a column name, data.features is null or a list of
    column names, data.missing is one of reject / drop_rows / impute, data.max_categories an integer >= 2.
    fashion_mnist: data.subsample is null or an integer >= 100, data.root holds the four IDX files.
    Values that need the data (columns, classes, missing values) are checked when it is loaded.
    """
    data = cfg["data"] if isinstance(cfg.get("data"), Mapping) else cfg
    name = data.get("name")
    if name not in LOADERS:
        raise ConfigError("data.name", name, f"must be one of {', '.join(sorted(LOADERS))}")
    if name == "csv":
        _check_csv(data)
    elif name == "fashion_mnist":
        _check_fashion_mnist(data)
    elif name in ("imblearn", "openml"):
        _check_download(data, name)


def _check_download(data: Mapping, name: str) -> None:
    """data=imblearn: data.dataset one of the collection's 27 names; data=openml: data.dataset (a name) or
    data.data_id (an integer >= 1), not both; both: data.download_if_missing a boolean."""
    if not isinstance(data.get("download_if_missing"), bool):
        raise ConfigError(
            "data.download_if_missing", data.get("download_if_missing"), "must be true or false"
        )
    if name == "imblearn":
        if data.get("dataset") not in IMBLEARN_DATASETS:
            raise ConfigError(
                "data.dataset",
                data.get("dataset"),
                f"must be one of imbalanced-learn's benchmark tables: {', '.join(IMBLEARN_DATASETS)}",
            )
        return
    dataset, data_id = data.get("dataset"), data.get("data_id")
    if (dataset is None) == (data_id is None):
        raise ConfigError(
            "data.dataset",
            dataset,
            "set exactly one of data.dataset (an OpenML name) and data.data_id (an OpenML id)",
        )
    if data_id is not None and (
        isinstance(data_id, bool) or not isinstance(data_id, numbers.Integral) or data_id < 1
    ):
        raise ConfigError("data.data_id", data_id, "must be an integer >= 1 (or null with data.dataset)")
    if dataset is not None and (not isinstance(dataset, str) or not dataset.strip()):
        raise ConfigError("data.dataset", dataset, "must be an OpenML dataset name")
    if data.get("missing") not in MISSING:
        raise ConfigError("data.missing", data.get("missing"), f"must be one of {', '.join(MISSING)}")


def _read_table(path: str):
    import pandas as pd

    file = Path(path).expanduser()
    try:
        df = pd.read_parquet(file) if file.suffix.lower() in PARQUET_SUFFIXES else pd.read_csv(file)
    except Exception as e:  # pandas and pyarrow raise many types for an unreadable file; report any of them
        kind = "Parquet" if file.suffix.lower() in PARQUET_SUFFIXES else "CSV"
        raise ConfigError(
            "data.path",
            path,
            f"must be a readable {kind} file",
            f"Reading it failed: {type(e).__name__}: {e}",
        ) from e
    if df.shape[1] == 0 or len(df) == 0:
        raise ConfigError(
            "data.path", path, "must be a table with a header and at least one data row", "The file has none."
        )
    names = _header(file) if file.suffix.lower() not in PARQUET_SUFFIXES else [str(c) for c in df.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # pandas would rename them (a, a.1) and the table would be read as something it is not
        raise ConfigError(
            "data.path",
            path,
            "each column needs its own name; the header repeats " + ", ".join(map(repr, repeated)),
            "Rename the repeated columns.",
        )
    return df


def _header(file: Path) -> list[str]:
    """A CSV file's column names as written in its first line (before pandas renames repeats)."""
    import csv

    with open(file, newline="", encoding="utf-8", errors="replace") as f:
        return list(next(csv.reader(f), []))


def _as_strings(values) -> np.ndarray:
    """A column as an object array of str, with None where the value is missing."""
    mask = values.isna().to_numpy()
    out = values.to_numpy(dtype=object).copy()
    out[~mask] = [str(v) for v in out[~mask]]
    out[mask] = None
    return out


def _counted(items: list[tuple[str, int]], unit: str = "missing") -> str:
    """'a' (2 missing), 'b' (1 row), ..."""
    plural = {"row": "rows"}
    return ", ".join(f"{name!r} ({n} {plural.get(unit, unit) if n != 1 else unit})" for name, n in items)


def _class_name(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))  # integer labels come back as floats from a CSV column with missing cells
    return str(value)


def _encode_target(values) -> tuple[np.ndarray, list[str]]:
    """Labels -> 0..C-1. Numeric labels keep numeric order (so integer labels 0..C-1 keep their meaning);
    any other labels are ordered by their strings (Python's sorted: 'B' < 'a', '10' < '9')."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values):
        classes, y = np.unique(values.to_numpy(), return_inverse=True)
        return y.astype(np.int64), [_class_name(c) for c in classes]
    classes, y = np.unique(_as_strings(values).astype(str), return_inverse=True)
    return y.astype(np.int64), [str(c) for c in classes]


def _encode_features(df, features: list[str], cfg: Mapping) -> tuple[np.ndarray, list[str], dict]:
    """Feature columns -> float32 matrix: numeric as is, others one-hot; fills the gaps left for impute."""
    import pandas as pd

    blocks, names, imputed = [], [], {}
    for col in features:
        values = df[col]
        gap = values.isna().to_numpy()  # gaps remain only with missing=impute
        if gap.all():
            raise ConfigError(
                "data.missing",
                cfg["missing"],
                f"cannot impute column {col!r}: it has no values",
                "Leave it out.",
            )
        if pd.api.types.is_numeric_dtype(values):
            column = values.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
            if gap.any():
                imputed[col] = float(np.median(column[~gap]))
                column[gap] = imputed[col]
            if not np.isfinite(column).all():
                raise ConfigError(
                    "data.features",
                    cfg.get("features"),
                    f"column {col!r} has infinite values",
                    "Clean it or leave it out.",
                )
            blocks.append(column.astype(np.float32)[:, None])
            names.append(col)
            continue
        strings = _as_strings(values)
        if gap.any():
            kinds, counts = np.unique(strings[~gap].astype(str), return_counts=True)
            imputed[col] = str(kinds[np.argmax(counts)])  # argmax: the first (smallest) on ties
            strings[gap] = imputed[col]
        categories, codes = np.unique(strings.astype(str), return_inverse=True)
        if len(categories) > cfg["max_categories"]:
            raise ConfigError(
                "data.max_categories",
                cfg["max_categories"],
                f"column {col!r} is non-numeric with {len(categories)} distinct values "
                "(one-hot encoded, a feature per value)",
                "Leave it out with data.features=[...] or raise data.max_categories.",
            )
        onehot = np.zeros((len(strings), len(categories)), dtype=np.float32)
        onehot[np.arange(len(strings)), codes] = 1.0
        blocks.append(onehot)
        names.extend(f"{col}={c}" for c in categories)
    return np.concatenate(blocks, axis=1), names, imputed


def load_table(cfg: Mapping) -> Dataset:
    """Load the user's table (``data=csv``): CSV, or Parquet for paths ending .parquet / .pq.

    - data.target: the label column, any dtype. Rows with a missing label are always dropped (logged,
      counted in ``meta["rows_dropped_missing_target"]``). Class order: see :func:`_encode_target`.
    - data.features: null = every other column, in file order; or a list of column names (that order).
      Numeric columns become float32 features; any other column is one-hot encoded, one column per distinct
      value, named ``column=value``, in sorted order of the values as strings. A non-numeric column with more
      than data.max_categories distinct values is refused.
    - data.missing (missing = empty cells and pandas' NA markers such as NA, NaN, null, None):
      ``reject`` refuses a table with missing feature values; ``drop_rows`` drops every row with a missing
      value in a used column; ``impute`` fills numeric columns with their median and the others with their
      most frequent value (the smallest in string order on ties). Imputation statistics come from the whole
      table, before lossbench's train / val / test split.
    Every class needs at least 3 rows (one for each split).
    """
    check_data_config(cfg)
    path = cfg["path"]
    meta: dict = {"path": str(Path(path).expanduser().resolve())}
    return table_dataset(_read_table(path), cfg, path, "csv", meta)


def table_dataset(df, cfg: Mapping, path: str, name: str, meta: dict) -> Dataset:
    """A table (pandas DataFrame) as a Dataset under ``cfg``'s target / features / missing / max_categories
    rules (see :func:`load_table`); ``path`` names the table in messages, ``name`` is the Dataset's name."""
    missing = cfg["missing"]
    by_name = {str(c): c for c in df.columns}
    available = ", ".join(repr(c) for c in by_name)
    target = _column_key(cfg["target"])
    if target not in by_name:
        raise ConfigError(
            "data.target", cfg["target"], f"must be a column of {path}; its columns are {available}"
        )
    if cfg.get("features") is None:
        features = [c for c in by_name if c != target]
        if not features:
            raise ConfigError(
                "data.features",
                None,
                f"needs at least one feature column; {path} has only the target {target!r}",
            )
    else:
        features = [_column_key(f) for f in cfg["features"]]
        absent = [f for f in features if f not in by_name]
        if absent:
            raise ConfigError(
                "data.features",
                cfg["features"],
                f"must name columns of {path}; not found: {', '.join(map(repr, absent))}; "
                f"its columns are {available}",
            )
    df = df[[by_name[target]] + [by_name[f] for f in features]]
    df.columns = [target, *features]
    n_read = len(df)

    label_missing = df[target].isna().to_numpy()
    if label_missing.any():
        log.warning("data.path=%s: dropped %d rows with no label in %r", path, label_missing.sum(), target)
        df = df[~label_missing]
    meta.update(target=target, rows_read=n_read)
    meta["rows_dropped_missing_target"] = int(label_missing.sum())

    gaps = [(c, int(n)) for c, n in df[features].isna().sum().items() if n]
    if gaps and missing == "reject":
        raise ConfigError(
            "data.missing",
            missing,
            f"feature columns have missing values: {_counted(gaps)}",
            "Set data.missing=drop_rows or data.missing=impute.",
        )
    if gaps and missing == "drop_rows":
        keep = ~df[features].isna().any(axis=1).to_numpy()
        log.warning("data.path=%s: dropped %d rows with missing feature values", path, (~keep).sum())
        meta["rows_dropped_missing_features"] = int((~keep).sum())
        df = df[keep]
    if len(df) == 0:
        raise ConfigError("data.missing", missing, f"leaves no rows of {path}", "Try data.missing=impute.")

    X, names, imputed = _encode_features(df, features, cfg)
    if imputed:
        meta["imputed"] = imputed

    y, class_names = _encode_target(df[target])
    if len(class_names) < 2:
        raise ConfigError(
            "data.target", cfg["target"], f"needs at least 2 classes; found only {class_names[0]!r}"
        )
    counts = np.bincount(y, minlength=len(class_names))
    few = [(class_names[k], int(counts[k])) for k in np.flatnonzero(counts < MIN_PER_CLASS)]
    if few:
        raise ConfigError(
            "data.target",
            cfg["target"],
            f"needs at least {MIN_PER_CLASS} rows of every class (the stratified train / val / test split "
            f"puts one in each); too few: {_counted(few, 'row')}",
        )
    meta.update(features=features, feature_names=names, rows=len(y))
    return Dataset(name, X, y, class_names, "tabular", 1.0, meta)


# imbalanced-learn's benchmark collection (Lemaître et al.; imblearn.datasets.fetch_datasets): 27 binary
# tables, minority label 1 against -1
IMBLEARN_DATASETS = (
    "ecoli", "optical_digits", "satimage", "pen_digits", "abalone", "sick_euthyroid", "spectrometer",
    "car_eval_34", "isolet", "us_crime", "yeast_ml8", "scene", "libras_move", "thyroid_sick", "coil_2000",
    "arrhythmia", "solar_flare_m0", "oil", "car_eval_4", "wine_quality", "letter_img", "yeast_me2", "webpage",
    "ozone_level", "mammography", "protein_homo", "abalone_19",
)  # fmt: skip


def _data_home(cfg: Mapping) -> str | None:
    home = cfg.get("data_home")
    return None if home in (None, "") else str(Path(str(home)).expanduser())


def _not_cached(what: str, where: str) -> ConfigError:
    return ConfigError(
        "data.download_if_missing",
        False,
        f"{what} is not in the cache {where}",
        "Set data.download_if_missing=true (needs a network) or data.data_home=<the folder holding it>.",
    )


def _download_failed(key: str, value, error: Exception) -> ConfigError:
    return ConfigError(
        key,
        value,
        "could not be downloaded",
        f"{type(error).__name__}: {error}. With no network, point data.data_home at a cache that holds it.",
    )


def _imblearn(cfg: Mapping) -> Dataset:
    """One table of imbalanced-learn's benchmark collection (``fetch_datasets``), cached in data.data_home
    (imbalanced-learn's default: ~/scikit_learn_data); downloaded once unless data.download_if_missing=false.
    Classes: 0 = label -1 (majority), 1 = label 1 (minority)."""
    from imblearn.datasets import fetch_datasets

    name, home = cfg["dataset"], _data_home(cfg)
    try:
        bunch = fetch_datasets(
            data_home=home, filter_data=(name,), download_if_missing=bool(cfg["download_if_missing"])
        )[name]
    except OSError as e:
        if not cfg["download_if_missing"]:
            raise _not_cached(f"data.dataset={name}", home or "~/scikit_learn_data") from e
        raise _download_failed("data.dataset", name, e) from e
    X = np.asarray(bunch.data, dtype=np.float32)
    y = (np.asarray(bunch.target) > 0).astype(np.int64)
    meta = {"source": "imbalanced-learn", "dataset": name, "rows": len(y)}
    return Dataset(f"imblearn:{name}", X, y, ["-1", "1"], "tabular", 1.0, meta)


def openml_cache(cfg: Mapping) -> tuple[Path, Path]:
    """Where lossbench keeps an OpenML table it fetched: ``<data_home>/lossbench-openml/<key>.parquet`` and
    its ``.json`` (dataset id, name, version, target), keyed by how the config names it (``id-41``,
    ``name-glass-vactive``). lossbench reads this cache itself, so data.download_if_missing=false needs no
    knowledge of scikit-learn's own cache."""
    from sklearn.datasets import get_data_home

    folder = Path(get_data_home(_data_home(cfg))) / "lossbench-openml"
    if cfg.get("data_id") is not None:
        key = f"id-{int(cfg['data_id'])}"
    else:
        key = f"name-{cfg['dataset']}-v{cfg.get('version', 'active')}"
    if cfg.get("target") is not None:
        key += f"-target-{cfg['target']}"
    key = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)  # one safe file name
    return folder / f"{key}.parquet", folder / f"{key}.json"


def _openml(cfg: Mapping) -> Dataset:
    """An OpenML table (scikit-learn's ``fetch_openml``) by data.dataset (name, with data.version) or
    data.data_id: its default target unless data.target is set; features and missing values as for data=csv.
    Fetched once and kept in :func:`openml_cache`; with data.download_if_missing=false only that cache."""
    import json

    import pandas as pd

    by_id = cfg.get("data_id") is not None
    key, value = ("data.data_id", cfg["data_id"]) if by_id else ("data.dataset", cfg["dataset"])
    table, info = openml_cache(cfg)
    if table.is_file() and info.is_file():
        frame, details = pd.read_parquet(table), json.loads(info.read_text())
    elif not cfg["download_if_missing"]:
        raise _not_cached(f"{key}={value}", str(table.parent))
    else:
        from sklearn.datasets import fetch_openml

        target = cfg.get("target")
        try:
            bunch = fetch_openml(
                name=None if by_id else str(cfg["dataset"]),
                version="active" if by_id else cfg.get("version", "active"),
                data_id=int(cfg["data_id"]) if by_id else None,
                data_home=_data_home(cfg),
                target_column="default-target" if target is None else str(target),
                as_frame=True,
                parser="auto",
            )
        except OSError as e:
            raise _download_failed(key, value, e) from e
        except ValueError as e:  # an unknown name / id, or a target that is not a column
            raise ConfigError(key, value, "is not an OpenML dataset lossbench can read", str(e)) from e
        details = {
            "id": int(bunch.details.get("id", 0) or 0),
            "name": bunch.details.get("name"),
            "version": bunch.details.get("version"),
            "target": list(bunch.target_names or []),
        }
        frame = bunch.frame
        table.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(table)
        info.write_text(json.dumps(details))
    targets = details["target"]
    if len(targets) != 1:
        raise ConfigError(
            "data.target", cfg.get("target"), f"must name one label column; OpenML gives {targets}"
        )
    meta = {"source": "openml", "openml_id": details["id"], "openml_name": details["name"]}
    source = f"OpenML dataset {details['name']!r} (id {details['id']})"
    return table_dataset(frame, {**cfg, "target": targets[0]}, source, f"openml:{value}", meta)


LOADERS: dict[str, Callable[[Mapping], Dataset]] = {
    "digits": _sklearn("load_digits", kind="image"),
    "breast_cancer": _sklearn("load_breast_cancer"),
    "wine": _sklearn("load_wine"),
    "synthetic": _synthetic,
    "fashion_mnist": _fashion_mnist,
    "csv": load_table,
    "imblearn": _imblearn,
    "openml": _openml,
}

# Datasets whose samples are (channels, H, W) images, known without loading (for torch_cnn).
IMAGE_DATASETS = frozenset({"digits", "fashion_mnist"})

# Class counts known without loading, so configs can be validated before any data is read.
# A value of None means "unknown until loaded" (data=csv): checks that need C then happen at load time.
NUM_CLASSES: dict[str, Callable[[Mapping], int | None]] = {
    "digits": lambda cfg: 10,
    "breast_cancer": lambda cfg: 2,
    "wine": lambda cfg: 3,
    "synthetic": lambda cfg: int(cfg["n_classes"]),
    "fashion_mnist": lambda cfg: len(FASHION_MNIST_CLASSES),
    "csv": lambda cfg: None,
    "imblearn": lambda cfg: 2,
    "openml": lambda cfg: None,
}


def dataset_label(cfg: Mapping) -> str:
    """The dataset's identity in MLflow and the reports (param ``data.label``): ``data.label`` when set,
    else a table's file stem (``data=csv data.path=glass.csv`` -> ``glass``), else the option's name."""
    label = cfg.get("label")
    if label not in (None, ""):
        return str(label)
    if cfg["name"] == "csv" and cfg.get("path") not in (None, "???"):
        return Path(str(cfg["path"])).stem
    if cfg["name"] == "imblearn":
        return str(cfg.get("dataset"))
    if cfg["name"] == "openml":
        return str(cfg["dataset"]) if cfg.get("data_id") is None else f"openml-{cfg['data_id']}"
    return str(cfg["name"])


def load_dataset(cfg: Mapping) -> Dataset:
    """Load the dataset described by the ``data`` config node."""
    check_data_config(cfg)
    return LOADERS[cfg["name"]](cfg)
