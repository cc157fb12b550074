"""Everything a sweep checks before it records anything: every job composed and validated, the data-dependent
limits checked on each distinct split (each dataset loaded once), the report settings, the store; then which
jobs are N/A and which are FINISHED already. A refusal raises, naming the job, with nothing recorded."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from lossbench.errors import CommandError, ConfigError

log = logging.getLogger("lossbench")

# keys that say where a sweep is recorded: one sweep is one MLflow experiment and one report
_SWEEP_WIDE = ("tracking", "report", "resume", "vectorise_seeds", "tune")


@dataclass
class Job:
    """One job of the grid: its overrides, its composed config (``cfg``, with the hydra node) and the
    resolved plain config (``c``); ``status`` is set when the sweeper settles it itself (N/A, resumed)."""

    overrides: list[str]
    cfg: object
    c: dict
    fingerprint: str
    status: dict | None = None


@dataclass
class Plan:
    jobs: list[Job]
    uri: str
    experiment: str
    report: dict
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    tune: dict = field(default_factory=dict)  # tune.* checked (lossbench.tune.settings)
    cells: list = field(default_factory=list)  # a tuned sweep's cells (lossbench.tune.Cell)

    @property
    def to_run(self) -> list[Job]:
        return [j for j in self.jobs if j.status is None]

    def settled(self, status: str) -> list[Job]:
        return [j for j in self.jobs if j.status is not None and j.status["status"] == status]


def _describe(job_overrides: list[str]) -> str:
    return " ".join(job_overrides) or "(no overrides)"


def _task_container(cfg) -> dict:
    """The job's config without its ``hydra`` node, resolved, as plain containers (each node resolves against
    the whole config, as in the task's; no copy of the config is made on the way)."""
    from omegaconf import OmegaConf

    body = {}
    for key in cfg:
        if key != "hydra":
            value = cfg[key]
            body[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return body


def compose_jobs(composer, grid: list[list[str]]) -> list[Job]:
    """Compose and resolve every job; the first that cannot be composed is refused with Hydra's words."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lossbench.config import fingerprint, to_container
    from lossbench.runtime import freeze_heap

    jobs = []
    for num, overrides in enumerate(grid):
        freeze_heap()  # the composed configs live through the sweep
        try:
            cfg = composer.compose(overrides)
            c = to_container(_task_container(cfg))
        except ConfigError as e:
            raise CommandError(f"job {num + 1} ({_describe(overrides)}): {e}") from e
        except (HydraException, OmegaConfBaseException) as e:
            from lossbench.commandline import explain

            why = explain(e, overrides, composer.loader, composer.hydra_compose)
            raise CommandError(f"job {num + 1} ({_describe(overrides)}): {why}") from e
        jobs.append(Job(overrides, cfg, c, fingerprint(c)))
    return jobs


def _same_everywhere(jobs: list[Job]) -> None:
    """``tracking.*``, ``report.*``, ``resume`` and ``vectorise_seeds`` may not vary within a sweep."""
    from lossbench.config import flatten

    def settings(c: dict) -> dict:
        return flatten({k: c.get(k) for k in _SWEEP_WIDE})

    first = settings(jobs[0].c)
    for num, job in enumerate(jobs[1:], start=2):
        for key, value in settings(job.c).items():
            if value != first.get(key):
                raise ConfigError(
                    key,
                    value,
                    f"must be the same for every job of a sweep (one sweep is one MLflow experiment and one "
                    f"report), but job 1 has {first.get(key)!r} and job {num} this",
                    "Run one sweep per setting.",
                )


def check_jobs(jobs: list[Job]) -> None:
    """N/A jobs get their status; every other job is validated and its split prepared (once per distinct
    split, so the data-dependent limits hold). The first refusal raises, naming the job."""
    from lossbench.compat import check_config
    from lossbench.pipeline import prepare
    from lossbench.sweep.jobs import job_description

    for num, job in enumerate(jobs):
        try:
            check_config(job.c)
        except ConfigError as e:
            job.status = {"status": "skipped", "reason": str(e)}
            continue
        try:
            prepare(job.c)  # validate(), then the split with its data-dependent limits (cached per split)
        except ConfigError as e:
            raise CommandError(f"job {num + 1} ({_describe(job.overrides)}): {e}") from e
        job.status = None
    for job in jobs:
        if job.status is not None:
            job.status.update(fingerprint=job.fingerprint, job=job_description(job.c))


def check_report(c: dict) -> dict:
    """The report settings, checked (metric, output folder) when the report is enabled; ``baselines``
    always (it says what the CE runs log)."""
    from lossbench.baselines import enabled as baselines_enabled

    report = dict(c.get("report") or {})
    report["baselines"] = baselines_enabled(c)
    if report.get("enabled", True):
        from lossbench.paths import check_report_dir, report_dir
        from lossbench.report.metric import check_metric, check_rope

        check_metric(report.get("metric") or "balanced_accuracy", key="report.metric")
        report["rope"] = check_rope(report.get("rope", 0.01), key="report.rope")
        folder = report_dir(report.get("out"), c["tracking"]["experiment"])
        check_report_dir(folder)
        report["folder"] = str(folder)
    return report


def plan(composer, grid: list[list[str]]) -> Plan:
    """Compose, validate and check the whole sweep; raises CommandError / ConfigError on a refusal."""
    from lossbench.tracking import check_experiment_name, check_store, tracking_uri

    started = time.perf_counter()
    if not grid:
        raise CommandError("the sweep has no jobs")
    jobs = compose_jobs(composer, grid)
    _same_everywhere(jobs)
    c = jobs[0].c
    check_experiment_name(c["tracking"]["experiment"])
    report = check_report(c)
    from lossbench.tune import cells, settings

    tune = settings(c)
    check_jobs(jobs)
    tuned = cells(jobs) if tune["trials"] > 0 else []
    uri = tracking_uri(c["tracking"]["uri"])
    check_store(uri)
    return Plan(
        jobs, uri, c["tracking"]["experiment"], report, time.perf_counter() - started, tune=tune, cells=tuned
    )


def settle_finished(plan_: Plan, tracker) -> None:
    """Jobs whose config has a FINISHED run in the experiment are ``resumed`` (unless ``resume=false``)."""
    from lossbench.sweep.jobs import job_description

    if not plan_.jobs[0].c.get("resume", True):
        return
    for job in plan_.to_run:
        previous = tracker.finished_run(job.fingerprint)
        if previous is not None:
            job.status = {
                "status": "resumed",
                "run_id": previous,
                "fingerprint": job.fingerprint,
                "job": job_description(job.c),
            }
