"""Local MLflow stores, touched in place where MLflow's client would cost a round of ORM work per call.

Read-only SQL on a SQLite store's tables (the report's loading, a sweep's resume check), a sweep's child runs
written into the five run tables (:class:`RunWriter`: two transactions a run where MLflow's client takes
four commits, ~4 ms instead of ~25-50) and plain file writes into a run's local artifact folder. Everything
else goes through MLflow's client; callers fall back to it whenever these helpers return None (not a plain
SQLite file, artifacts not local, tables not as this code knows them).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, when it is a plain existing file."""
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    path = Path(uri.removeprefix("sqlite:///"))
    return path if path.is_file() else None


def connect_read_only(path: Path):
    """A read-only sqlite3 connection (it can never change or lock out the store's writers for long)."""
    import sqlite3

    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def query(uri: str, sql: str, params: tuple = ()) -> list[tuple] | None:
    """The rows of one read-only query on a plain SQLite store; None when the store is not one or the query
    fails (tables not as this code knows them): the caller then asks MLflow's client."""
    import sqlite3

    path = sqlite_path(uri)
    if path is None:
        return None
    try:
        con = connect_read_only(path)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None


def local_artifact_dir(artifact_uri: str | None) -> Path | None:
    """The folder of a run's artifacts when its artifact URI is a local path (``file://`` or absolute)."""
    from urllib.parse import unquote, urlparse

    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and Path(artifact_uri).is_absolute():
        return Path(artifact_uri)
    return None


# The run tables as MLflow's SQLite schema has them (unchanged from MLflow 2.x to 3.17): RunWriter writes only
# when a store's tables have exactly these columns and no triggers, and leaves any other store to MLflow.
RUN_TABLES = {
    "runs": {
        "run_uuid",
        "name",
        "source_type",
        "source_name",
        "entry_point_name",
        "user_id",
        "status",
        "start_time",
        "end_time",
        "source_version",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
        "deleted_time",
    },
    "params": {"key", "value", "run_uuid"},
    "tags": {"key", "value", "run_uuid"},
    "metrics": {"key", "value", "timestamp", "run_uuid", "step", "is_nan"},
    "latest_metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"},
}
_MAX_FLOAT = 1.7976931348623157e308


class RunError(ValueError):
    """A write MLflow's store would refuse too (the experiment or run deleted, a param changed)."""


def _require_active(con, table: str, key: str, value, refusal: str) -> None:
    """Refuse, as MLflow's store does, a write to a run or experiment that is deleted or missing:
    ``refusal`` followed by its state."""
    row = con.execute(f"SELECT lifecycle_stage FROM {table} WHERE {key} = ?", (value,)).fetchone()
    if row is None or row[0] != "active":
        raise RunError(f"{refusal} ({'missing' if row is None else row[0]})")


