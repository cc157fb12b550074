"""The lossbench launcher's work (:class:`hydra_plugins.lossbench.launcher.LossbenchLauncher` calls
:func:`launch`): each job composed once (handed over by the lossbench sweeper, or composed here by base with
:class:`lossbench.sweep.compose.JobComposer`), then run in this process (``n_jobs: 1``) or on a pool of worker
processes (joblib's loky backend, ``n_jobs: N``; ``-1`` = one per core).

A job's set-up is what Hydra documents a job gets: ``hydra.job.num`` / ``id``, its output folder
(``hydra.sweep.dir`` / ``hydra.sweep.subdir``, made and recorded as ``hydra.runtime.output_dir``), the job
logging configured, ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` written,
``hydra.job.env_set`` applied, the callbacks' ``on_job_start`` / ``on_job_end``, and a ``JobReturn``. Jobs run
in this process hand their finished runs to an MLflow helper process (``background_writes``,
:mod:`lossbench.writer`); the launch waits until all are stored before it returns.
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


@contextmanager
def _env(values) -> None:
    """``hydra.job.env_set`` for the duration of a job."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({str(k): str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _output_dir(cfg) -> Path:
    return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)


def _save(text: str, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def run_one(cfg, idx: int, hydra_context, task_function, *, configure_logging: bool = True):
    """Set up and run one job in this process; its ``JobReturn``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log
    from omegaconf import OmegaConf, open_dict, read_write

    from lossbench.config import to_yaml

    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.job.id = f"{cfg.hydra.job.name}_{idx}"
        cfg.hydra.job.num = idx
    try:
        output = _output_dir(cfg)
    except Exception:  # the folder names use ${hydra:...}: resolved through HydraConfig
        HydraConfig.instance().set_config(cfg)
        output = _output_dir(cfg)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.runtime.output_dir = str(output.resolve())
    HydraConfig.instance().set_config(cfg)
    hydra_cfg = HydraConfig.instance().cfg
    task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # the task's: no hydra node
    OmegaConf.set_struct(task_cfg, OmegaConf.is_struct(cfg))
    output.mkdir(parents=True, exist_ok=True)
    chdir = bool(cfg.hydra.job.chdir)
    old_cwd = os.getcwd()
    ret = JobReturn()
    ret.cfg, ret.hydra_cfg = task_cfg, hydra_cfg
    ret.overrides = list(OmegaConf.to_container(cfg.hydra.overrides.task))
    try:
        if chdir:
            os.chdir(output)
        ret.working_dir = os.getcwd()
        if configure_logging:
            configure_log(cfg.hydra.job_logging, cfg.hydra.verbose)
        if cfg.hydra.output_subdir is not None:
            meta = output / str(cfg.hydra.output_subdir)
            _save(to_yaml(task_cfg), meta, "config.yaml")
            _save(to_yaml(hydra_cfg), meta, "hydra.yaml")
            _save(to_yaml(cfg.hydra.overrides.task), meta, "overrides.yaml")
        with _env(cfg.hydra.job.env_set):
            hydra_context.callbacks.on_job_start(config=cfg, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as e:
                ret.return_value = e
                ret.status = JobStatus.FAILED
        ret.task_name = JobRuntime.instance().get("name")
        for handler in logging.getLogger().handlers:
            handler.flush()
        hydra_context.callbacks.on_job_end(config=cfg, job_return=ret)
    finally:
        if chdir:
            os.chdir(old_cwd)
    return ret


def _pool_job(cfg, idx: int, hydra_context, task_function, singleton_state):
    """One job in a pool worker: Hydra's process-wide state (its singletons and resolvers) first."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import setup_globals

    from lossbench.runtime import skip_exit_gc

    skip_exit_gc()  # the launching process waits for its workers to exit
    setup_globals()
    Singleton.set_state(singleton_state)
    return run_one(cfg, idx, hydra_context, task_function)


def launch(launcher, job_overrides, initial_job_idx: int):
    """Run a batch of jobs; their ``JobReturn`` in order."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import configure_log

    from lossbench import writer
    from lossbench.sweep.compose import JobComposer

    config, context = launcher.config, launcher.hydra_context
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    handed = launcher.take_configs()
    composer = JobComposer(context.config_loader, config)
    configs = [
        handed.pop(tuple(o)) if tuple(o) in handed else composer.compose(list(o)) for o in job_overrides
    ]
    n = workers(launcher.n_jobs)
    try:
        if n == 1:
            task = launcher.task_function
            helper = writer.wanted(launcher.background_writes, len(configs))
            with writer.background_writes(helper):
                returns = [run_one(cfg, initial_job_idx + i, context, task) for i, cfg in enumerate(configs)]
        else:
            returns = _on_pool(n, configs, initial_job_idx, context, launcher.task_function)
    finally:
        HydraConfig.instance().set_config(config)
    return returns


def _on_pool(n: int, configs, initial_job_idx: int, context, task_function):
    from hydra.core.singleton import Singleton
    from joblib import Parallel, delayed

    log.info("running %d jobs on %d worker processes", len(configs), n)
    state = Singleton.get_state()
    return Parallel(n_jobs=n, backend="loky")(
        delayed(_pool_job)(cfg, initial_job_idx + i, context, task_function, state)
        for i, cfg in enumerate(configs)
    )
