"""The lossbench launcher's work (:class:`hydra_plugins.lossbench.launcher.LossbenchLauncher` calls
:func:`launch`): each job composed once (handed over by the lossbench sweeper, or composed here by base with
:class:`lossbench.sweep.compose.JobComposer`), then run in this process (``n_jobs: 1``) or on a pool of worker
processes (joblib's loky backend, ``n_jobs: N``; ``-1`` = one per core).

Each job is set up and run by :func:`lossbench.sweep.hydra_job.run_one`. Jobs run in this process hand their
finished runs to an MLflow helper process (``background_writes``, :mod:`lossbench.writer`), which trains jobs
too when they are long (``helper_jobs``, :mod:`lossbench.sweep.share`); the launch waits until all are stored
before it returns.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("lossbench")


def workers(n_jobs) -> int:
    """Worker processes for ``hydra.launcher.n_jobs`` (1: none, the jobs run in this process)."""
    cores = os.cpu_count() or 1
    n = int(n_jobs if n_jobs is not None else 1)
    if n == 0:
        from lossbench.errors import ConfigError

        raise ConfigError(
            "hydra.launcher.n_jobs", n_jobs, "must be a number of workers >= 1, or -1 for one per core"
        )
    return max(cores + 1 + n, 1) if n < 0 else n


def jobs_at_once(launcher_cfg) -> int | None:
    """How many jobs a launcher config runs at once on this machine: :func:`workers` of its ``n_jobs`` (the
    lossbench and joblib launchers have one); None without a usable one (submitit: the scheduler decides)."""
    n_jobs = launcher_cfg.get("n_jobs")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        return None
    return workers(n_jobs)


def _pool_job(cfg, idx: int, hydra_context, task_function, singleton_state):
    """One job in a pool worker: Hydra's process-wide state (its singletons and resolvers) first."""
    from lossbench.runtime import skip_exit_gc
    from lossbench.sweep.hydra_job import run_one, use_hydra_state

    skip_exit_gc()  # the launching process waits for its workers to exit
    use_hydra_state(singleton_state)
    return run_one(cfg, idx, hydra_context, task_function)


def launch(launcher, job_overrides, initial_job_idx: int):
    """Run a batch of jobs; their ``JobReturn`` in order."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import configure_log

    from lossbench import writer
    from lossbench.runtime import freeze_heap
    from lossbench.sweep.compose import JobComposer
    from lossbench.sweep.hydra_job import run_one

    config, context = launcher.config, launcher.hydra_context
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    handed = launcher.take_configs()
    composer = JobComposer(context.config_loader, config)
    configs = [
        handed.pop(tuple(o)) if tuple(o) in handed else composer.compose(list(o)) for o in job_overrides
    ]
    n = workers(launcher.n_jobs)
    freeze_heap()  # what the sweep's start imported and planned lives through the launch
    try:
        if n == 1:
            from lossbench.sweep import share

            task = launcher.task_function
            helper = writer.wanted(launcher.background_writes, len(configs))
            jobs_too = share.wanted(getattr(launcher, "helper_jobs", False))
            shared = bool(helper and jobs_too and len(configs) >= 2)
            with writer.background_writes(helper, share=shared) as w, noting_ctrl_c() as interrupted:
                if shared and w is not None:
                    run = share.SharedLaunch(w, configs, initial_job_idx, context, task, jobs_too)
                    returns = run.run(interrupted)
                else:
                    returns = []
                    for i, cfg in enumerate(configs):
                        if interrupted():
                            raise KeyboardInterrupt
                        returns.append(run_one(cfg, initial_job_idx + i, context, task))
        else:
            returns = _on_pool(n, configs, initial_job_idx, context, launcher.task_function)
    finally:
        HydraConfig.instance().set_config(config)
    return returns


@contextmanager
def noting_ctrl_c():
    """Ctrl-C during the block raises KeyboardInterrupt as usual, and is also noted: the block's callable
    then says True, so that an interrupt Python swallowed on the way (one raised inside a finalizer or a
    weakref callback is only printed, "Exception ignored in ...") still ends the launch before the next job.
    Only where Python's own Ctrl-C handler is in place, in the main thread."""
    import signal
    import threading

    noted: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # ignored, or the OS default: left as it is
        yield lambda: False
        return

    def handler(signum, frame):
        noted.append(True)
        previous(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(noted)
    finally:
        signal.signal(signal.SIGINT, previous)


def _on_pool(n: int, configs, initial_job_idx: int, context, task_function):
    from hydra.core.singleton import Singleton
    from joblib import Parallel, delayed

    log.info("running %d jobs on %d worker processes", len(configs), n)
    state = Singleton.get_state()
    return Parallel(n_jobs=n, backend="loky")(
        delayed(_pool_job)(cfg, initial_job_idx + i, context, task_function, state)
        for i, cfg in enumerate(configs)
    )
