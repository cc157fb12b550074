"""MLflow at the edge: the only module that writes to MLflow, through its public client.

A run is created at its start (its id and fingerprint exist at once, so concurrent sweeps can tell who
claimed a config); at its end one ``log_batch`` stores its metrics, curves, params and tags, one
``log_artifacts`` its files, and ``set_terminated`` marks it FINISHED only after all of them are stored. A
torch run, whose fit can take minutes, logs its params at its start too, so the MLflow UI shows them while it
trains; a scikit-learn run's come with its metrics (one call fewer, ~10 ms of a ~0.1 s run).

The calls are made by whichever process stores the run: the job's own, or, for a sweep's jobs run one
after another in the launching process, the MLflow helper process that stores each finished run while the next
job trains (:mod:`lossbench.writer`; the same calls, in the same order). Two ways of deferring them inside the
job's process were measured and dropped (2 cores, MLflow 3.17, SQLite): a writer thread overlapping the next
job's fit made a logreg sweep slower, 252 against 179 ms a job (the client's calls are Python work that
competes for the GIL), and MLflow's own asynchronous mode (``log_batch(synchronous=False)``) costs ~1 s a run,
as ``set_terminated`` waits for its worker's one-second poll.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from lossbench import __version__
from lossbench.artifacts import RELIABILITY_ARTIFACT, TRACEBACK_ARTIFACT, write_config, write_predictions  # noqa: F401
from lossbench.config import fingerprint, flatten, to_container
from lossbench.runtime import identity, is_gone
from lossbench.store import query

log = logging.getLogger("lossbench")

DEFAULT_DB = "mlflow.db"
TAG_FINGERPRINT = "lossbench.fingerprint"
TAG_VERSION = "lossbench.version"
TAG_COMMIT = "lossbench.git_commit"
TAG_FAILURE = "lossbench.failure_reason"
TAG_REALISATION = "lossbench.realisation"
TAG_PROBA = "lossbench.probability_metrics"
TAG_SWEEP_ID = "lossbench.sweep_id"
TAG_ROLE = "lossbench.role"  # sweep (a sweep's parent run), tuning (a cell's tuning parent), trial
# tuned sweeps (lossbench.tune): a final run's variant (default | tuned), the cell it belongs to, a trial's
# number and knob values, and the trial a tuned run's knobs came from
TAG_VARIANT = "lossbench.variant"
TAG_CELL = "lossbench.tune.cell"
TAG_TRIAL = "lossbench.tune.trial"
TAG_KNOBS = "lossbench.tune.knobs"
TAG_TUNED_FROM = "lossbench.tune.trial_run"
SWEEP_JOBS_ARTIFACT = "sweep_jobs.json"
IDENTITY_TAGS = ("lossbench.host", "lossbench.pid", "lossbench.process_start")

_MAX_PARAMS, _MAX_TAGS, _MAX_ENTITIES = 100, 100, 1000  # MLflow's limits per log_batch call


def tracking_uri(configured: str | None = None) -> str:
    """``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else SQLite ``mlflow.db`` in the cwd."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{Path.cwd() / DEFAULT_DB}"


