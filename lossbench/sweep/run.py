"""The sweeper's work, from the grid to the report (:class:`hydra_plugins.lossbench.sweeper.LossbenchSweeper`
calls :func:`run_sweep`).

1. Expand the grid, compose and check every job (:mod:`lossbench.sweep.plan`): a refusal exits 2 with one
   line, nothing recorded.
2. Open the store; settle N/A and FINISHED jobs; mark KILLED the parent runs of sweeps whose process is gone.
3. Claim a sweep folder of its own (``<hydra.sweep.dir>``, or ``-2``, ``-3`` ... when another sweep has it),
   write ``lossbench_sweep.json`` there and create the parent run.
4. Launch the jobs left with the configured launcher (lossbench's own, or a stock one: joblib, submitit).
5. Count the jobs' status files, close the parent run (FINISHED, FAILED, or KILLED on Ctrl-C), print the
   summary, build the report and attach its files to the parent run.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from pathlib import Path

from lossbench import journal, writer
from lossbench.errors import CommandError, ConfigError

log = logging.getLogger("lossbench")

_EXIT = {"code": 0}  # the exit status a sweep leaves to the command (lossbench.cli.main exits with it)


def exit_code() -> int:
    return _EXIT["code"]


def _refuse(error: Exception) -> None:
    print(f"lossbench: error: {error}", file=sys.stderr)
    sys.exit(2)


def claim_folder(base: Path) -> Path:
    """A folder no other sweep uses: ``base`` itself when this call creates it, else the first of
    ``base-2``, ``base-3`` ... that it creates (``mkdir`` is atomic, so two sweeps never share one)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise CommandError(f"no free sweep folder next to {base}")


def _override_value(text: str) -> str:
    """A value as Hydra's override grammar reads it back unchanged (quoted unless plainly safe)."""
    import re

    if re.fullmatch(r"[A-Za-z0-9_./:\-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pin_folder(jobs, folder: Path) -> str:
    """Set every composed job's ``hydra.sweep.dir`` to the claimed folder, as an override would; returns
    that override (stock launchers compose each job again, with it)."""
    from omegaconf import open_dict, read_write

    override = f"hydra.sweep.dir={_override_value(str(folder))}"
    for job in jobs:
        with read_write(job.cfg.hydra), open_dict(job.cfg.hydra):
            job.cfg.hydra.sweep.dir = str(folder)
            job.cfg.hydra.overrides.hydra = [*job.cfg.hydra.overrides.hydra, override]
    return override


def _vectorise_seeds(c: dict, cfg) -> bool:
    """``vectorise_seeds``: true, false, or auto (= when this machine has CUDA). Only with job folders named
    by job number (the leader writes its siblings' status files) and no interpolation of ``seed`` elsewhere
    (a sibling's config is the leader's with ``seed`` replaced)."""
    from omegaconf import OmegaConf

    mode = c.get("vectorise_seeds", "auto")
    if mode == "auto":
        import torch

        mode = torch.cuda.is_available()
    if mode is not True:
        return False
    subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False).get("subdir")
    body = OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "hydra"}, resolve=False)
    return subdir == "${hydra.job.num}" and "${seed}" not in body


def launcher_advice(launcher_target: str, psutil_installed: bool | None = None) -> str | None:
    """What to tell the user about their launcher before the sweep starts, if anything."""
    if psutil_installed is None:
        import importlib.util

        psutil_installed = importlib.util.find_spec("psutil") is not None
    parallel = "hydra_joblib_launcher" in launcher_target or "hydra_plugins.lossbench" in launcher_target
    if parallel and not psutil_installed:
        return (
            "psutil is not installed: joblib's workers will run a full garbage collection after every job "
            "(~0.3 s each with torch and MLflow loaded): `pip install psutil` (in lossbench's `parallel` "
            "extra)"
        )
    return None


