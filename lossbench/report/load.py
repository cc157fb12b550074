"""Reading an experiment back from MLflow: the runs as one tidy DataFrame, and the sweep's job accounting."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# post-hoc baselines of CE runs (lossbench.baselines): each becomes a row of its own, "loss" = its name
from lossbench.baselines import BASELINES as BASELINES  # re-exported: name -> what the baseline is
from lossbench.baselines import expand_baselines
from lossbench.baselines import mlflow_runs as mlflow_runs
from lossbench.errors import ConfigError
from lossbench.store import connect_read_only, local_artifact_dir, query, readable
from lossbench.tracking import (
    SWEEP_JOBS_ARTIFACT,
    TAG_CELL,
    TAG_FINGERPRINT,
    TAG_KNOBS,
    TAG_REALISATION,
    TAG_ROLE,
    TAG_SWEEP_ID,
    TAG_TRIAL,
    TAG_TUNED_FROM,
    TAG_VARIANT,
    tracking_uri,
)

log = logging.getLogger("lossbench")

PAGE_SIZE = 1000
# per-epoch histories of torch runs (step = epoch): curve/train_loss, curve/val_loss, ...
CURVE_PREFIX = "curve/"
CURVE_COLUMNS = ["run_id", "curve", "step", "value"]
# one column per axis a sweep can vary, named as the report (and a notebook) speaks of them
# "data" is the dataset's identity, param data.label (a table's file stem, or the built-in's name); runs
# logged before lossbench recorded it fall back to data.name
AXES = {
    "data": "data.label",
    "model": "model.name",
    "loss": "loss.name",
    "ratio": "imbalance.ratio",
    "profile": "imbalance.profile",
    "regularization": "regularization.name",
    "strength": "regularization.strength",
    "rebalance": "rebalance.name",
    "seed": "seed",
}
NUMERIC_AXES = ("ratio", "strength", "seed")
# runs that are no result of their own: a sweep's parent, a tuned cell's study (role "tuning") and its trials
# (role "trial": validation only, in Experiment.trials)
NOT_RESULTS = ("sweep", "tuning", "trial")


@dataclass
class Sweep:
    """One sweep's parent run and what its jobs reported (empty statuses: the sweep never finished)."""

    run_id: str
    sweep_id: str
    name: str
    status: str
    start_time: int
    params: dict[str, str]
    artifact_uri: str | None = None
    statuses: list[dict] = field(default_factory=list)

    @property
    def expected(self) -> int | None:
        value = self.params.get("sweep.jobs")
        return int(value) if value is not None else None


@dataclass
class Experiment:
    """What a report is built from: the runs in scope, the sweeps they came from, where they are stored."""

    name: str
    uri: str
    runs: pd.DataFrame  # one row per run (every status); see load_runs
    sweeps: list[Sweep]  # the sweeps in scope, newest first
    scope: str  # "latest", "all" or a sweep id
    curve_keys: dict[str, list[str]] = field(default_factory=dict)  # run id -> its curve/* metric keys
    # the tuning trials of the tuned cells in scope (tune.trials > 0), one row per trial (_trials)
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