@cache
def git_commit() -> str | None:
    """The commit of the lossbench checkout this code runs from, when it runs from one."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# the tracking stores MLflow's client opens (a database URI may name its driver: postgresql+psycopg2://)
_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
_STORE_HINT = (
    "Give sqlite:///path/to/mlflow.db, the http(s):// address of an mlflow server, or a database URI "
    "(postgresql://, mysql://, mssql://)."
)


def store_scheme(uri: str) -> str:
    """The store kind a tracking URI names: its scheme without a driver (``postgresql+psycopg2`` ->
    ``postgresql``), lower case; ``""`` for a bare path."""
    from urllib.parse import urlparse

    return urlparse(uri).scheme.split("+", 1)[0].lower()


def is_database(uri: str) -> bool:
    """Whether MLflow opens this tracking URI with its SQLAlchemy store (SQLite or another database)."""
    return store_scheme(uri) in _DATABASES


def check_store(
    uri: str, timeout: float = 10.0, *, key: str = "tracking.uri", must_exist: bool = False
) -> None:
    """Fail fast, naming the URI, when it is not a tracking store lossbench can write to or when the store
    cannot be reached (a server gets ``timeout`` seconds to answer its health check): before any training.
    ``must_exist``: a SQLite file must be there already (a report reads a store; it never creates one)."""
    from urllib.parse import urlparse

    from lossbench.errors import ConfigError

    parsed = urlparse(uri)
    scheme = store_scheme(uri)
    if scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise ConfigError(
                key,
                uri,
                f"the MLflow server cannot be reached ({reason})",
                "Start it (mlflow server ...), or point lossbench at another store (tracking.uri, the "
                "report's --tracking-uri, or MLFLOW_TRACKING_URI).",
            ) from e
    elif scheme == "sqlite":
        path = uri.split("://", 1)[1].removeprefix("/").split("?", 1)[0]
        if not path or path == ":memory:":
            raise ConfigError(
                key, uri, "an in-memory SQLite store keeps nothing after the process", _STORE_HINT
            )
        if not Path(path).parent.is_dir():
            raise ConfigError(key, uri, f"the folder {Path(path).parent} does not exist")
        if must_exist and not Path(path).is_file():
            raise ConfigError(
                key,
                uri,
                f"there is no MLflow store at {path}",
                "Run a sweep here first, or point --tracking-uri / MLFLOW_TRACKING_URI at the store.",
            )
    elif scheme in _DATABASES or scheme == "databricks":
        pass  # the client's own connection error is reported when the store is opened (Tracker)
    elif scheme in ("", "file") or len(scheme) == 1:  # a bare path (C:\\ on Windows) or file://
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true", "yes"):
            raise ConfigError(
                key,
                uri,
                "not a tracking store URI (MLflow reads a bare path as its file store, which it no longer "
                "opens unless MLFLOW_ALLOW_FILE_STORE=true)",
                _STORE_HINT,
            )
    else:
        raise ConfigError(
            key, uri, f"MLflow has no tracking store for the scheme {parsed.scheme!r}", _STORE_HINT
        )


def check_experiment_name(name: object, *, key: str = "tracking.experiment") -> str:
    """An MLflow experiment name: a non-empty string without surrounding blanks (folders use
    :func:`lossbench.paths.dirname` of it)."""
    from lossbench.errors import ConfigError

    if not isinstance(name, str) or not name.strip() or name != name.strip() or len(name) > 500:
        raise ConfigError(
            key, name, "must be a non-empty name without leading or trailing blanks, at most 500 characters"
        )
    return name


def store_error(uri: str, error: Exception, *, key: str = "tracking.uri"):
    """The one-line ConfigError for an error MLflow raised while opening or reading the store."""
    from lossbench.errors import ConfigError

    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ConfigError(key, uri, f"MLflow could not use this store ({type(error).__name__}: {first[:300]})")


def run_name(cfg: dict) -> str:
    if cfg["tracking"].get("run_name"):
        return str(cfg["tracking"]["run_name"])
    return f"{cfg['model']['name']}-{cfg['loss']['name']}-rho{cfg['imbalance']['ratio']:g}-seed{cfg['seed']}"


def _param_value(value) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


@contextmanager
def _first_open(uri: str):
    """Hold an exclusive lock on a SQLite store's folder while this process first opens it. MLflow creates
    or migrates the schema on first open, and two processes doing so at once race in its migrations (two
    sweeps started together in a fresh folder). Uncontended on a store that exists: the lock is held for the
    open and the experiment lookup only. Nothing is held for any other URI."""
    from lossbench.store import sqlite_file

    path = sqlite_file(uri)
    if path is None or not path.parent.is_dir():
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (MLflow's own behaviour)
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@dataclass(frozen=True)
class Pending:
    """What the tracker that created a run keeps for the run's end (:meth:`Tracker.take_pending`): the
    params to store with it (a fast model's), and where its files go (its artifact URI)."""

    params: list = field(default_factory=list)
    artifact_uri: str | None = None


@dataclass
class RunRef:
    """A run as the resume, claim and interruption checks see it."""

    run_id: str
    status: str
    start_time: int
    tags: dict[str, str] = field(default_factory=dict)


class Tracker:
    """One MLflow experiment in one store; creates runs and logs results in a few batched calls.

    A run's pending params (:meth:`start` of a fast model) are stored with its end (:meth:`finish`,
    :meth:`fail`)."""

    def __init__(self, uri: str, experiment: str) -> None:
        from mlflow.tracking import MlflowClient

        from lossbench.errors import ConfigError

        # mlflow installs its own handler on import; its and alembic's INFO lines (a store's schema creation
        # and migrations) are noise here. Set here, not in hydra.job_logging: that would reset every child
        # logger of a logger it names at each job's start
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)

        self.uri = uri
        check_experiment_name(experiment)
        try:
            with _first_open(uri):
                self.client = MlflowClient(tracking_uri=uri)
                found = self.client.get_experiment_by_name(experiment)
            if found is not None and found.lifecycle_stage != "active":
                raise ConfigError(
                    "tracking.experiment",
                    experiment,
                    f"this experiment is deleted in {uri} (MLflow keeps the name of a deleted experiment)",
                    f"Restore it (mlflow experiments restore --experiment-id {found.experiment_id}) or "
                    "choose another name.",
                )
            self.experiment_id = found.experiment_id if found else self._create_experiment(experiment)
        except ConfigError:
            raise
        except Exception as e:  # MLflow's errors about URIs, drivers, connections and names: one line
            raise store_error(uri, e) from e
        self.experiment = experiment
        self._pending: dict[str, list] = {}  # run id -> params to store with the run's end
        self._artifact_uris: dict[str, str] = {}  # run id -> its artifact URI (create_run's answer)

    def _create_experiment(self, name: str) -> str:
        """Create the experiment; when another process created it meanwhile, use that one."""
        from mlflow.exceptions import MlflowException

        try:
            # the experiment kind makes the MLflow UI open its model-training view rather than the GenAI one
            return self.client.create_experiment(
                name, tags={"mlflow.experimentKind": "custom_model_development"}
            )
        except MlflowException:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    # --- runs -------------------------------------------------------------------------------------------

    def start(self, cfg: dict, *, parent_run_id: str | None = None, extra_tags: dict | None = None) -> str:
        """Create a RUNNING run with the config's tags; its params now for a torch model, else with its end.
        Returns its id."""
        from mlflow.entities import Param

        cfg = to_container(cfg)
        tags = {
            TAG_FINGERPRINT: fingerprint(cfg),
            TAG_VERSION: __version__,
            "mlflow.source.name": "lossbench",
            "mlflow.source.type": "LOCAL",
            **({TAG_COMMIT: git_commit(), "mlflow.source.git.commit": git_commit()} if git_commit() else {}),
            **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {}),
            **identity(),
            **(extra_tags or {}),
        }
        info = self.client.create_run(self.experiment_id, run_name=run_name(cfg), tags=tags).info
        run_id = info.run_id
        self._artifact_uris[run_id] = info.artifact_uri
        flat = flatten({k: v for k, v in cfg.items() if k != "hydra"})
        if isinstance(cfg.get("data"), dict):
            from lossbench.data import dataset_label

            flat["data.label"] = dataset_label(cfg["data"])  # resolved: what the reports group by
        params = [Param(k, _param_value(v)) for k, v in flat.items()]
        if _slow_fit(cfg):
            self._log(run_id, params=params)
        else:
            self._pending[run_id] = params
        return run_id

    def finish(
        self, run_id: str, cfg: dict, result, done: Callable | None = None, *, pending: Pending | None = None
    ) -> None:
        """Log a RunResult (metrics, curves, class counts, artifacts) and mark the run FINISHED; then
        ``done(None)``, or ``done(error)`` when a write failed (the run then stays RUNNING, as after a
        crash, with the values that were stored). ``pending``: what the tracker that started the run kept
        for its end, when that was another one (:meth:`take_pending`; :mod:`lossbench.writer`)."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in result.metrics.items()]
        metrics += [
            Metric(f"train/{k}", float(result.info[k]), now, 0)
            for k in ("fit_seconds", "epochs_run", "best_epoch", "n_train", "n_fit", "imbalance_ratio")
        ]
        for name, values in result.curves.items():
            metrics += [
                Metric(f"curve/{name}", float(v), now, step) for step, v in enumerate(values, start=1)
            ]
        if pending is None:
            pending = self.take_pending(run_id)
        params = list(pending.params)
        params += [Param(f"class_counts.{k}", json.dumps(v)) for k, v in result.class_counts.items()]
        params.append(Param("data.class_names", json.dumps(result.class_names)))
        tags = [
            RunTag(TAG_REALISATION, result.realisation),
            RunTag("lossbench.device", str(result.info["device"])),
        ]
        if not result.info.get("has_proba", True):
            from lossbench.metrics import PROBA_METRICS

            note = f"not available: the model gives no probabilities ({', '.join(PROBA_METRICS)} not logged)"
            tags.append(RunTag(TAG_PROBA, note))

        def write() -> None:
            self._log(run_id, metrics=metrics, params=params, tags=tags)
            self._log_files(
                run_id,
                lambda folder: (write_config(folder, cfg), write_predictions(folder, result)),
                artifact_uri=pending.artifact_uri,
            )
            self.client.set_terminated(run_id, "FINISHED")

        _reporting(write, done)()

    def finish_trial(self, run_id: str, metrics: dict[str, float], fit, value: float) -> None:
        """A tuning trial's values (val metrics, the objective ``tune/value``, its training length) and its
        end (FINISHED)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        values.append(Metric("tune/value", float(value), now, 0))
        length = {"fit_seconds": fit.seconds, "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch}
        values += [Metric(f"train/{k}", float(v), now, 0) for k, v in length.items()]
        self._log(run_id, metrics=values, params=self.take_pending(run_id).params)
        self.client.set_terminated(run_id, "FINISHED")

    def log_params(self, run_id: str, params: dict[str, object]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def trial_value(self, run_id: str | None) -> float | None:
        """A trial run's objective ``tune/value`` when the run is FINISHED; else None."""
        if not run_id:
            return None
        try:
            run = self.client.get_run(run_id)
        except Exception:  # deleted, or never stored
            return None
        value = run.data.metrics.get("tune/value")
        return float(value) if run.info.status == "FINISHED" and value is not None else None

    def finish_tuning(self, run_id: str, chosen, *, complete: bool) -> None:
        """Close a cell's tuning parent with its choice (FINISHED once the study has all its trials)."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric("tune/trials", float(chosen.trials), now, 0)]
        tags = [RunTag(TAG_KNOBS, json.dumps(chosen.values))]
        if chosen.value is not None:
            metrics.append(Metric("tune/best_value", chosen.value, now, 0))
            tags += [RunTag("lossbench.tune.best_trial", str(chosen.trial))]
        if chosen.trial_run:
            tags.append(RunTag(TAG_TUNED_FROM, chosen.trial_run))
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        self.client.set_terminated(run_id, "FINISHED" if complete else "FAILED")

    def take_pending(self, run_id: str) -> Pending:
        """What :meth:`start` kept for the run's end, handed to whoever stores it."""
        return Pending(self._pending.pop(run_id, []), self._artifact_uris.pop(run_id, None))

    def discard(self, run_id: str) -> None:
        """Delete a run this tracker started (a claim given up), with what it still held to store."""
        self.take_pending(run_id)
        self.client.delete_run(run_id)

    def fail(self, run_id: str, cfg: dict, error: BaseException, done: Callable | None = None) -> None:
        """Mark a run FAILED (KILLED for Ctrl-C) with the reason as a tag and the traceback as an artifact."""
        from mlflow.entities import RunTag

        reason = failure_reason(error)
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"

        pending = self.take_pending(run_id)

        def write() -> None:
            self._log(run_id, params=pending.params, tags=[RunTag(TAG_FAILURE, reason)])
            self._log_files(
                run_id,
                lambda folder: (write_config(folder, cfg), (folder / TRACEBACK_ARTIFACT).write_text(tb)),
                artifact_uri=pending.artifact_uri,
            )
            self.client.set_terminated(run_id, status)

        _reporting(write, done)()

    def _log(self, run_id: str, *, metrics=(), params=(), tags=()) -> None:
        """Metrics, params and tags (MLflow entities) in as few log_batch calls as MLflow's limits allow."""
        metrics, params, tags = list(metrics), list(params), list(tags)
        while params or tags or metrics:
            p, params = params[:_MAX_PARAMS], params[_MAX_PARAMS:]
            t, tags = tags[:_MAX_TAGS], tags[_MAX_TAGS:]
            room = _MAX_ENTITIES - len(p) - len(t)
            m, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(run_id, metrics=m, params=p, tags=t)

    def _log_files(
        self, run_id: str, write: Callable[[Path], object], *, artifact_uri: str | None = None
    ) -> None:
        """The files ``write(folder)`` writes into a temporary folder, uploaded in one log_artifacts call:
        the client's, which first reads the run back to learn its artifact URI (~6 ms here), or, given that
        URI (``create_run`` answered it), straight to the artifact repository MLflow's registry gives."""
        with tempfile.TemporaryDirectory(prefix="lossbench-artifacts-") as tmp:
            write(Path(tmp))
            if artifact_uri and not artifact_uri.startswith("dbfs:"):  # Databricks: the client adds a profile
                from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

                get_artifact_repository(artifact_uri, tracking_uri=self.uri).log_artifacts(tmp)
            else:
                self.client.log_artifacts(run_id, tmp)

    # --- sweeps' parent runs ------------------------------------------------------------------------------

    def start_parent(self, *, name: str, tags: dict[str, str], params: dict[str, object]) -> str:
        """The sweep's parent run (RUNNING until :meth:`finish_parent`)."""
        from mlflow.entities import Param

        all_tags = {TAG_VERSION: __version__, "mlflow.source.name": "lossbench", **identity(), **tags}
        if git_commit():
            all_tags[TAG_COMMIT] = git_commit()
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags).info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run_id

    def finish_parent(
        self,
        run_id: str,
        counts: dict[str, int],
        statuses: list[dict],
        *,
        missing: int,
        status: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record the run accounting on the parent and close it: FAILED when any job failed or vanished
        (``status`` and ``reason`` override, e.g. KILLED on Ctrl-C)."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(f"sweep/{k}", float(v), now, 0) for k, v in counts.items()]
        metrics.append(Metric("sweep/missing", float(missing), now, 0))
        tags = [RunTag(TAG_FAILURE, reason)] if reason else []
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        self.client.log_text(run_id, json.dumps(statuses, indent=1), SWEEP_JOBS_ARTIFACT)
        final = status or ("FAILED" if counts.get("failed") or missing else "FINISHED")
        self.client.set_terminated(run_id, final)

    def log_report(self, run_id: str, folder: Path) -> None:
        """Attach a report's own files (those its build wrote, :func:`lossbench.paths.report_files`) to a run,
        under ``report/``; nothing else in its folder."""
        import shutil

        from lossbench.paths import report_files

        def copy(tmp: Path) -> None:
            for name in report_files(folder):
                target = tmp / "report" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / name, target)

        self._log_files(run_id, copy)

    # --- what the store already holds ---------------------------------------------------------------------

    def runs_with_fingerprint(self, fingerprint_: str) -> list[RunRef]:
        """The active RUNNING and FINISHED runs of this experiment with this config fingerprint, oldest first,
        with their identity and sweep tags. Read-only SQL on a SQLite store of a tested schema (~0.5 ms),
        else MLflow's search_runs (~5 ms)."""
        refs = self._fingerprint_rows(fingerprint_)
        if refs is None:
            runs = self.client.search_runs(
                [self.experiment_id], filter_string=f"tags.`{TAG_FINGERPRINT}` = '{fingerprint_}'"
            )
            refs = [
                RunRef(r.info.run_id, r.info.status, r.info.start_time, dict(r.data.tags))
                for r in runs
                if r.info.status in ("RUNNING", "FINISHED")
            ]
        return sorted(refs, key=lambda r: (r.start_time, r.run_id))

    def _fingerprint_rows(self, fingerprint_: str) -> list[RunRef] | None:
        if not self.experiment_id.isdigit():
            return None
        rows = query(
            self.uri,
            "SELECT r.run_uuid, r.status, r.start_time, k.key, k.value FROM runs r "
            "JOIN tags t ON t.run_uuid = r.run_uuid LEFT JOIN tags k ON k.run_uuid = r.run_uuid "
            f"AND k.key IN ({', '.join('?' * (len(IDENTITY_TAGS) + 1))}) "
            "WHERE r.experiment_id = ? AND r.status IN ('RUNNING', 'FINISHED') "
            "AND r.lifecycle_stage = 'active' AND t.key = ? AND t.value = ?",
            (*IDENTITY_TAGS, TAG_SWEEP_ID, int(self.experiment_id), TAG_FINGERPRINT, fingerprint_),
        )
        if rows is None:
            return None
        refs: dict[str, RunRef] = {}
        for run_id, status, start, key, value in rows:
            ref = refs.setdefault(run_id, RunRef(run_id, status, start or 0))
            if key is not None:
                ref.tags[key] = value
        return list(refs.values())

    def finished_run(self, fingerprint_: str) -> str | None:
        """The id of the newest FINISHED run of this experiment with the given config fingerprint, if any."""
        done = [r for r in self.runs_with_fingerprint(fingerprint_) if r.status == "FINISHED"]
        return done[-1].run_id if done else None

    def settle_interrupted(
        self, fingerprint_: str | None = None, refs: list[RunRef] | None = None
    ) -> list[tuple[str, str]]:
        """Mark KILLED, with the reason as a tag, the RUNNING runs of this config (``fingerprint_``; ``refs``:
        its runs as :meth:`runs_with_fingerprint` just gave them), or the RUNNING sweep parents, tuning
        parents and trials (None), whose process has certainly ended (:func:`lossbench.runtime.is_gone`).
        Returns (run id, reason) for each."""
        from mlflow.entities import RunTag

        if fingerprint_ is None:
            candidates = self._running_parents()
        else:
            found = self.runs_with_fingerprint(fingerprint_) if refs is None else refs
            candidates = [r for r in found if r.status == "RUNNING"]
        settled = []
        for ref in candidates:
            if not is_gone(ref.tags):
                continue
            reason = (
                f"interrupted: process {ref.tags.get('lossbench.pid')} on {ref.tags.get('lossbench.host')} "
                f"ended without closing the run (found at {time.strftime('%Y-%m-%d %H:%M:%S')})"
            )
            self.client.log_batch(ref.run_id, tags=[RunTag(TAG_FAILURE, reason)])
            self.client.set_terminated(ref.run_id, "KILLED")
            settled.append((ref.run_id, reason))
        return settled

    def _running_parents(self) -> list[RunRef]:
        """RUNNING sweep parents, and a tuned sweep's tuning parents and trials (they have no fingerprint
        of a job that would settle them)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_ROLE}` != '' and attributes.status = 'RUNNING'",
        )
        return [
            RunRef(r.info.run_id, r.info.status, r.info.start_time, dict(r.data.tags))
            for r in runs
            if r.data.tags.get(TAG_ROLE) in ("sweep", "tuning", "trial")
        ]


def _slow_fit(cfg: dict) -> bool:
    """Whether a run's fit may take long enough to show its params while it trains: torch models."""
    from lossbench.models import MODELS

    model = cfg.get("model")
    spec = MODELS.get(model.get("name")) if isinstance(model, dict) else None
    return spec is None or spec.backend == "torch"


def failure_reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:5000]


def _reporting(write: Callable[[], None], done: Callable | None) -> Callable[[], None]:
    """``write`` followed by ``done(None)``, or ``done(error)`` (and the error raised again) when it fails."""

    def call() -> None:
        try:
            write()
        except BaseException as e:
            if done is not None:
                done(e)
            raise
        if done is not None:
            done(None)

    return call
