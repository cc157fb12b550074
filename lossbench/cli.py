"""The ``python -m lossbench`` entry point: a thin Hydra shell around :func:`lossbench.pipeline.run`.

It owns tracking: validate -> prepare data -> create the MLflow run -> train and evaluate -> log.
"""

from __future__ import annotations

import logging
import sys
from functools import cache

log = logging.getLogger("lossbench")


def _fail(message: str, code: int = 2) -> None:
    print(f"lossbench: error: {message}", file=sys.stderr)
    sys.exit(code)


def _task(cfg) -> float | None:
    from lossbench.config import to_container
    from lossbench.errors import ConfigError
    from lossbench.pipeline import execute, prepare

    c = to_container(cfg)
    sweep = _sweep_info()
    if sweep is not None:
        from hydra.core.hydra_config import HydraConfig

        from lossbench.sweep import run_job

        return run_job(c, HydraConfig.get(), sweep)
    try:
        prepared = prepare(c)  # every value and the data-dependent limits are checked before any run exists
    except ConfigError as e:
        _fail(str(e))

    from lossbench.tracking import Tracker, check_reachable, tracking_uri

    uri = tracking_uri(c["tracking"]["uri"])
    try:
        check_reachable(uri)
    except ConfigError as e:
        _fail(str(e))
    tracker = Tracker(uri, c["tracking"]["experiment"])
    run_id = tracker.start(c)
    try:
        result = execute(prepared)
    except BaseException as e:
        tracker.fail(run_id, e)
        raise
    tracker.finish(run_id, result)
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


def _sweep_info() -> dict | None:
    """The sweep this job belongs to (written by the launching process), or None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lossbench.sweep import read_sweep

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return read_sweep(hydra_cfg.sweep.dir)


@cache
def skip_exit_gc() -> None:
    """Have the interpreter's exit leave the objects still alive to the process's end (``gc.freeze`` in an
    ``atexit`` handler) instead of running the cyclic garbage collector over all of them: with torch, MLflow,
    scikit-learn and pandas loaded that takes 1.5-2.5 s here, after the run's last output. Nothing else about
    the exit changes: the other ``atexit`` handlers (MLflow's, logging's flush and close, temporary folders'
    clean-up) still run, files written with ``with`` are closed already, committed SQLite transactions are on
    disk, and objects are still released by reference counting as modules are torn down (Python does not
    promise to finalize objects still alive at exit anyway). For command entry points; registers once."""
    import atexit
    import gc

    atexit.register(gc.freeze)


def main() -> None:
    import hydra

    from lossbench.compose import install
    from lossbench.config import config_dir

    skip_exit_gc()
    install()  # sweeps: jobs that share their config-group choices share one composition (lossbench.compose)
    hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")(_task)()


if __name__ == "__main__":
    main()
