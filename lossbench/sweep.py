"""Sweeps: one MLflow parent run per Hydra multirun, nested children, resume, N/A skips and a summary.

The launching process (a Hydra callback) creates the store, the experiment and the parent run once, before
any job starts: parallel jobs never race to create a fresh SQLite schema. It writes ``lossbench_sweep.json``
into the sweep folder; each job (in this process or a worker) reads it, records one status file in its own
folder, and never raises, so one failing config cannot stop the others. ``on_multirun_end`` counts the status
files, closes the parent run, prints the summary and exits non-zero when a job failed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

from hydra.experimental.callback import Callback

log = logging.getLogger("lossbench")

SWEEP_FILE = "lossbench_sweep.json"
STATUS_FILE = "lossbench_status.json"
STATUSES = ("finished", "resumed", "skipped", "failed")


def expand_jobs(config) -> list[list[str]]:
    """The override list of every job of the sweep, exactly as Hydra's basic sweeper expands it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
    batches = BasicSweeper.split_arguments(overrides, None)
    return [job for batch in batches for job in batch]


def read_sweep(sweep_dir: str | Path) -> dict | None:
    path = Path(sweep_dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def job_description(c: dict) -> dict:
    """What a job computes, in the report's terms (kept in its status, so N/A jobs show in the report too)."""
    reg = c["regularization"]
    return {
        "data": c["data"]["name"],
        "model": c["model"]["name"],
        "loss": c["loss"]["name"],
        "ratio": float(c["imbalance"]["ratio"]),
        "profile": c["imbalance"]["profile"],
        "regularization": reg["name"],
        "strength": float(reg.get("strength", 0.0) or 0.0),
        "rebalance": c["rebalance"]["name"],
        "seed": int(c["seed"]),
    }


def write_status(job_dir: str | Path, status: str, **details) -> None:
    Path(job_dir).mkdir(parents=True, exist_ok=True)
    (Path(job_dir) / STATUS_FILE).write_text(json.dumps({"status": status, **details}))


def collect_statuses(sweep_dir: str | Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(sweep_dir).glob(f"*/{STATUS_FILE}"))]


def summary_line(counts: dict[str, int]) -> str:
    return (
        f"{counts['finished']} finished, {counts['resumed']} resumed, "
        f"{counts['skipped']} skipped (N/A), {counts['failed']} failed"
    )


def seed_groups(jobs: list[list[str]]) -> dict[str, list[list[int]]]:
    """Jobs whose overrides differ only in ``seed=``: {leader job number: [[job number, seed], ...]}, the
    leader being the group's first job. Jobs alone in their group are left out."""
    groups: dict[tuple[str, ...], list[list[int]]] = {}
    for num, overrides in enumerate(jobs):
        seeds = [o for o in overrides if o.split("=", 1)[0] == "seed"]
        if len(seeds) != 1:
            continue
        rest = tuple(sorted(o for o in overrides if o != seeds[0]))
        groups.setdefault(rest, []).append([num, int(seeds[0].split("=", 1)[1])])
    return {str(group[0][0]): group for group in groups.values() if len(group) > 1}


def _vectorise_seeds(config) -> bool:
    """``vectorise_seeds``: true, false, or auto (= when this machine has CUDA). Only with job folders named
    by job number (the leader writes its siblings' status files) and no interpolation of ``seed`` elsewhere
    (a sibling's config is the leader's with ``seed`` replaced)."""
    from omegaconf import OmegaConf

    mode = config.get("vectorise_seeds", "auto")
    if mode == "auto":
        import torch

        mode = torch.cuda.is_available()
    if mode is not True:
        return False
    subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")
    body = OmegaConf.to_yaml({k: v for k, v in config.items() if k != "hydra"}, resolve=False)
    return subdir == "${hydra.job.num}" and "${seed}" not in body


def launcher_advice(config, psutil_installed: bool | None = None) -> str | None:
    """What to tell the user about their launcher before the sweep starts, if anything."""
    target = str(config.hydra.launcher.get("_target_", ""))
    if psutil_installed is None:
        import importlib.util

        psutil_installed = importlib.util.find_spec("psutil") is not None
    if "hydra_joblib_launcher" in target and not psutil_installed:
        return (
            "psutil is not installed: joblib's workers will run a full garbage collection after every job "
            "(~0.3 s each with torch and MLflow loaded): `pip install psutil` (in lossbench's `parallel` "
            "extra)"
        )
    return None


def _callback_in_worker() -> SweepCallback:
    """Unpickles a SweepCallback: in a launcher's worker process (joblib's loky workers, submitit's jobs) this
    is the first lossbench code to run, before the worker composes its job's config, so it installs
    :mod:`lossbench.compose` there too (else every job is composed Hydra's way: ~0.25 s each), and has the
    worker's exit skip the garbage collector's last walk (``cli.skip_exit_gc``: the launching process waits
    for its workers to exit)."""
    from lossbench.cli import skip_exit_gc
    from lossbench.compose import install

    install()
    skip_exit_gc()
    return SweepCallback()


