"""Faster composition of a sweep's job configs, with Hydra's own semantics.

Hydra composes every job's config from scratch (~130 ms here: YAML files read and parsed, the defaults tree,
merges), and a multirun does it twice per job: the basic sweeper composes the whole batch to check it before
the first job starts (216 jobs: ~30 s of waiting), then the launcher composes each job again. The jobs of a
sweep mostly differ in plain values (``seed=1``, ``imbalance.ratio=10``), which do not change the defaults
list: Hydra itself composes the config from the config-group choices and then applies such value overrides
to the result (``ConfigLoaderImpl._apply_overrides_to_config``).

:func:`install` wraps ``ConfigLoaderImpl.load_sweep_config`` (the one call sweepers and launchers use,
joblib's and submitit's included) so that jobs sharing their config-group choices share one composition:
the base config (group choices only) is composed once, and each job is a copy of it with its value
overrides applied by Hydra's own function, its ``hydra.overrides`` and ``hydra.job.override_dirname`` set as
Hydra sets them. The first job of every base is also composed the slow way and compared, whole (the hydra
node included): when they differ in anything, that base falls back to Hydra's full composition for good.
Overrides other than plain values (``+key``, ``~key``, ``key@pkg``, groups, ``hydra.*`` such as
``hydra.searchpath``) are part of the base; an error takes Hydra's own path, which raises Hydra's message.

The batch check composes every job only to drop the result; the launcher then asks for the same job again.
Each config composed is kept (up to ``_MAX_HANDOFF`` at a time) and handed to the next request for the same
job, unless something has used it since: a launcher sets ``hydra.job.num`` and ``hydra.runtime.output_dir``
on the config it runs, and a config with either set is composed afresh.

Each job also writes its config three times as YAML (``.hydra/``); :func:`install` has Hydra write the same
text through :func:`lossbench.config.to_yaml` (PyYAML's C emitter) instead of ``OmegaConf.to_yaml``.

Hydra's ``run_job`` (every launcher's per-job set-up) deep-copies the job's config four times (~12 of its
~17 ms a job here): the ``hydra`` node for ``HydraConfig`` twice, the whole config for the task (``hydra``
node included, then deleted) and ``HydraConfig``'s copy again for the job's return. :func:`_run_job` is the
same function with one copy: the task's, without the ``hydra`` node. ``HydraConfig`` and the job's return
hold the job config's own ``hydra`` node (read-only; the job config is the job's alone, and Hydra puts its
previous config back after the job). Tests run both on the same jobs and compare everything a job returns and
writes.
"""

from __future__ import annotations

import copy
import logging
import weakref
from functools import cache, wraps

log = logging.getLogger("lossbench")

# per Hydra run (see _run_key): base key -> its composed base config, or None when it must not be used
_BASES: dict[tuple, dict] = {}
_MAX_RUNS = 8  # runs remembered per process (tests and notebooks compose many)
_BY_LOADER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # runs without a _run_key
# per config loader: job overrides -> (master config, the config composed for them, not yet handed out again)
_HANDOFF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# A config is ~120 kB. A sweeper that never checks its batch asks once per job and runs it: purged once run.
# joblib's launcher composes in its workers: the parent's batch-check configs stay to the run's end (bounded).
_MAX_HANDOFF = 512
_PURGE_EVERY = 64
_installed = False
_hydra_run_job = None  # Hydra's own run_job, once install() has replaced it


def install() -> None:
    """Wrap Hydra's ``load_sweep_config`` and replace its ``_save_config`` (idempotent)."""
    global _installed
    if _installed:
        return
    import hydra.core.utils as hydra_utils
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    original = ConfigLoaderImpl.load_sweep_config

    @wraps(original)
    def load_sweep_config(self, master_config, sweep_overrides):
        handoff = _HANDOFF.setdefault(self, {})
        key = tuple(sweep_overrides)
        kept = handoff.pop(key, None)
        if kept is not None and kept[0] is master_config and _unused(kept[1]):
            return kept[1]
        try:
            fast = _fast(self, original, master_config, list(sweep_overrides))
        except Exception as e:  # Hydra's own path raises its own (better) error, if any
            log.debug("fast composition not used for %s: %s: %s", sweep_overrides, type(e).__name__, e)
            fast = None
        cfg = fast if fast is not None else original(self, master_config, sweep_overrides)
        if len(handoff) < _MAX_HANDOFF:
            handoff[key] = (master_config, cfg)
            if len(handoff) % _PURGE_EVERY == 0:  # a sweeper that never checks its batch: drop what was run
                for used in [k for k, (_, c) in handoff.items() if not _unused(c)]:
                    del handoff[used]
        return cfg

    ConfigLoaderImpl.load_sweep_config = load_sweep_config
    ConfigLoaderImpl.get_group_options = _group_options(ConfigLoaderImpl.get_group_options)
    hydra_utils._save_config = _save_config
    _install_run_job(hydra_utils.run_job)
    _installed = True


# the modules that call Hydra's run_job by a name of their own (`from hydra.core.utils import run_job`)
_RUN_JOB_CALLERS = (
    "hydra.core.utils",
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
)


