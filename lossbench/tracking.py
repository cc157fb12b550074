"""MLflow at the edge: the only module that imports mlflow. Everything a run logs, in batched calls; on a
local SQLite store, a run's records go straight into MLflow's run tables, one transaction per call
(:class:`lossbench.store.RunWriter`, checked by MLflow's own validators)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import traceback
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from lossbench import __version__
from lossbench.config import fingerprint, flatten, to_container, to_yaml
from lossbench.store import local_artifact_dir, query

DEFAULT_DB = "mlflow.db"
TAG_FINGERPRINT = "lossbench.fingerprint"
TAG_VERSION = "lossbench.version"
TAG_COMMIT = "lossbench.git_commit"
TAG_FAILURE = "lossbench.failure_reason"
TAG_REALISATION = "lossbench.realisation"
TAG_PROBA = "lossbench.probability_metrics"
TAG_SWEEP_ID = "lossbench.sweep_id"
TAG_ROLE = "lossbench.role"
RELIABILITY_ARTIFACT = "reliability_test.json"
SWEEP_JOBS_ARTIFACT = "sweep_jobs.json"

_MAX_PARAMS, _MAX_METRICS, _MAX_ENTITIES = 100, 1000, 1000  # MLflow's limits per log_batch call


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


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast, naming the URI, when the tracking store cannot be reached (before any training)."""
    from urllib.parse import urlparse

    from lossbench.errors import ConfigError

    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise ConfigError(
                "tracking.uri",
                uri,
                f"the MLflow server cannot be reached ({reason})",
                "Start it (mlflow server ...) or point tracking.uri / MLFLOW_TRACKING_URI elsewhere.",
            ) from e
    elif parsed.scheme == "sqlite":
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.parent.is_dir():
            raise ConfigError("tracking.uri", uri, f"the folder {path.parent} does not exist")


def run_name(cfg: dict) -> str:
    if cfg["tracking"].get("run_name"):
        return str(cfg["tracking"]["run_name"])
    return f"{cfg['model']['name']}-{cfg['loss']['name']}-rho{cfg['imbalance']['ratio']:g}-seed{cfg['seed']}"


def _param_value(value) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