class LazyClient:
    """An MlflowClient made on first use: importing and starting MLflow costs ~2.5 s, and a report on a
    SQLite store with local artifacts never needs it."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._client = None

    def __getattr__(self, name: str):
        if self._client is None:
            self._client = _client(self.uri)
        return getattr(self._client, name)


def _experiment_id(client, experiment: str, uri: str) -> str:
    rows = query(uri, "SELECT experiment_id FROM experiments WHERE name = ?", (experiment,))
    if rows:
        return str(rows[0][0])
    try:
        found = client.get_experiment_by_name(experiment)
    except Exception as e:  # MLflow's errors about the store (URI, driver, connection): one line
        from lossbench.tracking import store_error

        raise store_error(uri, e, key="--tracking-uri") from e
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ConfigError(
            "--experiment",
            experiment,
            f"no such experiment in {uri}",
            f"Experiments there: {', '.join(names) or 'none'}. Run a sweep first, or pass --tracking-uri.",
        )
    return found.experiment_id


def _search_all(client, experiment_id: str, uri: str) -> list:
    """Every active run of the experiment: straight from the SQLite file when the store is one (MLflow's
    search_runs builds ORM objects for every param, tag and metric: ~35 s for 10k runs), else page by page
    through search_runs (MLflow caps one page; 10k-run experiments are normal)."""
    fast = _read_sqlite(uri, experiment_id)
    if fast is not None:
        return fast
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=PAGE_SIZE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _read_sqlite(uri: str, experiment_id: str) -> list | None:
    """The runs search_runs returns (active ones, newest first), as objects with the same ``info`` and
    ``data`` fields, read from MLflow's tables (runs, params, tags, latest_metrics) in four queries. None
    when the store is not a plain SQLite file or its tables are not what this code knows: search_runs then.
    tests/test_report.py checks both paths return the same runs."""
    import math
    import sqlite3
    from types import SimpleNamespace

    con = _open_read_only(uri)
    if con is None:
        return None
    try:
        rows = con.execute(
            "SELECT run_uuid, name, status, start_time, artifact_uri FROM runs "
            "WHERE experiment_id = ? AND lifecycle_stage = 'active' ORDER BY start_time DESC, run_uuid",
            (int(experiment_id),),
        ).fetchall()
        runs = {
            r[0]: SimpleNamespace(
                info=SimpleNamespace(
                    run_id=r[0], run_name=r[1], status=r[2], start_time=r[3], artifact_uri=r[4]
                ),
                data=SimpleNamespace(params={}, tags={}, metrics={}),
            )
            for r in rows
        }
        scope = (
            "run_uuid IN (SELECT run_uuid FROM runs WHERE experiment_id = ? AND lifecycle_stage = 'active')"
        )
        for table, field_ in (("params", "params"), ("tags", "tags")):
            for run_id, key, value in con.execute(
                f"SELECT run_uuid, key, value FROM {table} WHERE {scope}", (int(experiment_id),)
            ):
                getattr(runs[run_id].data, field_)[key] = value
        for run_id, key, value, is_nan in con.execute(
            f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE {scope}", (int(experiment_id),)
        ):
            runs[run_id].data.metrics[key] = math.nan if is_nan else float(value)
    except (sqlite3.Error, KeyError, ValueError, TypeError) as e:
        log.debug("reading %s directly failed (%s); using search_runs", uri, e)
        return None
    finally:
        con.close()
    return list(runs.values())


def _open_read_only(uri: str):
    """A read-only connection to the store's SQLite file when its schema is one these queries were tested
    on (:func:`lossbench.store.readable`); None otherwise (the caller then asks MLflow's client)."""
    import sqlite3

    path = readable(uri)
    if path is None:
        return None
    try:
        return connect_read_only(path)
    except sqlite3.Error:
        return None


def load_curves(exp: Experiment, run_ids, client=None) -> pd.DataFrame:
    """The per-epoch histories of ``run_ids``: one row per (run, curve, step) with columns ``run_id``,
    ``curve`` (the key without ``curve/``), ``step`` (the epoch, from 1) and ``value``.

    MLflow's ``latest_metrics`` keeps only the last epoch; the histories are in its ``metrics`` table, read
    in one query on a SQLite store of a tested schema, else run by run with ``get_metric_history``.
    tests/test_report_readability.py checks both paths return the same rows."""
    wanted = [r for r in dict.fromkeys(run_ids) if exp.curve_keys.get(r)]
    if not wanted:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    rows = _read_sqlite_curves(exp.uri, wanted)
    if rows is None:
        client = client if client is not None else LazyClient(exp.uri)
        rows = [
            (run_id, key, m.step, m.timestamp, m.value)
            for run_id in wanted
            for key in exp.curve_keys[run_id]
            for m in client.get_metric_history(run_id, key)
        ]
    return _curve_frame(rows)


def _read_sqlite_curves(uri: str, run_ids: list[str]) -> list[tuple] | None:
    """(run id, key, step, timestamp, value) of every ``curve/*`` metric of ``run_ids``, in one query (the
    key range uses the metrics table's primary key; the run ids go as one JSON array, as 10k runs are more
    than SQLite's bound parameters). None when the store is not a SQLite file of a tested schema."""
    import json
    import sqlite3

    con = _open_read_only(uri)
    if con is None:
        return None
    try:
        upper = CURVE_PREFIX[:-1] + chr(ord(CURVE_PREFIX[-1]) + 1)  # "curve0": the keys that start "curve/"
        return con.execute(
            "SELECT m.run_uuid, m.key, m.step, m.timestamp, CASE WHEN m.is_nan THEN NULL ELSE m.value END "
            "FROM metrics m JOIN (SELECT DISTINCT value AS run_uuid FROM json_each(?)) w "
            "ON w.run_uuid = m.run_uuid WHERE m.key >= ? AND m.key < ?",
            (json.dumps(run_ids), CURVE_PREFIX, upper),
        ).fetchall()
    except sqlite3.Error as e:
        log.debug("reading curves from %s directly failed (%s); using get_metric_history", uri, e)
        return None
    finally:
        con.close()


def _curve_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows (run id, key, step, timestamp, value) as the curves frame; a step logged twice keeps its latest
    value (a re-logged epoch), as MLflow's own latest_metrics does."""
    frame = pd.DataFrame(rows, columns=["run_id", "curve", "step", "timestamp", "value"])
    if frame.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    frame["step"] = frame["step"].astype(int)
    frame["curve"] = frame["curve"].str.removeprefix(CURVE_PREFIX)
    frame = frame.sort_values(["run_id", "curve", "step", "timestamp"], kind="stable")
    frame = frame.drop_duplicates(["run_id", "curve", "step"], keep="last")
    return frame[CURVE_COLUMNS].reset_index(drop=True)


def read_json_artifact(client, run_id: str, artifact_uri: str | None, name: str):
    """A run's JSON artifact, or None when it has none. Read in place when the artifacts are local files
    (1,500 downloads through MLflow took ~65 s for a 10k-run report); downloaded otherwise."""
    import tempfile

    local = local_artifact_dir(artifact_uri)
    if local is not None:
        try:
            return json.loads((local / name).read_text())
        except FileNotFoundError:
            return None
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, name, tmp)
        except (MlflowException, OSError):
            return None
        with open(path) as f:
            return json.load(f)