class RunWriter:
    """Writes runs into a SQLite MLflow store's tables as MLflow's SQLAlchemy store does, one transaction per
    call: a run created with its tags and params, then its metrics, params, tags and final status at once.

    Values are stored as MLflow stores them (NaN as 0 with ``is_nan``, infinities as the largest float; the
    ``latest_metrics`` row per key is the greatest (step, timestamp, value); re-logging a param with another
    value is refused; a tag is overwritten). Validating keys and lengths is the caller's part (MLflow's
    validators). Each transaction takes the write lock up front (``BEGIN IMMEDIATE``) and waits up to
    ``timeout`` seconds for concurrent writers, as MLflow's own engine does."""

    def __init__(self, con) -> None:
        self._con = con

    @classmethod
    def open(cls, uri: str, timeout: float = 20.0) -> RunWriter | None:
        """A writer for a plain SQLite store whose run tables are as :data:`RUN_TABLES`, else None."""
        import sqlite3

        path = sqlite_path(uri)
        if path is None:
            return None
        try:
            con = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except sqlite3.Error:
            return None
        try:
            known = all(
                {row[1] for row in con.execute(f"PRAGMA table_info({table})")} == columns
                for table, columns in RUN_TABLES.items()
            )
            triggers = con.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (?, ?, ?, ?, ?)",
                tuple(RUN_TABLES),
            ).fetchone()[0]
            if known and not triggers:
                con.execute("PRAGMA foreign_keys = ON")
                con.execute("PRAGMA case_sensitive_like = true")
                return cls(con)
        except sqlite3.Error:
            pass
        con.close()
        return None

    @contextmanager
    def _transaction(self):
        self._con.execute("BEGIN IMMEDIATE")
        try:
            yield self._con
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def create_run(
        self,
        *,
        run_id: str,
        experiment_id: int,
        name: str,
        artifact_uri: str,
        user_id: str,
        start_time: int,
        tags: list[tuple[str, str]],
        params: list[tuple[str, str]],
    ) -> None:
        """A RUNNING run with its tags (``mlflow.runName`` added) and params, in one transaction."""
        with self._transaction() as con:
            refusal = f"experiment {experiment_id} must be 'active' to create a run in it"
            _require_active(con, "experiments", "experiment_id", experiment_id, refusal)
            con.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, "
                "deleted_time) "
                "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?, NULL)",
                (run_id, name, user_id, start_time, artifact_uri, experiment_id),
            )
            if not any(key == "mlflow.runName" for key, _ in tags):
                tags = [*tags, ("mlflow.runName", name)]
            self._tags(con, run_id, tags)
            self._params(con, run_id, params)

    def log(
        self,
        run_id: str,
        *,
        metrics: list[tuple[str, float, int, int]] = (),
        params: list[tuple[str, str]] = (),
        tags: list[tuple[str, str]] = (),
        status: str | None = None,
        end_time: int | None = None,
    ) -> None:
        """Metrics ``(key, value, timestamp, step)``, params, tags and, when given, the terminal status with
        its end time: all or nothing, in one transaction."""
        import math

        with self._transaction() as con:
            _require_active(con, "runs", "run_uuid", run_id, f"run {run_id} must be in the 'active' state")
            self._params(con, run_id, params)
            rows, latest = [], {}
            for key, value, timestamp, step in metrics:
                is_nan = math.isnan(value)
                stored = 0.0 if is_nan else max(-_MAX_FLOAT, min(_MAX_FLOAT, value))
                rows.append((key, stored, timestamp, run_id, step, int(is_nan)))
                if key not in latest or (step, timestamp, stored) > latest[key][1:4]:
                    latest[key] = (key, step, timestamp, stored, int(is_nan), run_id)
            con.executemany(
                "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            con.executemany(
                "INSERT INTO latest_metrics (key, step, timestamp, value, is_nan, run_uuid) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, run_uuid) DO UPDATE SET "
                "step = excluded.step, timestamp = excluded.timestamp, value = excluded.value, "
                "is_nan = excluded.is_nan WHERE (excluded.step, excluded.timestamp, excluded.value) > "
                "(latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)",
                list(latest.values()),
            )
            self._tags(con, run_id, tags)
            if status is not None:
                con.execute(
                    "UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", (status, end_time, run_id)
                )

    @staticmethod
    def _tags(con, run_id: str, tags) -> None:
        con.executemany(
            "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
            "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
            [(key, value, run_id) for key, value in tags],
        )

    @staticmethod
    def _params(con, run_id: str, params) -> None:
        if not params:
            return
        params = dict(params)
        marks = ", ".join("?" * len(params))
        old = dict(
            con.execute(
                f"SELECT key, value FROM params WHERE run_uuid = ? AND key IN ({marks})", (run_id, *params)
            ).fetchall()
        )
        changed = {k: (old[k], v) for k, v in params.items() if k in old and old[k] != v}
        if changed:
            raise RunError(f"changing param values is not allowed: run {run_id} has {changed} (old, new)")
        con.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
            [(k, v, run_id) for k, v in params.items() if k not in old],
        )