def run_sweep(sweeper, arguments: list[str]):
    """The whole sweep (see the module docstring). Returns the launcher's job returns."""
    from lossbench.runtime import full_collections_deferred
    from lossbench.sweep.compose import JobComposer
    from lossbench.sweep.grid import expand, seed_groups, sweep_arguments
    from lossbench.sweep.plan import plan, settle_finished
    from lossbench.tracking import TAG_ROLE, TAG_SWEEP_ID, Tracker, is_database

    config, launcher = sweeper.config, sweeper.launcher
    loader = sweeper.hydra_context.config_loader
    try:
        # imports and plan: the objects they make live to the sweep's end, frozen without walking them
        # (lossbench.runtime)
        with full_collections_deferred(collect=False):
            in_process = hasattr(launcher, "runs_in_process") and launcher.runs_in_process()  # n_jobs checked
            grid = expand(sweep_arguments(sweeper.params, arguments), loader, config.hydra.job.config_name)
            composer = JobComposer(loader, config)
            if in_process and writer.wanted(getattr(launcher, "background_writes", False), len(grid)):
                # it starts while the plan runs and meanwhile composes bases too (from the last one), then
                # creates the store if it is new, else imports MLflow (the sweeper ends it if unused)
                helper = writer.prestart()
                composer.compose_ahead(grid, helper)
                if not helper.create_store(_store_uri(config)):
                    helper.warm_up()
            else:
                helper = None
            try:
                checked = plan(composer, grid)
            finally:
                composer.cancel_ahead()
            if helper is not None:
                helper.warm_up_figures()  # for the report, once the plan no longer needs it
            import mlflow.tracking  # ~1.5 s: while the helper may still be making the store

            if is_database(checked.uri):
                # the store client module (~1 s: SQLAlchemy, alembic) before waiting for the store, not after
                import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
            new = journal.new_store(checked.uri)
            writer.adopt_store(checked.uri)  # the sweep is accepted: the store the helper made is the sweep's
            tracker = Tracker(checked.uri, checked.experiment)
            journal.apply(
                checked.uri,
                checked.jobs[0].c["tracking"].get("wal", "auto"),
                new=new,
                launcher_target=str(config.hydra.launcher.get("_target_", "")),
            )
    except (CommandError, ConfigError) as e:
        _refuse(e)
    log.info(
        "checked %d jobs in %.1f s (%d compositions by Hydra%s)",
        len(grid),
        checked.seconds,
        composer.composed["hydra"] + composer.composed["by the helper"],
        f", {composer.composed['by the helper']} of them in the helper process"
        if composer.composed["by the helper"]
        else "",
    )
    for run_id, reason in tracker.settle_interrupted(None):
        log.warning(
            "run %s (a sweep parent, tuning parent or trial) was left RUNNING by a process that is gone: "
            "marked KILLED (%s)",
            run_id,
            reason,
        )
    settle_finished(checked, tracker)  # a tuned sweep's tuned jobs are settled once they exist (_tune)
    target = str(config.hydra.launcher.get("_target_", ""))
    advice = launcher_advice(target) if _parallel(config) else None
    if advice:
        log.warning(advice)

    folder = claim_folder(Path(str(config.hydra.sweep.dir)))
    from omegaconf import open_dict, read_write

    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweep.dir = str(folder)  # the launcher makes its job folders under it
    sweep_id = uuid.uuid4().hex[:12]
    swept = sweeper.params or {}
    parent_params = {
        "sweep.params": json.dumps(dict(swept)),
        "sweep.overrides": json.dumps(list(config.hydra.overrides.task)),
    }
    if not checked.cells:  # a tuned sweep knows its number of jobs once the cells have chosen
        parent_params["sweep.jobs"] = len(grid)
    parent = tracker.start_parent(
        name=f"sweep-{checked.experiment}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={TAG_SWEEP_ID: sweep_id, "lossbench.sweep_dir": str(folder.resolve()), TAG_ROLE: "sweep"},
        params=parent_params,
    )
    job_tags: dict[str, dict] = {}
    to_run: list = []
    settled = [j.status for j in checked.jobs if j.status is not None]
    returns = []
    try:
        if checked.cells:
            workers = _concurrency(config, launcher, len(checked.cells))
            job_tags = _tune(checked, composer, tracker, parent, sweep_id, workers, folder)
            tracker.log_params(parent, {"sweep.jobs": len(checked.jobs)})
            settle_finished(checked, tracker)
            _tag_resumed(checked, tracker, job_tags)
        to_run = checked.to_run
        pin = _pin_folder(to_run, folder)
        vectorise = bool(to_run) and _vectorise_seeds(to_run[0].c, to_run[0].cfg)
        groups = seed_groups([j.overrides for j in to_run]) if vectorise else {}
        info = {
            "parent_run_id": parent,
            "uri": checked.uri,
            "experiment": checked.experiment,
            "total": len(to_run),
            "grid": len(checked.jobs),
            "id": sweep_id,
            "seed_groups": groups,  # leader job number -> [[job number, seed], ...]
            "seed_leaders": {str(num): int(lead) for lead, group in groups.items() for num, _ in group},
            # for the jobs' elapsed time and ETA (lossbench.sweep.jobs.Progress)
            "dir": str(folder.resolve()),
            "workers": _concurrency(config, launcher, len(to_run)),
            "started": time.time(),
            "job_tags": job_tags,  # fingerprint -> tags of a tuned sweep's final runs
        }
        (folder / "lossbench_sweep.json").write_text(json.dumps(info))
        na, resumed = checked.settled("skipped"), checked.settled("resumed")
        log.info(
            "sweep of %d jobs into MLflow experiment '%s' (parent run %s) at %s: %d to run, %d N/A, %d "
            "FINISHED already",
            len(checked.jobs),
            checked.experiment,
            parent,
            checked.uri,
            len(to_run),
            len(na),
            len(resumed),
        )
        if groups:
            log.info("%d groups of jobs that differ only by seed train as vectorised ensembles", len(groups))
        settled = [j.status for j in checked.jobs if j.status is not None]
        if to_run:
            if hasattr(launcher, "use_configs"):
                launcher.use_configs({tuple([*j.overrides, pin]): j.cfg for j in to_run})
            returns = launcher.launch([[*j.overrides, pin] for j in to_run], initial_job_idx=0)
    except KeyboardInterrupt:
        _close(tracker, parent, folder, settled, len(to_run), status="KILLED", reason="interrupted (Ctrl-C)")
        journal.checkpoint(checked.uri)
        raise
    except BaseException as e:
        reason = f"the launcher failed: {e}" if to_run else f"{type(e).__name__}: {e}"
        _close(tracker, parent, folder, settled, len(to_run), status="FAILED", reason=reason)
        journal.checkpoint(checked.uri)
        raise
    counts, missing = _close(tracker, parent, folder, settled, len(to_run))
    reported = _report(checked, tracker, parent, sweep_id)
    journal.checkpoint(checked.uri)  # the store's file holds every run (its WAL log emptied)
    if counts["failed"] or missing or not reported:
        _EXIT["code"] = 1
    return returns


