"""One job of a sweep set up and run in this process, as Hydra documents a job: ``hydra.job.num`` / ``id``,
its output folder (``hydra.sweep.dir`` / ``hydra.sweep.subdir``, made and recorded as
``hydra.runtime.output_dir``), the job logging configured, ``.hydra/config.yaml``, ``hydra.yaml`` and
``overrides.yaml`` written, ``hydra.job.env_set`` applied, the callbacks' ``on_job_start`` / ``on_job_end``,
and a ``JobReturn``: lossbench's own code (tests/test_plugins.py compares it with Hydra's basic launcher). The
launching process, lossbench's pool workers and the sweep's MLflow helper (:mod:`lossbench.sweep.share`) run
jobs through :func:`run_one`.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path


def use_hydra_state(singleton_state) -> None:
    """In another process than the launching one (a pool worker, the sweep's helper): Hydra's process-wide
    state as the launching process has it, its singletons (config store, plugins) and resolvers."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import setup_globals

    setup_globals()
    Singleton.set_state(singleton_state)


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
    from lossbench.runtime import freeze_heap

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
        freeze_heap()  # what its first fit imported (torch, scikit-learn); the returns the launch keeps
        for handler in logging.getLogger().handlers:
            handler.flush()
        hydra_context.callbacks.on_job_end(config=cfg, job_return=ret)
    finally:
        if chdir:
            os.chdir(old_cwd)
    return ret