def _value(text: str | None):
    if text is None:
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


def _row(run) -> dict:
    params, tags = run.data.params, run.data.tags
    row = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "artifact_uri": run.info.artifact_uri,
        "start_time": run.info.start_time,
        "sweep_id": tags.get(TAG_SWEEP_ID),
        "parent_run_id": tags.get("mlflow.parentRunId"),
        "fingerprint": tags.get(TAG_FINGERPRINT),
        "realisation": tags.get(TAG_REALISATION),
        "failure_reason": tags.get("lossbench.failure_reason"),
        # tuned sweeps: "default" or "tuned" (no tag: an untuned sweep's run, "default"), the tuning cell,
        # the knobs (parsed JSON) and the chosen trial's run id
        "variant": tags.get(TAG_VARIANT) or "default",
        "cell": tags.get(TAG_CELL),
        "knobs": _value(tags.get(TAG_KNOBS)),
        "tuned_from": tags.get(TAG_TUNED_FROM),
        "class_names": _value(params.get("data.class_names")),
        "train_counts": _value(params.get("class_counts.train")),
        "test_counts": _value(params.get("class_counts.test")),
    }
    for axis, key in AXES.items():
        row[axis] = params.get(key)
    if row["data"] is None:
        row["data"] = params.get("data.name")
    row.update({k: v for k, v in run.data.metrics.items() if not k.startswith(CURVE_PREFIX)})
    row.update({f"params.{k}": v for k, v in params.items()})
    return row