def _install_run_job(original) -> None:
    """Point every launcher's ``run_job`` at :func:`_run_job`: Hydra's own name, which launchers imported
    from now on take, and the name in each launcher module already imported (a joblib worker has imported
    its launcher's module by the time it installs this). A name that is not Hydra's function is left alone.
    Nothing is imported for it (joblib alone costs ~0.2 s)."""
    import sys

    global _hydra_run_job
    _hydra_run_job = original
    for name in _RUN_JOB_CALLERS:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "run_job", None) is original:
            module.run_job = _run_job


def _run_job(
    task_function,
    config,
    job_dir_key: str,
    job_subdir_key: str | None,
    hydra_context,
    configure_logging: bool = True,
):
    """Hydra 1.3's ``hydra.core.utils.run_job`` (MIT licence, Facebook, Inc. and its affiliates) with one deep
    copy of the config instead of four (see the module docstring); everything else as Hydra does it."""
    import os
    from pathlib import Path
    from textwrap import dedent

    from hydra import version
    from hydra._internal.deprecation_warning import deprecation_warning
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import (
        JobReturn,
        JobRuntime,
        JobStatus,
        _check_hydra_context,
        _flush_loggers,
        configure_log,
        env_override,
    )
    from omegaconf import AnyNode, OmegaConf, open_dict, read_write

    _check_hydra_context(hydra_context)
    callbacks = hydra_context.callbacks

    old_cwd = os.getcwd()
    hydra_config = HydraConfig.instance()
    orig_hydra_cfg = hydra_config.cfg

    # init Hydra config for config evaluation: HydraConfig holds this job's own hydra node (HydraConfig's
    # set_config copies it; the job's config is this job's alone, composed for it by load_sweep_config)
    _set_hydra_config(hydra_config, config)

    output_dir = str(OmegaConf.select(config, job_dir_key))
    if job_subdir_key is not None:
        # evaluate job_subdir_key lazily.
        # this is running on the client side in sweep and contains things such as job:id which
        # are only available there.
        subdir = str(OmegaConf.select(config, job_subdir_key))
        output_dir = os.path.join(output_dir, subdir)

    # update Hydra config (HydraConfig holds the same node: Hydra sets the value, then copies the node again)
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    _chdir = None
    try:
        ret = JobReturn()
        # the task's config: a copy of everything but the hydra node (Hydra copies it too, then deletes it)
        hydra_node = config._get_node("hydra")
        task_cfg = copy.deepcopy(config, memo={id(hydra_node): AnyNode(None)})
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]

        ret.cfg = task_cfg
        # the job's read-only hydra node; HydraConfig's is replaced (not changed) when the job ends
        hydra_cfg = hydra_config.cfg
        ret.hydra_cfg = hydra_cfg
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        assert isinstance(overrides, list)
        ret.overrides = overrides
        # handle output directories here
        Path(str(output_dir)).mkdir(parents=True, exist_ok=True)

        _chdir = hydra_cfg.hydra.job.chdir

        if _chdir is None and version.base_at_least("1.2"):
            _chdir = False

        if _chdir is None:
            url = "https://hydra.cc/docs/1.2/upgrades/1.1_to_1.2/changes_to_job_working_dir/"
            deprecation_warning(
                message=dedent(
                    f"""\
                    Future Hydra versions will no longer change working directory at job runtime by default.
                    See {url} for more information."""
                ),
                stacklevel=2,
            )
            _chdir = True

        if _chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()

        if configure_logging:
            configure_log(config.hydra.job_logging, config.hydra.verbose)

        if config.hydra.output_subdir is not None:
            hydra_output = Path(config.hydra.runtime.output_dir) / Path(config.hydra.output_subdir)
            _save_config(task_cfg, "config.yaml", hydra_output)
            _save_config(hydra_cfg, "hydra.yaml", hydra_output)
            _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)

        with env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as e:
                ret.return_value = e
                ret.status = JobStatus.FAILED

        ret.task_name = JobRuntime.instance().get("name")

        _flush_loggers()

        callbacks.on_job_end(config=config, job_return=ret)

        return ret
    finally:
        hydra_config.cfg = orig_hydra_cfg
        if _chdir:
            os.chdir(old_cwd)


def _set_hydra_config(hydra_config, config) -> None:
    """``HydraConfig.set_config(config)`` without its copy: HydraConfig's config holds the job config's own
    (read-only) hydra node, its parent the job config, as set_config makes its copy's parent."""
    from hydra.conf import HydraConf
    from omegaconf import DictConfig, OmegaConf, flag_override

    OmegaConf.set_readonly(config.hydra, True)
    node = config._get_node("hydra")
    assert issubclass(OmegaConf.get_type(config, "hydra"), HydraConf)
    view = DictConfig({})
    with flag_override(view, "no_deepcopy_set_nodes", True):
        view["hydra"] = node
    node._set_parent(config)
    hydra_config.cfg = view