class SweepCallback(Callback):
    """Registered in conf/config.yaml under hydra.callbacks; active for multiruns only."""

    def __reduce__(self):  # the launchers that run jobs in other processes pickle it with the Hydra context
        return _callback_in_worker, ()

    def on_multirun_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf

        from lossbench.errors import ConfigError
        from lossbench.tracking import TAG_ROLE, TAG_SWEEP_ID, Tracker, check_reachable, tracking_uri

        uri = tracking_uri(config.tracking.uri)
        try:
            check_reachable(uri)
        except ConfigError as e:
            print(f"lossbench: error: {e}", file=sys.stderr)
            sys.exit(2)
        report = config.get("report") or {}
        if report.get("enabled", True):
            from lossbench.report import check_metric

            try:  # a bad report setting must not surface only after hours of training
                check_metric(_report_metric(report), key="report.metric")
            except ConfigError as e:
                print(f"lossbench: error: {e}", file=sys.stderr)
                sys.exit(2)
        advice = launcher_advice(config)
        if advice:
            log.warning(advice)
        experiment = str(config.tracking.experiment)
        jobs = expand_jobs(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        sweep_id = uuid.uuid4().hex[:12]
        tracker = Tracker(uri, experiment)
        overrides = list(config.hydra.overrides.task)
        params = config.hydra.sweeper.get("params")  # None for a plain `-m a=1,2` sweep from the command line
        swept = OmegaConf.to_container(params) if params else {}
        parent = tracker.start_parent(
            name=f"sweep-{experiment}-{time.strftime('%Y%m%d-%H%M%S')}",
            tags={
                TAG_SWEEP_ID: sweep_id,
                "lossbench.sweep_dir": str(sweep_dir.resolve()),
                TAG_ROLE: "sweep",
            },
            params={
                "sweep.jobs": len(jobs),
                "sweep.params": json.dumps(swept),
                "sweep.overrides": json.dumps(overrides),
            },
        )
        groups = seed_groups(jobs) if _vectorise_seeds(config) else {}
        info = {
            "parent_run_id": parent,
            "uri": uri,
            "experiment": experiment,
            "total": len(jobs),
            "id": sweep_id,
            "seed_groups": groups,  # leader job number -> [[job number, seed], ...]
            "seed_leaders": {str(num): int(lead) for lead, group in groups.items() for num, _ in group},
        }
        if groups:
            log.info("%d groups of jobs that differ only by seed train as vectorised ensembles", len(groups))
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info))
        log.info(
            "sweep of %d jobs into MLflow experiment '%s' (parent run %s) at %s",
            len(jobs),
            experiment,
            parent,
            uri,
        )

    def on_multirun_end(self, config, **kwargs) -> None:
        from lossbench.tracking import Tracker

        sweep_dir = Path(config.hydra.sweep.dir)
        info = read_sweep(sweep_dir)
        if info is None:
            return
        statuses = collect_statuses(sweep_dir)
        counts = {s: sum(1 for st in statuses if st["status"] == s) for s in STATUSES}
        missing = info["total"] - len(statuses)
        tracker = Tracker(info["uri"], info["experiment"])
        tracker.finish_parent(info["parent_run_id"], counts, statuses, missing=missing)
        line = summary_line(counts) + (f", {missing} did not report" if missing else "")
        log.info("sweep done: %s", line)
        log.info(
            "MLflow: experiment '%s' at %s (browse: mlflow ui); job folders: %s",
            info["experiment"],
            info["uri"],
            sweep_dir,
        )
        print(f"lossbench: {line}", file=sys.stderr)
        reported = _report(config, info, tracker)
        if counts["failed"] or missing or not reported:
            sys.exit(1)


def _report_metric(report) -> str:
    return report.get("metric") or "balanced_accuracy"


def _report(config, info: dict, tracker) -> bool:
    """Build the sweep's comparison report and attach it to the parent run. False when it failed (the runs
    are recorded all the same, and the message says how to rebuild it)."""
    report = config.get("report") or {}
    if not report.get("enabled", True):
        return True
    experiment = info["experiment"]
    out = Path(report.get("out") or Path("reports") / experiment)
    try:
        from lossbench.report import build_report

        index = build_report(
            experiment,
            tracking_uri=info["uri"],
            out=out,
            metric=_report_metric(report),
            sweep=info["id"],
        )
        tracker.client.log_artifacts(info["parent_run_id"], str(out), artifact_path="report")
    except Exception as e:
        log.error(
            "the report could not be built (%s: %s); the runs are recorded, rebuild it with: "
            "python -m lossbench.report --experiment %s",
            type(e).__name__,
            e,
            experiment,
        )
        return False
    log.info("report: %s (also attached to the sweep's parent run under report/)", index)
    print(f"lossbench: report written to {index}", file=sys.stderr)
    return True


@dataclass
class _Started:
    """A job past its checks, with its data prepared and its MLflow child run RUNNING."""

    num: int
    label: str
    prepared: object
    run_id: str
    tracker: object
    write: Callable