def _frame(runs: list) -> pd.DataFrame:
    df = pd.DataFrame([_row(r) for r in runs])
    if df.empty:
        return pd.DataFrame(columns=["run_id", "status", *AXES])
    for axis in NUMERIC_AXES:
        df[axis] = pd.to_numeric(df[axis], errors="coerce")
    df["strength"] = df["strength"].fillna(0.0)
    df["seed"] = df["seed"].astype("Int64")
    return df


def _sweeps(parents: list) -> list[Sweep]:
    sweeps = [
        Sweep(
            run_id=p.info.run_id,
            sweep_id=p.data.tags.get(TAG_SWEEP_ID, ""),
            name=p.info.run_name,
            status=p.info.status,
            start_time=p.info.start_time,
            params=dict(p.data.params),
            artifact_uri=p.info.artifact_uri,
        )
        for p in parents
    ]
    return sorted(sweeps, key=lambda s: s.start_time, reverse=True)


def _statuses(client, sweep: Sweep) -> list[dict]:
    """The sweep's job statuses; [] when it was interrupted before it could count its jobs."""
    return read_json_artifact(client, sweep.run_id, sweep.artifact_uri, SWEEP_JOBS_ARTIFACT) or []


TRIAL_COLUMNS = ["run_id", "cell", "trial", "knobs", "tune/value", "parent_run_id", "sweep_id", *AXES]


def _trials(everything: list) -> pd.DataFrame:
    """The tuning trials among the runs (role "trial"), as :func:`_frame` rows with the trial's number;
    ``sweep_id`` from the trial's own tag, else its tuning run's (role "tuning", the trial's parent)."""
    studies = {r.info.run_id: r for r in everything if r.data.tags.get(TAG_ROLE) == "tuning"}
    found = [r for r in everything if r.data.tags.get(TAG_ROLE) == "trial"]
    if not found:
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    trials = _frame(found)
    trials["trial"] = pd.to_numeric(
        pd.Series([r.data.tags.get(TAG_TRIAL) for r in found], index=trials.index), errors="coerce"
    ).astype("Int64")
    study_sweep = trials["parent_run_id"].map(
        lambda p: studies[p].data.tags.get(TAG_SWEEP_ID) if p in studies else None
    )
    trials["sweep_id"] = trials["sweep_id"].fillna(study_sweep)
    return trials.sort_values(["cell", "trial"], kind="stable").reset_index(drop=True)


def is_variant(runs: pd.DataFrame, name: str) -> pd.Series:
    """Whether each run is of variant ``name``: a run whose defaults were the tuned choice (or that had
    nothing to tune) is both, ``"default tuned"``."""
    return runs["variant"].map(lambda v: name in str(v).split())