def _store_uri(config) -> str | None:
    """The sweep's tracking URI as the command sets it, before any job is composed (None when it cannot be
    told yet: the plan then finds it)."""
    from omegaconf import OmegaConf

    from lossbench.tracking import tracking_uri

    try:
        return tracking_uri(OmegaConf.select(config, "tracking.uri"))
    except Exception:
        return None


def _tune(
    checked, composer, tracker, parent: str, sweep_id: str, workers: int | None, folder: Path
) -> dict[str, dict]:
    """Tune every cell (lossbench.tune), then make the sweep's jobs its final runs: each cell's default jobs
    (unless ``tune.defaults=false``) and its tuned jobs, the chosen knobs as overrides, composed and checked
    like the grid's. Returns the tags of the final runs by fingerprint."""
    from functools import partial

    from lossbench.sweep.jobs import _tracker
    from lossbench.sweep.plan import check_jobs, compose_jobs
    from lossbench.tracking import TAG_CELL, TAG_KNOBS, TAG_TUNED_FROM, TAG_VARIANT
    from lossbench.tune import storage_path, tune_all, tuned_overrides

    t = checked.tune
    ctx = {
        "settings": t,
        "tracker": partial(_tracker, checked.uri, checked.experiment),
        "experiment": checked.experiment,
        "storage": storage_path(checked.jobs[0].c, checked.uri),
        "sweep_id": sweep_id,
        "parent": parent,
        "workers": workers or 1,
        "dir": str(folder / "tuning"),  # the cells' progress ledger
        "started": time.time(),
    }
    (folder / "tuning").mkdir(exist_ok=True)
    n_trials = sum(1 for cell in checked.cells if cell.knobs) * int(t["trials"])
    log.info(
        "tuning %d cells with %d trials each (%d trials; studies in %s)",
        len(checked.cells),
        int(t["trials"]),
        n_trials,
        ctx["storage"],
    )
    chosen = tune_all(checked.cells, ctx, workers or 1)
    tags: dict[str, dict] = {}
    tuned_jobs = []
    dropped = set()
    for cell in checked.cells:
        choice = chosen[cell.id]
        for job in cell.jobs:
            base = {TAG_CELL: cell.id, TAG_KNOBS: json.dumps(choice.values)}
            tuned = compose_jobs(composer, [tuned_overrides(job, choice)])[0] if choice.values else job
            if tuned.fingerprint == job.fingerprint:  # the defaults won (or nothing to tune): one run serves
                tags[job.fingerprint] = {**base, TAG_VARIANT: "default tuned"}
            else:
                tags[job.fingerprint] = {TAG_CELL: cell.id, TAG_VARIANT: "default"}
                tags[tuned.fingerprint] = {**base, TAG_VARIANT: "tuned"}
                tuned_jobs.append(tuned)
                if not t["defaults"]:
                    dropped.add(id(job))
            if choice.trial_run:
                tags[tuned.fingerprint][TAG_TUNED_FROM] = choice.trial_run
    check_jobs(tuned_jobs)
    checked.jobs = [j for j in checked.jobs if id(j) not in dropped] + tuned_jobs
    return tags