def _label(c: dict, num: int, total: int) -> str:
    return (
        f"[{num + 1}/{total}] model={c['model']['name']} loss={c['loss']['name']} "
        f"ratio={c['imbalance']['ratio']:g} reg={c['regularization']['name']} seed={c['seed']}"
    )


@cache
def _tracker(uri: str, experiment: str):
    """One Tracker per process and store: the jobs a process runs share its client and experiment lookup."""
    from lossbench.tracking import Tracker

    return Tracker(uri, experiment)


def _start_job(c: dict, job_dir, num: int, info: dict) -> _Started | None:
    """Skip N/A, resume a FINISHED twin, else prepare and open the child run. None when the job is settled
    (its status written). Never raises."""
    from lossbench.compat import check_config
    from lossbench.config import fingerprint
    from lossbench.errors import ConfigError
    from lossbench.pipeline import prepare
    from lossbench.tracking import TAG_SWEEP_ID

    label = _label(c, num, info["total"])
    fp = fingerprint(c)
    write = partial(write_status, job_dir, fingerprint=fp, job=job_description(c))
    try:
        check_config(c)
    except ConfigError as e:
        log.info("%s skipped (N/A): %s", label, e)
        write("skipped", reason=str(e))
        return None
    except Exception as e:  # a bug must not stop the other jobs either
        log.error("%s failed checking the combination: %s: %s", label, type(e).__name__, e)
        write("failed", reason=f"{type(e).__name__}: {e}")
        return None
    try:
        tracker = _tracker(info["uri"], info["experiment"])
        previous = tracker.finished_run(fp) if c.get("resume", True) else None
        if previous is not None:
            log.info("%s resumed: already FINISHED as run %s", label, previous)
            write("resumed", run_id=previous)
            return None
        log.info("%s running", label)
        prepared = prepare(c)  # a ConfigError here is a data-dependent limit (a ratio this data cannot reach)
        run_id = tracker.start(c, parent_run_id=info["parent_run_id"], extra_tags={TAG_SWEEP_ID: info["id"]})
    except Exception as e:  # before any run exists: recorded in the job folder, and the sweep goes on
        log.error("%s failed before training: %s: %s", label, type(e).__name__, e)
        write("failed", reason=f"{type(e).__name__}: {e}")
        return None
    return _Started(num, label, prepared, run_id, tracker, write)


def _end_job(job: _Started, outcome) -> float | None:
    """Record a RunResult (FINISHED) or the exception its training raised (FAILED)."""
    if isinstance(outcome, BaseException):
        job.tracker.fail(job.run_id, outcome)
        log.error("%s FAILED (run %s): %s: %s", job.label, job.run_id, type(outcome).__name__, outcome)
        job.write("failed", run_id=job.run_id, reason=f"{type(outcome).__name__}: {outcome}")
        return None
    job.tracker.finish(job.run_id, outcome)
    score = outcome.metrics["test/balanced_accuracy"]
    log.info("%s finished: test balanced accuracy %.4f (run %s)", job.label, score, job.run_id)
    job.write("finished", run_id=job.run_id)
    return score


def run_job(c: dict, hydra_cfg, info: dict) -> float | None:
    """One job of a sweep: skip N/A, resume a FINISHED twin, else run as a child. Never raises.

    Jobs that differ only by seed (``info["seed_groups"]``, see ``vectorise_seeds``) are run by their group's
    first job, the leader: every job of the group keeps its own checks, resume and MLflow child run, and the
    fits left to do are one vectorised ensemble (:func:`lossbench.ensemble.execute_seeds`). The others return
    at once; the leader writes their status files."""
    from lossbench.pipeline import execute

    num = int(hydra_cfg.job.num)
    leader = info.get("seed_leaders", {}).get(str(num))
    if leader is not None and leader != num:
        log.info("%s: trained in the seed ensemble of job %d", _label(c, num, info["total"]), leader + 1)
        return None
    if leader == num:
        return _run_seed_group(c, hydra_cfg, info, info["seed_groups"][str(num)])
    job = _start_job(c, hydra_cfg.runtime.output_dir, num, info)
    if job is None:
        return None
    try:
        result = execute(job.prepared)
    except Exception as e:
        return _end_job(job, e)
    return _end_job(job, result)


def _run_seed_group(c: dict, hydra_cfg, info: dict, group: list[list[int]]) -> float | None:
    """The leader's work: start every job of the group, train those left as one ensemble, record each."""
    from lossbench.ensemble import execute_seeds

    sweep_dir = Path(hydra_cfg.sweep.dir)
    started = []
    for num, seed in group:
        job = _start_job({**c, "seed": seed}, sweep_dir / str(num), num, info)
        if job is not None:
            started.append(job)
    if not started:
        return None
    try:
        outcomes = execute_seeds([job.prepared for job in started], return_exceptions=True)
    except Exception as e:  # the ensemble's own bug: every run it held is FAILED with the reason
        outcomes = [e] * len(started)
    scores = {job.num: _end_job(job, outcome) for job, outcome in zip(started, outcomes, strict=True)}
    return scores.get(int(hydra_cfg.job.num))