def _in_scope(trials: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The trials of the studies whose chosen trials the tuned runs in scope name (``tuned_from``); for a
    tuned cell whose chosen trial is not among them, its trials from the sweeps of the runs in scope."""
    if trials.empty or runs.empty or "cell" not in runs:
        return trials.iloc[0:0].reset_index(drop=True)
    tuned = runs[is_variant(runs, "tuned")]
    studies = set(trials.loc[trials["run_id"].isin(set(tuned["tuned_from"].dropna())), "parent_run_id"])
    by_study = trials["parent_run_id"].isin(studies)
    rest = set(tuned["cell"].dropna()) - set(trials.loc[by_study, "cell"])
    by_sweep = trials["cell"].isin(rest) & trials["sweep_id"].isin(set(tuned["sweep_id"].dropna()))
    return trials[by_study | by_sweep].reset_index(drop=True)


def load_experiment(
    experiment: str, tracking_uri_: str | None = None, *, scope: str = "latest"
) -> Experiment:
    """The runs of ``experiment`` in scope: ``latest`` (the newest sweep: its own runs and the earlier runs it
    resumed), ``all`` (every run, the newest FINISHED run per config), or one sweep id."""
    uri = tracking_uri(tracking_uri_)
    client = LazyClient(uri)
    exp_id = _experiment_id(client, experiment, uri)
    everything = _search_all(client, exp_id, uri)
    parents = [r for r in everything if r.data.tags.get(TAG_ROLE) == "sweep"]
    children = [r for r in everything if r.data.tags.get(TAG_ROLE) not in NOT_RESULTS]
    trials = _trials(everything)
    sweeps = _sweeps(parents)
    runs = _frame(children)
    curve_keys = {
        r.info.run_id: sorted(k for k in r.data.metrics if k.startswith(CURVE_PREFIX)) for r in children
    }

    if scope == "all" or not sweeps:
        chosen = sweeps
        for s in chosen:
            s.statuses = _statuses(client, s)
        if not runs.empty:  # a config re-run with resume=false counts once: its newest FINISHED run
            runs = runs.sort_values("start_time", ascending=False)
            done = runs[runs["status"] == "FINISHED"].drop_duplicates("fingerprint")
            runs = pd.concat([done, runs[runs["status"] != "FINISHED"]])
        runs = expand_baselines(runs.reset_index(drop=True))
        return Experiment(experiment, uri, runs, chosen, "all", curve_keys, _in_scope(trials, runs))

    if scope == "latest":
        sweep = sweeps[0]
    else:
        matching = [s for s in sweeps if s.sweep_id == scope or s.run_id == scope]
        if not matching:
            raise ConfigError(
                "--sweep",
                scope,
                f"no sweep with this id in experiment '{experiment}'",
                f"Sweeps there (newest first): {', '.join(s.sweep_id for s in sweeps[:10])}",
            )
        sweep = matching[0]
    sweep.statuses = _statuses(client, sweep)
    ids = {st["run_id"] for st in sweep.statuses if st.get("run_id")}
    if not runs.empty:  # its own runs, and the earlier runs it resumed
        runs = runs[runs["sweep_id"].eq(sweep.sweep_id) | runs["run_id"].isin(ids)]
    runs = expand_baselines(runs.reset_index(drop=True))
    return Experiment(experiment, uri, runs, [sweep], sweep.sweep_id, curve_keys, _in_scope(trials, runs))


def load_runs(experiment: str, tracking_uri: str | None = None, *, scope: str = "latest") -> pd.DataFrame:
    """The runs of an MLflow experiment as a tidy DataFrame, one row per run (for notebooks and the report),
    plus one row per post-hoc baseline a CE run logged (``loss`` = ``ce_posthoc_la`` / ``ce_temperature``,
    ``baseline_of`` = the CE run's id; :data:`BASELINES`, :func:`mlflow_runs` drops them).

    Columns: ``run_id, run_name, status, sweep_id, fingerprint, realisation``, the swept axes ``data,
    model, loss, ratio, profile, regularization, strength, rebalance, seed``, every logged metric under its
    MLflow name (``test/balanced_accuracy``, ``val/ece``, ``train/fit_seconds`` ...; the epoch curves come
    from :func:`load_curves`), the class names, training and test counts, and every param as ``params.<key>``.
    A tuned sweep's runs also say ``variant`` (``default``, ``tuned``, or ``default tuned`` when the defaults
    were chosen; ``default`` for an untuned sweep's),
    ``cell``, ``knobs`` (a dict) and ``tuned_from`` (the chosen trial's run id); its trials are not runs here
    but ``load_experiment(...).trials``.

    ``scope``: ``"latest"`` (default: the newest sweep, including the runs it resumed from earlier sweeps),
    ``"all"`` (every run; a config run twice counts once, its newest FINISHED run), or a sweep id.

    >>> df = load_runs("imbalance")  # doctest: +SKIP
    >>> df[df.status == "FINISHED"].groupby(["model", "ratio", "loss"])["test/balanced_accuracy"].mean()
    """
    return load_experiment(experiment, tracking_uri, scope=scope).runs


def finished(runs: pd.DataFrame, metric_column: str) -> pd.DataFrame:
    """FINISHED runs that logged the metric (a model without probabilities has no ECE: left out, not 0)."""
    if runs.empty or metric_column not in runs:
        return runs.iloc[0:0]
    done = runs[(runs["status"] == "FINISHED") & runs[metric_column].notna()]
    return done[np.isfinite(done[metric_column].astype(float))]