def _tag_resumed(checked, tracker, job_tags: dict[str, dict]) -> None:
    """Runs of earlier sweeps that a tuned sweep resumes get its tags (variant, cell), as its own runs do."""
    for job in checked.settled("resumed"):
        tags = job_tags.get(job.fingerprint)
        if tags and job.status.get("run_id"):
            tracker.set_tags(job.status["run_id"], tags)


def _concurrency(config, launcher, jobs: int) -> int | None:
    """How many jobs run at once: lossbench's launcher and Hydra's joblib launcher say (``n_jobs``); None
    for any other (submitit: the scheduler decides)."""
    from lossbench.sweep.launch import jobs_at_once

    target = str(config.hydra.launcher.get("_target_", ""))
    if not (hasattr(launcher, "runs_in_process") or "hydra_joblib_launcher" in target):
        return None
    n_jobs = config.hydra.launcher.get("n_jobs")
    n = jobs_at_once({"n_jobs": 1 if n_jobs is None else n_jobs})
    return None if n is None else max(1, min(n, jobs))


def browse_hint(uri: str, experiment_id: str) -> str:
    """Where a person sees the runs: MLflow 3's UI opens an experiment on its GenAI overview, so the link goes
    to the runs table of the "Model training" view (README: Browsing in the MLflow UI)."""
    page = f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    here = uri in (f"sqlite:///{Path.cwd() / 'mlflow.db'}", "sqlite:///mlflow.db")
    command = "mlflow ui" if here else f"mlflow ui --backend-store-uri {uri}"
    return f"`{command}`, then http://127.0.0.1:5000/{page}"


def say(line: str) -> None:
    """A result line for the person who ran the sweep: on stdout (so ``> log.txt`` keeps it), and on stderr
    too when stderr is somewhere else (the terminal of someone who sent stdout to a file). Once where both
    are the same file or terminal."""
    import os

    print(line, flush=True)
    try:
        out, err = os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())
        same = (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino)
    except (AttributeError, OSError, ValueError):  # streams replaced by objects without a file
        same = False
    if not same:
        print(line, file=sys.stderr, flush=True)


def _parallel(config) -> bool:
    n_jobs = config.hydra.launcher.get("n_jobs", 1)
    return n_jobs is None or int(n_jobs) != 1


def _close(tracker, parent: str, folder: Path, settled: list[dict], launched: int, **final):
    """Count the jobs' statuses, record them on the parent run and close it; print the summary line."""
    from lossbench.sweep.jobs import collect_statuses, count, summary_line

    reported = collect_statuses(folder)
    statuses = settled + reported
    counts = count(statuses)
    missing = max(launched - len(reported), 0)
    tracker.finish_parent(parent, counts, statuses, missing=missing, **final)
    line = summary_line(counts) + (f", {missing} did not report" if missing else "")
    log.info("MLflow: experiment '%s' at %s; job folders: %s", tracker.experiment, tracker.uri, folder)
    log.info("browse the runs: %s", browse_hint(tracker.uri, tracker.experiment_id))
    say(f"lossbench: {line}")  # not logged as well: once on stdout
    return counts, missing


def _report(checked, tracker, parent: str, sweep_id: str) -> bool:
    """Build the sweep's comparison report and attach its files to the parent run. False when it failed (the
    runs are recorded all the same, and the message says how to rebuild it)."""
    report = checked.report
    if not report.get("enabled", True):
        return True
    try:
        from lossbench.report import build_report
        from lossbench.runtime import full_collections_deferred

        # its garbage is left to the next full collection; after a sweep's report there is none, it ends
        with full_collections_deferred(freeze=False):
            index = build_report(
                checked.experiment,
                tracking_uri=checked.uri,
                out=report["folder"],
                metric=report.get("metric") or "balanced_accuracy",
                rope=report.get("rope", 0.01),
                sweep=sweep_id,
                key="report.out",
                executor=writer.spare(),  # the sweep's MLflow helper, idle now, draws figures too
            )
        tracker.log_report(parent, index.parent)
    except Exception as e:
        log.error(
            "the report could not be built (%s: %s); the runs are recorded, rebuild it with: "
            "python -m lossbench.report --experiment %s",
            type(e).__name__,
            e,
            checked.experiment,
        )
        return False
    from lossbench.paths import shown

    say(f"lossbench: report written to {shown(index)} (also on the sweep's parent run, under report/)")
    return True
