"""The ``python -m lossbench`` entry point: a thin Hydra shell around :func:`lossbench.pipeline.run`.

A single run owns its tracking: validate -> prepare data -> open the store -> create the MLflow run -> train
and evaluate -> log. Jobs of a sweep go to :func:`lossbench.sweep.run_job`. Every error a user can cause ends
in one ``lossbench: error: ...`` line and a non-zero exit; a traceback goes to ``traceback.txt`` (the run's
artifacts and the run folder), never to the console.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("lossbench")


def fail(message: str, code: int = 2) -> None:
    """Print the one-line error and exit (2: the command was refused; 1: a run failed)."""
    print(f"lossbench: error: {message}", file=sys.stderr)
    sys.exit(code)


def _task(cfg) -> float | None:
    from lossbench.config import to_container

    c = to_container(cfg)
    sweep = _sweep_info()
    _resolve_threads(c, sweep is not None)
    if sweep is not None:
        from hydra.core.hydra_config import HydraConfig

        from lossbench.sweep import run_job

        return run_job(c, HydraConfig.get(), sweep)
    return _single_run(c)


def _resolve_threads(c: dict, in_sweep: bool) -> None:
    """``train.threads=auto`` -> the number this job uses: the cores shared among the jobs the launcher runs
    at once here (``hydra.launcher.n_jobs`` of the lossbench or joblib launcher; 1 for a single run or any
    other launcher), less a core for the MLflow helper when the jobs hand their runs to one, or twice the
    jobs when that helper trains jobs too (lossbench.sweep.share: it and this process get half each). The
    value recorded in MLflow is the number used."""
    from lossbench import writer
    from lossbench.runtime import torch_threads

    train = c.get("train")
    if not isinstance(train, dict) or train.get("threads", "auto") != "auto":
        return
    at_once = 1
    if in_sweep:
        from hydra.core.hydra_config import HydraConfig

        from lossbench.sweep.launch import jobs_at_once

        at_once = jobs_at_once(HydraConfig.get().launcher) or 1
    if writer.sharing():  # this process and the sweep's other one both train (lossbench.sweep.share)
        train["threads"] = torch_threads("auto", 2 * at_once)
        return
    train["threads"] = torch_threads("auto", at_once, reserved=1 if writer.current() else 0)


def _single_run(c: dict) -> float:
    from lossbench.config import fingerprint
    from lossbench.errors import ConfigError
    from lossbench.pipeline import execute, prepare

    try:
        from lossbench.tune import settings

        if settings(c)["trials"] > 0:
            raise ConfigError(
                "tune.trials",
                c["tune"]["trials"],
                "tuning chooses knobs across the trials of a sweep, not in a single run",
                "Add -m (python -m lossbench -m ... tune.trials=N), or set tune.trials=0.",
            )
        prepared = prepare(c)  # every value and the data-dependent limits are checked before any run exists
        from lossbench import journal
        from lossbench.tracking import Tracker, check_store, tracking_uri

        uri = tracking_uri(c["tracking"]["uri"])
        check_store(uri)
        new = journal.new_store(uri)
        tracker = Tracker(uri, c["tracking"]["experiment"])
        journal.apply(uri, c["tracking"].get("wal", "auto"), new=new)
    except ConfigError as e:
        _discard_run_folder()
        fail(str(e))
    for run_id, reason in tracker.settle_interrupted(fingerprint(c)):
        log.warning("run %s was left RUNNING by a process that is gone: marked KILLED (%s)", run_id, reason)
    run_id = tracker.start(c)
    try:
        result = execute(prepared)
    except BaseException as e:
        tracker.fail(run_id, c, e)
        journal.checkpoint(uri)
        if not isinstance(e, Exception):
            raise  # Ctrl-C: the run is KILLED; Python reports the interruption
        where = _keep_traceback(e)
        fail(
            f"run {run_id} FAILED: {type(e).__name__}: {e} (the traceback is in the run's traceback.txt "
            f"artifact{' and in ' + where if where else ''})",
            code=1,
        )
    tracker.finish(run_id, c, result)
    journal.checkpoint(uri)  # the store's file holds the run (its WAL log emptied)
    m = result.metrics
    log.info(
        "test: balanced accuracy %.4f, accuracy %.4f, macro-F1 %.4f%s",
        m["test/balanced_accuracy"],
        m["test/accuracy"],
        m["test/macro_f1"],
        f", log loss {m['test/log_loss']:.4f}" if "test/log_loss" in m else "",
    )
    log.info("MLflow run %s in experiment '%s' at %s  (browse: mlflow ui)", run_id, tracker.experiment, uri)
    return m["test/balanced_accuracy"]


def _discard_run_folder() -> None:
    """A refused run leaves no folder: the one Hydra made for it goes, when it holds only what Hydra wrote
    there (``.hydra/`` and the job's log), and so do the folders above it that this leaves empty."""
    import shutil
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    try:
        hydra_cfg = HydraConfig.get()
        folder = Path(hydra_cfg.runtime.output_dir)
        expected = {str(hydra_cfg.output_subdir), f"{hydra_cfg.job.name}.log"}
    except (ValueError, AttributeError):
        return
    if not folder.is_dir() or not {p.name for p in folder.iterdir()} <= expected:
        return
    shutil.rmtree(folder, ignore_errors=True)
    top = Path.cwd().resolve()
    parent = folder.resolve().parent
    while parent != top and top in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _keep_traceback(error: BaseException) -> str | None:
    """Write the traceback into the run's Hydra folder; its path, or None when there is none."""
    import traceback
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    try:
        folder = Path(HydraConfig.get().runtime.output_dir)
        path = folder / "traceback.txt"
        path.write_text("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    except (OSError, ValueError):
        return None
    return str(path)


def _sweep_info() -> dict | None:
    """The sweep this job belongs to (written by the launching process), or None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lossbench.sweep import read_sweep

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return read_sweep(hydra_cfg.sweep.dir)


def register_plugins() -> None:
    """Make lossbench's sweeper and launcher known to Hydra. Installed from a wheel they live in
    site-packages/hydra_plugins/lossbench/ and Hydra's scan finds them; an editable install maps that package
    onto lossbench/plugins/, which the scan (pkgutil over the namespace's folders) cannot see, so they are
    registered by name as well (``Plugins.register``, Hydra's public call for it; once is enough)."""
    from hydra.core.plugins import Plugins
    from hydra_plugins.lossbench.launcher import LossbenchLauncher
    from hydra_plugins.lossbench.sweeper import LossbenchSweeper

    plugins = Plugins.instance()
    for plugin in (LossbenchSweeper, LossbenchLauncher):
        plugins.register(plugin)


def main() -> None:
    import hydra

    from lossbench.config import config_dir
    from lossbench.runtime import skip_exit_gc

    skip_exit_gc()
    from lossbench.commandline import precheck
    from lossbench.errors import CommandError, ConfigError

    try:
        precheck(sys.argv[1:])  # a typo'd key or option: one line naming it, before Hydra's own message
    except (CommandError, ConfigError) as e:
        fail(str(e))
    register_plugins()
    try:
        hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")(_task)()
    except KeyboardInterrupt:  # the sweep closed its runs KILLED on the way out; no traceback for a Ctrl-C
        print(
            "lossbench: interrupted (Ctrl-C): what finished is recorded; the same command again resumes",
            file=sys.stderr,
        )
        sys.exit(130)
    from lossbench.sweep.run import exit_code

    if exit_code():
        sys.exit(exit_code())  # a sweep with failed jobs, or whose report could not be built


if __name__ == "__main__":
    main()