def _save_config(cfg, filename: str, output_dir) -> None:
    """Hydra's ``hydra.core.utils._save_config`` (each job's ``.hydra/config.yaml``, ``hydra.yaml`` and
    ``overrides.yaml``), writing the same text with PyYAML's C emitter: ~10 -> ~4 ms a job."""
    from lossbench.config import to_yaml

    output_dir.mkdir(parents=True, exist_ok=True)
    with open(str(output_dir / filename), "w", encoding="utf-8") as file:
        file.write(to_yaml(cfg))


def _unused(cfg) -> bool:
    """True while no launcher has taken the config (they set the job number and output folder on it)."""
    from omegaconf import OmegaConf

    job, runtime = cfg.hydra.job, cfg.hydra.runtime
    return OmegaConf.is_missing(job, "num") and OmegaConf.is_missing(runtime, "output_dir")


def _group_options(original):
    """``--help`` lists every config group's options: Hydra builds (deep-copies) a fresh config repository for
    each of the ~80 calls (~1 s). The repository only depends on (config name, overrides): build it once."""
    from hydra.core.object_type import ObjectType

    repos: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @wraps(original)
    def get_group_options(
        self, group_name, results_filter=ObjectType.CONFIG, config_name=None, overrides=None
    ):
        key = (config_name, tuple(overrides or ()))
        built = repos.setdefault(self, {})  # not `cache`: that name is functools.cache in this module
        if key not in built:
            built[key] = self._parse_overrides_and_create_caching_repo(config_name, list(key[1]))[1]
        return built[key].get_group_options(group_name, results_filter)

    return get_group_options


@cache
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _split(loader, overrides: list[str]) -> tuple[list, list, list]:
    """(parsed overrides, the plain value overrides among them, the rest: they shape the base)."""
    from hydra.core.override_parser.types import OverrideType, ValueType

    parsed = _parser().parse_overrides(overrides)
    values, rest = [], []
    for o in parsed:
        plain = (
            o.type == OverrideType.CHANGE
            and o.package is None
            and o.value_type == ValueType.ELEMENT
            and not o.is_hydra_override()
        )
        if plain and not loader.repository.group_exists(o.key_or_group.replace(".", "/")):
            values.append(o)
        else:
            rest.append(o)
    return parsed, values, rest


def _run_key(loader, master_config) -> tuple | None:
    """What identifies one Hydra run's compositions. Not the loader object: joblib's launcher sends every job
    a fresh unpickled copy of the loader and the master config, so a worker would compose each job's base
    (and verify it) from scratch. The search path, the run's own overrides and its resolved sweep folder (a
    timestamp) are the same in every copy. None when the sweep folder cannot be resolved here (the bases are
    then kept per loader object)."""
    from omegaconf import OmegaConf

    try:
        sweep_dir = str(OmegaConf.select(master_config, "hydra.sweep.dir"))
    except Exception:
        return None
    return (
        tuple((e.provider, e.path) for e in loader.config_search_path.get_path()),
        master_config.hydra.job.config_name,
        tuple(master_config.hydra.overrides.hydra),
        tuple(master_config.hydra.overrides.task),
        sweep_dir,
    )


def _bases(loader, master_config) -> dict:
    key = _run_key(loader, master_config)
    if key is None:
        return _BY_LOADER.setdefault(loader, {})
    if key not in _BASES:
        while len(_BASES) >= _MAX_RUNS:
            _BASES.pop(next(iter(_BASES)))  # the oldest run
        _BASES[key] = {}
    return _BASES[key]


def _fast(loader, original, master_config, sweep_overrides: list[str]):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
    from omegaconf import OmegaConf, open_dict

    hydra_overrides = list(OmegaConf.to_container(master_config.hydra.overrides.hydra))
    parsed, values, rest = _split(loader, hydra_overrides + sweep_overrides)
    bases = _bases(loader, master_config)
    key = (
        master_config.hydra.job.config_name,
        tuple(o.input_line for o in rest),
        tuple(o.key_or_group for o in values),
    )
    verify = key not in bases
    if verify:
        # the master's hydra overrides come first in `parsed`, and load_sweep_config adds them itself
        base_overrides = [o.input_line for o in rest[len(hydra_overrides) :]]
        bases[key] = original(loader, master_config, base_overrides)
    base = bases[key]
    if base is None:
        return None

    cfg = copy.deepcopy(base)
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    task = [o for o in parsed if not o.is_hydra_override()]
    with open_dict(cfg.hydra):
        cfg.hydra.overrides.hydra = [o.input_line for o in parsed if o.is_hydra_override()]
        cfg.hydra.overrides.task = [o.input_line for o in task]
        dirname = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task,
            kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
        )
    OmegaConf.copy_cache(from_config=master_config, to_config=cfg)

    if verify:
        slow = original(loader, master_config, sweep_overrides)
        same = OmegaConf.to_container(slow, resolve=False) == OmegaConf.to_container(cfg, resolve=False)
        if not same:
            log.debug("fast composition differs from Hydra's for %s: not used", sweep_overrides)
            bases[key] = None
        return slow
    return cfg