class Tracker:
    """One MLflow experiment in one store; creates runs and logs results in a few batched calls."""

    def __init__(self, uri: str, experiment: str) -> None:
        import logging

        from mlflow.tracking import MlflowClient

        # mlflow installs its own handler on import; its and alembic's INFO lines (a store's schema creation
        # and migrations) are noise here. Set here, not in hydra.job_logging: that would reset every child
        # logger of a logger it names at each job's start
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        # the experiment kind makes the MLflow UI open its model-training view rather than the GenAI one
        self.experiment_id = (
            found.experiment_id
            if found
            else self.client.create_experiment(
                experiment, tags={"mlflow.experimentKind": "custom_model_development"}
            )
        )
        self.experiment = experiment
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact URI, for the runs this tracker started
        # runs go straight into a local SQLite store's tables when they are as this code knows them (one
        # transaction where the client takes four; store.RunWriter), else through the client
        self._writer = _run_writer(uri)
        if self._writer is not None:
            self._artifact_location = (
                found or self.client.get_experiment(self.experiment_id)
            ).artifact_location

    def start(self, cfg: dict, *, parent_run_id: str | None = None, extra_tags: dict | None = None) -> str:
        """Create a RUNNING run with the config's params and tags; returns its id."""
        from mlflow.entities import Param

        cfg = to_container(cfg)
        tags = {
            TAG_FINGERPRINT: fingerprint(cfg),
            TAG_VERSION: __version__,
            "mlflow.source.name": "lossbench",
            "mlflow.source.type": "LOCAL",
            **({TAG_COMMIT: git_commit(), "mlflow.source.git.commit": git_commit()} if git_commit() else {}),
            **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {}),
            **(extra_tags or {}),
        }
        params = [
            Param(k, _param_value(v))
            for k, v in flatten({k: v for k, v in cfg.items() if k != "hydra"}).items()
        ]
        if self._writer is not None:
            run_id = self._create_run_in_place(run_name(cfg), tags, params)
        else:
            run = self.client.create_run(self.experiment_id, run_name=run_name(cfg), tags=tags)
            run_id = run.info.run_id
            self._artifact_uris[run_id] = run.info.artifact_uri
            for i in range(0, len(params), _MAX_PARAMS):
                self.client.log_batch(run_id, params=params[i : i + _MAX_PARAMS])
        with self._artifacts(run_id) as folder:
            (folder / "config.yaml").write_text(_yaml(cfg))
        return run_id

    def start_parent(self, *, name: str, tags: dict[str, str], params: dict[str, object]) -> str:
        """The sweep's parent run (RUNNING until :meth:`finish_parent`)."""
        from mlflow.entities import Param

        all_tags = {TAG_VERSION: __version__, "mlflow.source.name": "lossbench", **tags}
        if git_commit():
            all_tags[TAG_COMMIT] = git_commit()
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    def finish_parent(
        self, run_id: str, counts: dict[str, int], statuses: list[dict], *, missing: int
    ) -> None:
        """Record the run accounting on the parent and close it: FAILED when any job failed or vanished."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"sweep/{k}", float(v), now, 0) for k, v in counts.items()]
        metrics.append(Metric("sweep/missing", float(missing), now, 0))
        self.client.log_batch(run_id, metrics=metrics)
        self.client.log_text(run_id, json.dumps(statuses, indent=1), SWEEP_JOBS_ARTIFACT)
        self.client.set_terminated(run_id, "FAILED" if counts.get("failed") or missing else "FINISHED")

    def finished_run(self, fingerprint_: str) -> str | None:
        """The id of a FINISHED run of this experiment with the given config fingerprint, if any (the newest).
        Read straight from a SQLite store (~0.3 ms; search_runs takes ~5 ms), else through search_runs."""
        if self.experiment_id.isdigit():
            rows = query(
                self.uri,
                "SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "WHERE r.experiment_id = ? AND r.status = 'FINISHED' "
                "AND r.lifecycle_stage = 'active' AND t.key = ? AND t.value = ? "
                "ORDER BY r.start_time DESC, r.run_uuid LIMIT 1",
                (int(self.experiment_id), TAG_FINGERPRINT, fingerprint_),
            )
            if rows is not None:
                return rows[0][0] if rows else None
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_FINGERPRINT}` = '{fingerprint_}' and attributes.status = 'FINISHED'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    @contextmanager
    def _artifacts(self, run_id: str):
        """A folder to write a run's artifact files into: its artifact folder itself when that is local (no
        MLflow round trip per file), else a temporary folder uploaded with log_artifacts on exit."""
        local = local_artifact_dir(self._artifact_uris.get(run_id))
        if local is not None:
            local.mkdir(parents=True, exist_ok=True)
            yield local
            return
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
            self.client.log_artifacts(run_id, tmp)

    def finish(self, run_id: str, result) -> None:
        """Log a RunResult (metrics, curves, class counts, artifacts) and mark the run FINISHED."""
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
        params = [Param(f"class_counts.{k}", json.dumps(v)) for k, v in result.class_counts.items()]
        params.append(Param("data.class_names", json.dumps(result.class_names)))
        tags = [
            RunTag(TAG_REALISATION, result.realisation),
            RunTag("lossbench.device", str(result.info["device"])),
        ]
        if not result.info.get("has_proba", True):
            from lossbench.metrics import PROBA_METRICS

            note = f"not available: the model gives no probabilities ({', '.join(PROBA_METRICS)} not logged)"
            tags.append(RunTag(TAG_PROBA, note))
        try:
            self._log_prediction_artifacts(run_id, result)
        except BaseException:  # the numbers are kept; the run stays RUNNING, as after a crash
            self._log(run_id, metrics=metrics, params=params, tags=tags)
            raise
        self._log(run_id, metrics=metrics, params=params, tags=tags, status="FINISHED")
        self._artifact_uris.pop(run_id, None)

    def fail(self, run_id: str, error: BaseException) -> None:
        """Mark a run FAILED with the reason as a tag and the traceback as an artifact."""
        from mlflow.entities import RunTag

        reason = f"{type(error).__name__}: {error}"[:5000]
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        with self._artifacts(run_id) as folder:
            (folder / "traceback.txt").write_text(tb)
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        self._log(run_id, tags=[RunTag(TAG_FAILURE, reason)], status=status)
        self._artifact_uris.pop(run_id, None)

    def _create_run_in_place(self, name: str, tags: dict[str, str], params: list) -> str:
        """create_run + log_batch(params) as one transaction in the store's tables: what MLflow's SQLAlchemy
        store writes for them, validated by MLflow's own validators."""
        import uuid

        from mlflow.entities import RunTag
        from mlflow.utils.uri import append_to_uri_path

        _, params, tag_list = _validated([], params, [RunTag(k, v) for k, v in tags.items()])
        run_id = uuid.uuid4().hex
        artifact_uri = append_to_uri_path(self._artifact_location, run_id, "artifacts")
        self._writer.create_run(
            run_id=run_id,
            experiment_id=int(self.experiment_id),
            name=name,
            artifact_uri=artifact_uri,
            user_id=tags.get("mlflow.user", "unknown"),  # as MlflowClient.create_run takes it
            start_time=int(time.time() * 1000),
            tags=[(t.key, t.value) for t in tag_list],
            params=[(p.key, p.value) for p in params],
        )
        self._artifact_uris[run_id] = artifact_uri
        return run_id

    def _log(self, run_id: str, *, metrics=(), params=(), tags=(), status: str | None = None) -> None:
        """Metrics, params and tags (MLflow entities), then the terminal status when given: one transaction in
        a local SQLite store's tables, else the client's log_batch calls and set_terminated."""
        if self._writer is not None:
            metrics, params, tags = _validated(metrics, params, tags)
            self._writer.log(
                run_id,
                metrics=[(m.key, float(m.value), int(m.timestamp), int(m.step)) for m in metrics],
                params=[(p.key, p.value) for p in params],
                tags=[(t.key, t.value) for t in tags],
                status=status,
                end_time=int(time.time() * 1000) if status else None,
            )
            return
        # one SQLite transaction for params, tags and as many metrics as MLflow takes in one call (each call
        # is a commit: ~25 ms under concurrent writers)
        metrics, params, tags = list(metrics), list(params), list(tags)
        if metrics or params or tags:
            first = _MAX_ENTITIES - len(params) - len(tags)
            self.client.log_batch(run_id, metrics=metrics[:first], params=params, tags=tags)
            for i in range(first, len(metrics), _MAX_METRICS):
                self.client.log_batch(run_id, metrics=metrics[i : i + _MAX_METRICS])
        if status is not None:
            self.client.set_terminated(run_id, status)

    def _log_prediction_artifacts(self, run_id: str, result) -> None:
        if result.y_test is None:
            return
        from lossbench.metrics import confusion, per_class_table, reliability_bins
        from lossbench.plots import confusion_matrix_figure

        C = result.num_classes
        with self._artifacts(run_id) as folder:
            table = per_class_table(
                result.y_test,
                result.y_pred,
                num_classes=C,
                class_names=result.class_names,
                train_counts=result.class_counts["train"],
            )
            table.to_csv(folder / "per_class_test.csv", index=False)
            if result.proba_test is not None:  # pooled across seeds into reliability diagrams by the report
                bins = reliability_bins(result.y_test, result.proba_test)
                (folder / RELIABILITY_ARTIFACT).write_text(json.dumps(bins))
            confusion_matrix_figure(
                confusion(result.y_test, result.y_pred, C),
                result.class_names,
                folder / "confusion_matrix_test.png",
                title="Test confusion matrix (row-normalised recall)",
            )


def _validated(metrics, params, tags) -> tuple[list, list, list]:
    """Metrics, params and tags as MLflow's store checks a log_batch (keys, lengths; long values cut)."""
    from mlflow.utils.validation import _validate_batch_log_data, _validate_param_keys_unique

    metrics, params, tags = _validate_batch_log_data(list(metrics), list(params), list(tags))
    _validate_param_keys_unique(params)
    return metrics, params, tags


def _run_writer(uri: str):
    """A :class:`lossbench.store.RunWriter` for a local SQLite store this MLflow's validators can check for,
    else None (the client then writes)."""
    from lossbench.store import RunWriter

    try:
        from mlflow.utils.uri import append_to_uri_path  # noqa: F401
        from mlflow.utils.validation import _validate_batch_log_data, _validate_param_keys_unique  # noqa: F401
    except ImportError:  # a future MLflow without them: its client does the writing
        return None
    return RunWriter.open(uri)


def _yaml(cfg: dict) -> str:
    """The run's config without its ``hydra`` key, as ``OmegaConf.to_yaml`` writes it."""
    return to_yaml({k: v for k, v in cfg.items() if k != "hydra"})
